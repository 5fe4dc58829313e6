//! Operators put failed contacts back in the queue (`ccc-dialer requeue`, `POST
//! /v1/campaigns/{id}/requeue`): pending again with their attempts reset, dialled through every
//! calling rule, the requeue recorded in their history; nothing that could call someone twice.

use std::process::Command;

use crate::support::*;

fn requeue(s: &Scratch, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("requeue")
        .arg("--state")
        .arg(&s.state)
        .args(args)
        .output()
        .expect("spawn requeue")
}

#[tokio::test(flavor = "multi_thread")]
async fn requeued_failed_contacts_are_dialled_again_through_every_calling_rule() {
    // Contacts 0-3 fail once with a transient code and, with one attempt allowed, end failed.
    let mut faults = String::new();
    for i in 0..4 {
        faults.push_str(&fails_once(&phone(i), "ResourceUnavailable"));
    }
    faults.push_str(&fails_once(&phone(5), "FailedOperation.CalleeIsBlackUser"));
    // Contact 6 fails with an error after which the service may have created the call.
    faults.push_str(&fails_once(&phone(6), "InternalError"));
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nmax_attempts = 1\n\n[calling]\nmin_gap = \"0s\"\ndnc_files = [\"dnc.csv\"]\n",
    );
    let dnc = s.dir.path().join("dnc.csv");
    std::fs::write(&dnc, "number\n").expect("dnc");
    s.write_contacts(&contacts_csv(8));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let failed: Vec<_> = s
        .results()
        .into_iter()
        .filter(|r| r.status == "failed")
        .collect();
    assert_eq!(failed.len(), 6);

    // A failure that may have placed the call is not requeued without the double-call flag.
    let out = requeue(&s, &["--status", "failed", "--code", "InternalError"]);
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(said.contains("nothing requeued"), "{said}");

    // What could call someone twice is refused, and nothing changes.
    let out = requeue(&s, &["--status", "placed"]);
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("twice"), "{}", stderr_of(&out));
    let out = requeue(&s, &["--status", "unknown"]);
    assert_eq!(code_of(&out), 2);
    assert!(stderr_of(&out).contains("--allow-double-call"));
    let out = requeue(&s, &["--status", "failed", "--campaign", "nope"]);
    assert_eq!(code_of(&out), 2);

    // Contact 1 went on the do-not-call list meanwhile: requeued, it is still never called.
    std::fs::write(&dnc, format!("number\n{}\n", phone(1))).expect("dnc");
    let out = requeue(
        &s,
        &[
            "--status",
            "failed",
            "--code",
            "ResourceUnavailable",
            "--campaign",
            "run",
        ],
    );
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("4 failed contacts requeued"), "{said}");

    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows: std::collections::BTreeMap<_, _> = s
        .results()
        .into_iter()
        .map(|r| (r.callee.clone(), r))
        .collect();
    for i in [0, 2, 3] {
        let r = &rows[&phone(i)];
        assert_eq!((r.status.as_str(), r.attempts), ("placed", 1), "{r:?}");
    }
    assert_eq!(rows[&phone(1)].status, "skipped");
    assert_eq!(rows[&phone(1)].error_code, "Dnc");
    // Another code was not asked for: still failed.
    assert_eq!(rows[&phone(5)].status, "failed");
    assert_eq!(mock.stats().requests_by_callee[&phone(1)], 1);

    // The history says what happened.
    let out = Command::new(bin())
        .args(["status", "--state"])
        .arg(&s.state)
        .args(["--callee", &phone(0)])
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "requeued by an operator (ccc-dialer requeue) (was failed: ResourceUnavailable)"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_requeues_a_completed_campaigns_failed_contacts_and_dials_them() {
    use crate::served::{count, csv_of, normalised, state, Served};
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:ResourceUnavailable\"]\n",
    )
    .await;
    let s = Scratch::new(&mock.endpoint(), "", "[retry]\nmax_attempts = 1\n");
    let served = Served::start(&s).await;
    let id = served.create("flaky", &csv_of(4, 6)).await;
    let c = served
        .wait_campaign(id, "completed, every contact failed", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "failed"), 6, "{c}");

    let path = format!("/v1/campaigns/{id}/requeue");
    let (status, body) = served.post(&path, r#"{"status": "placed"}"#).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_requeue", "{body}");
    let (status, body) = served.post(&path, r#"{"status": "unknown"}"#).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = served.post(&path, "not json").await;
    assert_eq!(status, 400, "{body}");
    // An empty code is refused, not read as "every code" (schemathesis ST201).
    let (status, body) = served
        .post(&path, r#"{"status": "failed", "codes": [""]}"#)
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, body) = served
        .post(
            &path,
            r#"{"status": "failed", "codes": ["ResourceUnavailable"]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requeued"], 6, "{body}");
    let c = served
        .wait_campaign(id, "completed again, every contact placed", |c| {
            state(c) == "completed" && count(c, "placed") == 6
        })
        .await;
    assert_eq!(count(&c, "failed"), 0, "{c}");
    let (_, contact) = served
        .get(&format!("/v1/campaigns/{id}/contacts/{}", normalised(4, 2)))
        .await;
    assert_eq!(contact["attempts_used"], 1, "{contact}");
    let outcomes: Vec<&str> = contact["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["error", "requeued", "placed"], "{contact}");
}
