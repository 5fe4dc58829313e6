//! The API's token: placeholder tokens are refused at start (exit 2, the token never quoted),
//! the Kubernetes sample holds no Secret that `kubectl apply` would put over the real one, the
//! `Bearer` scheme is matched without regard to case (RFC 9110 §11.1), and a request carrying
//! several `Authorization` headers is refused rather than judged by the first.

use std::process::Stdio;

use crate::served::{in_process, serve_command, TOKEN};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_placeholder_token_with_exit_2_and_never_quotes_it() {
    let mock = mock_with(20, 0, "").await;
    let s = crate::served::scratch(&mock, "");
    for token in [
        // The value samples/kubernetes.yaml used to carry.
        "REPLACE-WITH-A-LONG-RANDOM-TOKEN",
        "change-me-change-me-change-me",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ] {
        let mut cmd = serve_command(&s);
        cmd.env("CCC_DIALER_API_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("serve runs"))
            .await
            .expect("join");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{token}: {err}");
        assert!(err.contains("looks like a placeholder"), "{token}: {err}");
        assert!(!err.contains(token), "the token was printed: {err}");
        assert!(
            String::from_utf8_lossy(&out.stdout).is_empty(),
            "nothing served"
        );
    }
}

#[test]
fn the_kubernetes_sample_applies_no_secret_over_the_one_created_with_kubectl() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/kubernetes.yaml"),
    )
    .expect("sample");
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert!(!kinds.contains(&"Secret"), "kinds: {kinds:?}");
    assert!(kinds.contains(&"Deployment"), "kinds: {kinds:?}");
    // The Deployment still reads the Secret the operator creates.
    assert!(text.contains("secretName: ccc-dialer-secrets"));
    assert!(text.contains("kubectl -n ccc-dialer create secret generic ccc-dialer-secrets"));
}

/// The ConfigMap text of `key` (a `|` block) in the Kubernetes sample.
fn config_map_file(sample: &str, key: &str) -> String {
    let head = format!("  {key}: |\n");
    let start = sample.find(&head).expect("ConfigMap key") + head.len();
    sample[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

#[test]
fn the_kubernetes_sample_mounts_its_do_not_call_list_where_its_config_reads_it() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/kubernetes.yaml"),
    )
    .expect("sample");
    // The two ConfigMaps laid out as the pod mounts them: /etc/ccc-dialer and .../dnc.
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(
        etc.path().join("dialer.toml"),
        config_map_file(&text, "dialer.toml"),
    )
    .unwrap();
    std::fs::create_dir(etc.path().join("dnc")).unwrap();
    std::fs::write(
        etc.path().join("dnc/dnc.csv"),
        config_map_file(&text, "dnc.csv"),
    )
    .unwrap();
    assert!(text.contains("mountPath: /etc/ccc-dialer/dnc"), "{text}");
    let cfg = ccc_dialer::config::Config::load(&etc.path().join("dialer.toml")).expect("config");
    assert_eq!(cfg.calling.dnc_files, vec![etc.path().join("dnc/dnc.csv")]);
    let norm = ccc_dialer::calling::dnc::Normalise {
        default_country: cfg.campaign.default_country.clone(),
        callee_format: cfg.campaign.callee_format,
    };
    ccc_dialer::calling::dnc::DncLists::load(cfg.calling.dnc_files.clone(), norm)
        .expect("the sample's list loads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive_and_several_authorization_headers_are_refused() {
    let p = in_process(64 * 1024, async |_| {}).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/campaigns", p.base);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = http
            .get(&url)
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    // The right token and a wrong one, in either order: refused, whichever comes first.
    for (first, second) in [
        (TOKEN.to_string(), "not-the-token-0123456789".to_string()),
        ("not-the-token-0123456789".to_string(), TOKEN.to_string()),
        (TOKEN.to_string(), TOKEN.to_string()),
    ] {
        let r = http
            .get(&url)
            .header("authorization", format!("Bearer {first}"))
            .header("authorization", format!("Bearer {second}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 401);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("one `Authorization` header")),
            "{body}"
        );
    }
    p.stop.send_replace(ccc_dialer::dispatch::Stop::Now);
    let _ = p.task.await;
}
