//! Personal data retention: `purge` (CLI and API) and `[store] retain` leave no phone number of
//! the purged campaign in the store's bytes, and keep everything of the others.

use std::path::Path;
use std::process::Command;

use crate::served::{self, Served};
use crate::support::*;

/// The store file and its WAL, as bytes.
fn store_bytes(state: &Path) -> Vec<u8> {
    let mut all = std::fs::read(state).expect("store file");
    let wal = state.with_file_name(format!(
        "{}-wal",
        state.file_name().unwrap().to_string_lossy()
    ));
    if let Ok(w) = std::fs::read(wal) {
        all.extend(w);
    }
    all
}

fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// `139PPIIIIII`: the number's national digits, in whatever spelling it was stored.
fn digits(prefix: u32, i: usize) -> String {
    served::normalised(prefix, i)[4..].to_string()
}

fn purge_cmd(state: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("purge")
        .arg("--state")
        .arg(state)
        .args(extra)
        .env_remove("CCC_DIALER_LOG")
        .output()
        .expect("spawn ccc-dialer purge")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_purge_leaves_no_number_of_that_campaign_in_the_store_file() {
    let mock = mock_with(20, 0, "").await;
    let s = served::scratch(&mock, "");
    let srv = Served::start(&s).await;
    let spring = srv.create("spring", &served::csv_of(41, 5)).await;
    let autumn = srv.create("autumn", &served::csv_of(42, 5)).await;
    for id in [spring, autumn] {
        srv.wait_campaign(id, "completed", |c| served::state(c) == "completed")
            .await;
    }
    let before = store_bytes(&s.state);
    assert!(
        holds(&before, &digits(41, 0)),
        "the numbers are in the store to begin with"
    );
    let uploads: Vec<_> = std::fs::read_dir(s.dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(uploads.len(), 2, "{uploads:?}");

    // Its calls are still in the per-person dial history: refused unless asked.
    let (status, body) = srv.post(&format!("/v1/campaigns/{spring}/purge"), "").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dial history"),
        "{body}"
    );
    assert!(holds(&store_bytes(&s.state), &digits(41, 0)));

    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{spring}/purge?forget_dial_history=true"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["purged"]["contacts"], 5, "{body}");
    assert_eq!(body["purged"]["attempts"], 5, "{body}");
    assert_eq!(body["purged"]["dials"], 5, "{body}");
    assert!(body["purged_at"].is_string(), "{body}");
    assert_eq!(body["campaign"]["purged_at"], body["purged_at"], "{body}");
    assert_eq!(body["campaign"]["total"], 0, "{body}");

    // Read while serve still holds the store: the purge itself emptied the WAL.
    let after = store_bytes(&s.state);
    for i in 0..5 {
        assert!(
            !holds(&after, &digits(41, i)),
            "spring's number {i} is still in the store's bytes"
        );
        assert!(
            holds(&after, &digits(42, i)),
            "autumn's number {i} must stay"
        );
    }
    let left: Vec<_> = std::fs::read_dir(s.dir.path().join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "spring's upload deleted, autumn's kept: {left:?}"
    );
    let kept = std::fs::read_to_string(&left[0]).unwrap();
    assert!(kept.contains(&served::callee(42, 0)), "{kept}");

    // Again: nothing to do. The report says when.
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{spring}/purge?forget_dial_history=true"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["purged"]["contacts"], 0, "{body}");
    let (_, report) = srv.get(&format!("/v1/campaigns/{spring}/report")).await;
    assert!(
        report["campaign"]["purged_at"]["utc"].is_string(),
        "{report}"
    );
    assert_eq!(report["total"], 0, "{report}");
    let (_, report) = srv.get(&format!("/v1/campaigns/{autumn}/report")).await;
    assert_eq!(report["total"], 5, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_purge_refuses_a_campaign_still_dialling() {
    // Every call is "outside calling hours": the campaign stays active, its contacts pending.
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:FailedOperation.CalloutRuleNotWorkTime\"]\n",
    )
    .await;
    let s = served::scratch(&mock, "later_delay = \"1h\"\n");
    let srv = Served::start(&s).await;
    let id = srv.create("busy", &served::csv_of(43, 3)).await;
    srv.wait_campaign(id, "dialled once", |c| {
        served::count(c, "pending") == 3 && c["counts"]["in_flight"] == 0
    })
    .await;
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{id}/purge?forget_dial_history=true"),
            "",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(holds(&store_bytes(&s.state), &digits(43, 0)));
    // Cancelled, it may go.
    let (status, _) = srv.post(&format!("/v1/campaigns/{id}/cancel"), "").await;
    assert_eq!(status, 200);
    srv.wait_campaign(id, "cancelled and drained", |c| {
        served::state(c) == "cancelled" && c["counts"]["in_flight"] == 0
    })
    .await;
    let (status, body) = srv
        .post(
            &format!("/v1/campaigns/{id}/purge?forget_dial_history=true"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["purged"]["contacts"], 3, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_purge_of_a_run_deletes_its_numbers_and_documents_its_refusals() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let number = |i: usize| phone(i)[4..].to_string();
    assert!(holds(&store_bytes(&s.state), &number(0)));

    let out = purge_cmd(&s.state, &["--campaign", "nosuch"]);
    assert_eq!(code_of(&out), 2);
    assert!(
        stderr_of(&out).contains("no such campaign"),
        "{}",
        stderr_of(&out)
    );

    let out = purge_cmd(&s.state, &["--campaign", "run"]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--forget-dial-history"),
        "{}",
        stderr_of(&out)
    );

    let out = purge_cmd(&s.state, &["--campaign", "run", "--forget-dial-history"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("purged 4 contacts, 4 attempts, 4 dial history entries"),
        "{said}"
    );
    let bytes = store_bytes(&s.state);
    for i in 0..4 {
        assert!(
            !holds(&bytes, &number(i)),
            "number {i} is still in the store's bytes"
        );
    }
    // The user's own contacts file is theirs: never deleted.
    assert!(s.contacts.exists());
    let status = Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("(id 1, 0 contacts)"), "{said}");
    assert!(said.contains("  contacts purged "), "{said}");
    let out = purge_cmd(&s.state, &["--campaign", "1"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged before"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_purge_refuses_an_unfinished_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    {
        let store = ccc_dialer::store::Store::open(&state).unwrap();
        let c = store
            .create_campaign("open", "f", "a.csv", 0)
            .await
            .unwrap();
        let rows = vec![ccc_dialer::contact::NewContact {
            line: 2,
            callee: "008613912345678".into(),
            ext_id: None,
            overrides: Default::default(),
            skip_reason: None,
        }];
        store.insert_contacts(c.id, rows, 0).await.unwrap();
    }
    let out = purge_cmd(&state, &["--campaign", "open", "--forget-dial-history"]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cancel it first"),
        "{}",
        stderr_of(&out)
    );
    assert!(holds(&store_bytes(&state), "13912345678"));
}

#[tokio::test(flavor = "multi_thread")]
async fn store_retain_purges_a_campaign_finished_longer_ago_once_its_dials_aged_out() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "[store]\nretain = \"3h\"\n");
    s.write_contacts(&contacts_csv(3));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    // As if it finished two hours ago, its calls three days ago (past the dial history).
    {
        let c = rusqlite::Connection::open(&s.state).unwrap();
        let now = ccc_dialer::dispatch::now_ms();
        c.execute_batch(&format!(
            "UPDATE campaigns SET updated_at = {two_h};
             UPDATE contacts SET updated_at = {two_h};
             UPDATE dials SET at = {three_d};",
            two_h = now - 2 * 3_600_000,
            three_d = now - 3 * 86_400_000
        ))
        .unwrap();
    }
    let number = |i: usize| phone(i)[4..].to_string();
    // Finished two hours ago, kept three: a rerun keeps it.
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(holds(&store_bytes(&s.state), &number(0)));
    // Kept one hour: the rerun's start purges it.
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, cfg.replace("retain = \"3h\"", "retain = \"1h\"")).unwrap();
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let bytes = store_bytes(&s.state);
    for i in 0..3 {
        assert!(
            !holds(&bytes, &number(i)),
            "number {i} is still in the store's bytes"
        );
    }
    let out = Command::new(bin())
        .args(["report", "--format", "json", "--state"])
        .arg(&s.state)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["campaign"]["purged_at"]["utc"].is_string(), "{r}");
    // The run whose start purged it left its results file as it was (the store had nothing
    // left to write into it), and the next rerun is refused.
    assert_eq!(s.results().len(), 3);
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("was purged at"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(s.results().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_of_a_purged_campaign_is_refused_and_leaves_its_results_file_alone() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(4));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(s.results().len(), 4);
    let before = std::fs::read(&s.results).unwrap();
    let out = purge_cmd(&s.state, &["--campaign", "run", "--forget-dial-history"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let sent = mock.requests();

    let out = run_async(&s).await;
    let said = stderr_of(&out);
    assert_eq!(code_of(&out), 2, "{said}");
    assert!(
        said.contains("campaign run was purged at ")
            && said.contains("its contacts and results are gone from the store")
            && said.contains("new --state"),
        "{said}"
    );
    // Nothing dialled, and the results file is byte for byte what the first run wrote.
    assert_eq!(mock.requests(), sent);
    assert_eq!(std::fs::read(&s.results).unwrap(), before);
    assert_eq!(s.results().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn store_retain_waits_while_the_calls_are_in_the_dial_history() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "[store]\nretain = \"1h\"\n");
    s.write_contacts(&contacts_csv(2));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    {
        // Finished two hours ago, but called within the last two days.
        let c = rusqlite::Connection::open(&s.state).unwrap();
        let two_h = ccc_dialer::dispatch::now_ms() - 2 * 3_600_000;
        c.execute_batch(&format!(
            "UPDATE campaigns SET updated_at = {two_h}; UPDATE contacts SET updated_at = {two_h};"
        ))
        .unwrap();
    }
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(holds(&store_bytes(&s.state), &phone(0)[4..]));
}
