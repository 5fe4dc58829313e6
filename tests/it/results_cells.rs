//! Spreadsheet formula injection: every CSV the dialer writes (results file, `export`,
//! `GET …/results`) starts a formula-looking cell with `'`; an E.164 callee stays dialable.

use std::process::Command;

use crate::served::*;
use crate::support::*;

const HOSTILE: &str = "callee,id\n\
\"=cmd|' /C calc'!A0\",x1\n\
+1+1,x2\n\
+8613800138000,@SUM(1+1)\n\
+8613800138001,-2+3\n";

/// Every cell of `csv` that starts like a formula starts with `'` instead.
fn assert_no_formula(csv: &str) {
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    for rec in r.records() {
        for cell in rec.unwrap().iter() {
            let formula = cell.starts_with(['=', '@', '\t', '\r'])
                || (cell.starts_with(['+', '-']) && !cell[1..].bytes().all(|b| b.is_ascii_digit()));
            assert!(!formula, "a formula cell {cell:?} in\n{csv}");
        }
    }
    for quoted in ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(1+1)", "'-2+3"] {
        assert!(csv.contains(quoted), "{quoted} missing from\n{csv}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_results_file_and_export_neutralise_formulas_but_keep_e164_callees() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "callee_format = \"e164\"", "");
    s.write_contacts(HOSTILE);
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&s.results).unwrap();
    assert_no_formula(&text);
    assert!(text.contains("\n+8613800138000,placed,"), "{text}");

    let again = s.dir.path().join("again.csv");
    let out = Command::new(bin())
        .args(["export", "--state"])
        .arg(&s.state)
        .arg("--results")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_no_formula(&std::fs::read_to_string(&again).unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_results_neutralise_formulas() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    let srv = Served::start(&s).await;
    let id = srv.create("hostile", HOSTILE).await;
    srv.wait_campaign(id, "completed", |c| state(c) == "completed")
        .await;
    let text = srv
        .http
        .get(srv.url(&format!("/v1/campaigns/{id}/results")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_no_formula(&text);
}
