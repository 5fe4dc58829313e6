//! A campaign with redials whose outcome or tag tracking stops on an account-level refusal (a
//! CAM policy allowing CreateAIAgentCall but not DescribeTelCdr or DescribeAICallExtractResult):
//! `run` ends once nothing else can be dialled, exits 3 naming the refused action, its code and
//! the fix, and never waits forever for records or tags no tracker will fetch; a rerun after the
//! fix continues and finishes with one call per contact plus the policy's redials. `serve`
//! keeps the campaign waiting, its reason saying why and what to do.

use ccc_dialer::store::{CampaignState, Store};

use crate::redials::{
    by_callee, created, mock, run, scratch, scripts, tag_scripts, tagged_scratch, FAST,
};
use crate::served::{self, Served};
use crate::support::{code_of, stderr_of};

/// The stand-in refuses `action`'s first request as a CAM policy without it would.
fn refused(action: &str) -> String {
    format!("[[action]]\nname = \"{action}\"\noutcomes = [\"error:AuthFailure.UnauthorizedOperation\"]\n")
}

/// `run` ends (exit 3) saying `tracker` stopped on `action`'s refusal, the fix and how to go on;
/// the campaign is paused, its reason naming the action.
async fn halts_naming(s: &crate::support::Scratch, tracker: &str, action: &str) {
    let out = run(s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 3, "{err}");
    for want in [
        format!("{tracker} stopped: {action} answered AuthFailure.UnauthorizedOperation"),
        format!("fix: grant the key's user permission for ccc:{action}"),
        "rerun the same command after the fix".to_string(),
    ] {
        assert!(err.contains(&want), "wants {want:?}: {err}");
    }
    assert_paused_naming(s, action).await;
}

/// The campaign `run` halted: paused, its reason naming the refused action.
async fn assert_paused_naming(s: &crate::support::Scratch, action: &str) {
    let store = Store::open_read_only(&s.state, false).unwrap();
    let c = store.find_campaign("run").await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Paused);
    let reason = c.reason.unwrap_or_default();
    assert!(reason.contains(action), "{reason}");
    assert!(reason.contains("rerun the same command"), "{reason}");
}

#[tokio::test]
async fn run_ends_instead_of_waiting_forever_when_describe_tel_cdr_is_refused_and_a_rerun_finishes()
{
    // 0: not answered, then answered. 1: answered. 2: busy every time (3 calls, max_dials).
    let faults = format!(
        "{}{}",
        refused("DescribeTelCdr"),
        scripts(&[
            (0, &["not_answered", "answered:1s"]),
            (1, &["answered:1s"]),
            (2, &["busy", "busy", "busy", "busy"]),
        ])
    );
    let mock = mock(&faults).await;
    let s = scratch(
        &mock,
        3,
        "[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"not_answered\", \"busy\"]\nmax_dials = 3\nafter = \"1s\"\n",
    );
    halts_naming(&s, "outcome tracking", "DescribeTelCdr").await;
    // Every contact was dialled once; nothing was redialled blind.
    for i in 0..3 {
        assert_eq!(created(&mock, i), 1, "calls created for callee {i}");
    }

    // The stand-in answers DescribeTelCdr now (its script is used up): the rerun finishes.
    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    for (i, outcome, dials) in [(0, "answered", 2), (1, "answered", 1), (2, "busy", 3)] {
        let r = &rows[&crate::redials::callee(i)];
        assert_eq!(
            (r.status.as_str(), r.outcome.as_str(), r.dials),
            ("placed", outcome, dials),
            "callee {i}: {r:?}"
        );
        assert_eq!(created(&mock, i), dials, "calls created for callee {i}");
    }
}

#[tokio::test]
async fn run_ends_instead_of_waiting_forever_when_post_call_tags_are_refused_and_a_rerun_finishes()
{
    // Answered asking for a callback, then answered without: 2 calls. One contact: the tag
    // queries go several at a time, and the refused one must be this contact's.
    let faults = format!(
        "{}{}",
        refused("DescribeAICallExtractResult"),
        tag_scripts(&[(0, &["answered:1s", "answered:1s"], &[true, false])])
    );
    let mock = mock(&faults).await;
    let s = tagged_scratch(
        &mock,
        1,
        "[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"busy\"]\nmax_dials = 3\nafter = \"1s\"\n\
         [[redial.on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"1s\"\n",
    );
    halts_naming(&s, "tag tracking", "DescribeAICallExtractResult").await;
    assert_eq!(
        created(&mock, 0),
        1,
        "not redialled before the tags are known"
    );

    let out = run(&s, &[]).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = by_callee(s.results());
    let r = &rows[&crate::redials::callee(0)];
    assert_eq!(
        (r.status.as_str(), r.outcome.as_str(), r.dials),
        ("placed", "answered", 2),
        "{r:?}"
    );
    assert_eq!(created(&mock, 0), 2, "the callback tag's redial, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_the_campaign_waiting_and_says_why_when_describe_tel_cdr_is_refused() {
    let faults = format!(
        "{}{}",
        refused("DescribeTelCdr"),
        scripts(&[(0, &["not_answered", "answered:1s"])])
    );
    let mock = mock(&faults).await;
    let s = served::scratch(
        &mock,
        &format!("{FAST}\n[calling]\nmin_gap = \"0s\"\n[redial]\non = [\"not_answered\"]\nafter = \"1s\"\n"),
    );
    let srv = Served::start(&s).await;
    let id = srv
        .create("untracked", &format!("callee\n+86138{:08}\n", 7_000))
        .await;
    let c = srv
        .wait_campaign(id, "the reason naming the stopped tracker", |c| {
            c["reason"]
                .as_str()
                .is_some_and(|r| r.contains("outcome tracking stopped"))
        })
        .await;
    assert_eq!(served::state(&c), "active", "{c}");
    let reason = c["reason"].as_str().unwrap_or_default();
    for want in [
        "DescribeTelCdr answered AuthFailure.UnauthorizedOperation",
        "permission for ccc:DescribeTelCdr",
        "restart serve",
    ] {
        assert!(reason.contains(want), "wants {want:?}: {c}");
    }
    assert_eq!(created(&mock, 0), 1, "not redialled blind");
    // `status` (beside the running service) shows the same reason.
    let text = crate::support::read_command("status", &s.state, &[]);
    assert!(
        text.contains("outcome tracking stopped: DescribeTelCdr"),
        "{text}"
    );
}
