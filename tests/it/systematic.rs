//! A systematic API error (the same permanent or unrecognised code failing contact after
//! contact: a wrong agent id, a request shape the service refuses) halts the campaign after
//! `retry.systematic_after` contacts and gives those contacts back, instead of failing the list
//! one by one.

use crate::support::*;

const WRONG_AGENT: &str = "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:InvalidParameterValue.AIAgentId:the AI agent does not exist\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_agent_id_halts_after_k_contacts_and_every_one_is_pending_again() {
    let mock = mock_with(20, 0, WRONG_AGENT).await;
    // One request at a time, so exactly K reach the service before the halt.
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[rate]\nmax_in_flight = 1\n\n[retry]\nsystematic_after = 4\n",
    );
    s.write_contacts(&contacts_csv(30));
    let out = run_async(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 3, "{err}");
    assert!(
        err.contains("every contact is failing the same way"),
        "{err}"
    );
    assert!(err.contains("InvalidParameterValue.AIAgentId"), "{err}");
    assert!(err.contains("ai_agent_id"), "{err}");
    assert_eq!(mock.requests(), 4, "halted after K contacts");
    let rows = s.results();
    assert_eq!(rows.len(), 30);
    for r in &rows {
        assert_eq!((r.status.as_str(), r.attempts), ("pending", 0), "{r:?}");
    }

    // Fixed (here: an endpoint that accepts the agent), a rerun places everyone once.
    let fixed = mock_with(20, 0, "").await;
    let config = std::fs::read_to_string(&s.config)
        .expect("config")
        .replace(&mock.endpoint(), &fixed.endpoint());
    std::fs::write(&s.config, config).expect("config");
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(s
        .results()
        .iter()
        .all(|r| r.status == "placed" && r.attempts == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_that_fails_only_some_contacts_is_not_systematic() {
    // Every other contact is on the service's blacklist: a placed call between them breaks
    // the streak, so they fail one by one as they should.
    let mut faults = String::new();
    for i in (0..12).step_by(2) {
        faults.push_str(&fails_once(&phone(i), "FailedOperation.CalleeIsBlackUser"));
    }
    let mock = mock_with(20, 0, &faults).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[rate]\nmax_in_flight = 1\n\n[retry]\nsystematic_after = 2\n",
    );
    s.write_contacts(&contacts_csv(12));
    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    let failed = rows.iter().filter(|r| r.status == "failed").count();
    let placed = rows.iter().filter(|r| r.status == "placed").count();
    assert_eq!((failed, placed), (6, 6));
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_pauses_a_campaign_whose_every_contact_fails_the_same_way() {
    use crate::served::{count, csv_of, state, Served};
    let mock = mock_with(20, 0, WRONG_AGENT).await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[rate]\nmax_in_flight = 1\n\n[retry]\nsystematic_after = 3\n",
    );
    let served = Served::start(&s).await;
    let id = served.create("wrong-agent", &csv_of(3, 20)).await;
    let c = served
        .wait_campaign(id, "paused by the systematic error", |c| {
            state(c) == "paused"
        })
        .await;
    let reason = c["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("InvalidParameterValue.AIAgentId")
            && reason.contains("every contact is failing the same way"),
        "{c}"
    );
    // Replies in flight are recorded before the counts settle.
    let c = served
        .wait_campaign(id, "nothing in flight", |c| count(c, "in_flight") == 0)
        .await;
    assert_eq!(count(&c, "failed"), 0, "{c}");
    assert_eq!(count(&c, "pending"), 20, "{c}");
}
