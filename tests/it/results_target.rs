//! A `--results` typo must not destroy the state store or the contacts file: refused (exit 2)
//! before anything is written.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::*;

/// `run` with these `--results` and `--state` paths (config and contacts from `s`).
async fn run_to(s: &Scratch, results: &Path, state: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&s.config)
        .arg("--contacts")
        .arg(&s.contacts)
        .arg("--results")
        .arg(results)
        .arg("--state")
        .arg(state)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env_remove("CCC_DIALER_LOG")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn results_over_the_state_store_its_wal_or_the_contacts_is_refused_and_nothing_is_written() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    let contacts_before = std::fs::read(&s.contacts).unwrap();

    // A fresh store: --results s.db --state s.db.
    let out = run_to(&s, &s.state, &s.state).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("is the same file as --state"),
        "{}",
        stderr_of(&out)
    );
    assert!(!s.state.exists(), "no store was created");

    // The contacts file, spelt another way.
    let sub = s.dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = run_to(&s, &sub.join("../contacts.csv"), &s.state).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("is the same file as --contacts"));
    assert_eq!(std::fs::read(&s.contacts).unwrap(), contacts_before);

    // A real run, then the typo against the existing store and its WAL file.
    let out = run_to(&s, &s.results, &s.state).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let store_before = std::fs::read(&s.state).unwrap();
    for target in [s.state.clone(), s.dir.path().join("state.db-wal")] {
        let out = run_to(&s, &target, &s.state).await;
        assert_eq!(
            code_of(&out),
            2,
            "{}: {}",
            target.display(),
            stderr_of(&out)
        );
    }
    assert_eq!(std::fs::read(&s.state).unwrap(), store_before);
    assert_eq!(mock.stats().accepted, 3, "only the real run sent anything");

    // `export` refuses the same typo, and the campaign's contacts file.
    let export = |results: std::path::PathBuf| {
        let state = s.state.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(bin())
                .args(["export", "--state"])
                .arg(&state)
                .arg("--results")
                .arg(&results)
                .output()
                .unwrap()
        })
    };
    let out = export(s.state.clone()).await.unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert_eq!(std::fs::read(&s.state).unwrap(), store_before);
    let out = export(s.contacts.clone()).await.unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("the campaign's contacts file"));
    assert_eq!(std::fs::read(&s.contacts).unwrap(), contacts_before);
    let out = export(s.dir.path().join("again.csv")).await.unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
}
