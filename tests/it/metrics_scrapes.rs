//! `/metrics` is answered from memory: however many scrapers ask, contacts are counted in the
//! store at most once per `server.metrics_refresh` (a count over a million rows holds the
//! store's one thread for ~60 ms, which dialling needs).

use ccc_dialer::dispatch::Stop;

use crate::served::in_process_with;

fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_scrapes_count_the_store_once_per_refresh() {
    let p = in_process_with(
        64 * 1024,
        "[server]\nmetrics_refresh = \"1h\"\n",
        async |_| {},
    )
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/campaigns?name=scraped", p.base))
        .bearer_auth(crate::served::TOKEN)
        .body("callee\n+8613800000051\n+8613800000052\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let scrape = || {
        let http = http.clone();
        let url = format!("{}/metrics", p.base);
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        }
    };
    // Eight scrapers at once, then more one after another.
    let at_once: Vec<String> = futures_util::future::join_all((0..8).map(|_| scrape())).await;
    let mut last = String::new();
    for _ in 0..10 {
        last = scrape().await;
    }
    for text in at_once.iter().chain([&last]) {
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("ccc_dialer_contacts{campaign=\"scraped\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(total, 2.0, "{text}");
    }
    assert_eq!(
        value(&last, "ccc_dialer_contact_recounts_total"),
        Some(1.0),
        "{last}"
    );
    p.stop.send_replace(Stop::Now);
    let _ = p.task.await;
}
