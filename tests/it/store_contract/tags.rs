//! Tags and analyses of answered sessions and the own do-not-call list, on both stores: an
//! answered session is enrolled for the kinds asked for, its tags and analysis are written once
//! (with the opt-out a matching tag makes), they appear as the results' extra cells, and an
//! operator takes a number off the own list with a reason.

use ccc_dialer::contact::Status;
use ccc_dialer::outcomes::ai_results::{Analysis, Kind, Tag};
use ccc_dialer::outcomes::tag_rules::TagRule;
use ccc_dialer::store::{AttemptOutcome, ResultExtras, Store, TagActions};

use super::DEADLINE;
use crate::pg::Fixture;

contract!(
    answered_sessions_are_enrolled_for_tags_and_analysis_and_each_is_written_once,
    an_opt_out_tag_lists_the_number_and_an_operator_takes_it_off_with_a_reason,
);

fn tag(name: &str, value: &str) -> Tag {
    Tag {
        name: name.into(),
        info_type: "Text".into(),
        info_content: String::new(),
        value: value.into(),
        result: "{}".into(),
    }
}

/// Two contacts dialled (sessions `s-<id>`), the first answered (recorded at `recorded`).
async fn answered_campaign(store: &Store, recorded: i64) -> (i64, Vec<i64>) {
    let id = super::campaign_with(
        store,
        "t",
        vec![
            super::row(2, "008613000000001"),
            super::row(3, "008613000000002"),
        ],
    )
    .await;
    let mut ids = Vec::new();
    for d in super::due(store, id, 1_000).await {
        let n = store.begin_attempt(d.id, 1_000, None).await.unwrap();
        let o = AttemptOutcome {
            session_id: Some(format!("s-{}", d.id)),
            ..super::outcome(Status::Placed, "placed", Some(1_000))
        };
        store.finish_attempt(d.id, n, o).await.unwrap();
        ids.push(d.id);
    }
    let mut rec = super::outcomes::answered(&format!("s-{}", ids[0]));
    rec.recorded_at = recorded;
    store.record_outcomes(vec![rec]).await.unwrap();
    (id, ids)
}

async fn answered_sessions_are_enrolled_for_tags_and_analysis_and_each_is_written_once(
    f: &Fixture,
) {
    let store = f.open().await;
    // Answered before the kinds were asked for: enrolled when they are (since its time).
    let (id, ids) = answered_campaign(&store, 5_000).await;
    let s = format!("s-{}", ids[0]);
    assert_eq!(store.next_tag_check_due(Kind::Tags).await.unwrap(), None);
    store
        .set_tag_kinds(vec![Kind::Tags, Kind::Analysis], 6_000)
        .await
        .unwrap();
    assert_eq!(
        store.next_tag_check_due(Kind::Tags).await.unwrap(),
        None,
        "recorded before `since`"
    );
    store
        .set_tag_kinds(vec![Kind::Tags, Kind::Analysis], 5_000)
        .await
        .unwrap();
    assert_eq!(
        store.next_tag_check_due(Kind::Tags).await.unwrap(),
        Some(5_000)
    );
    assert_eq!(store.pending_tag_checks(vec![id]).await.unwrap(), 2);
    let due = store.due_tag_checks(Kind::Tags, 5_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].session_id.as_str(), due[0].contact_id, due[0].checks),
        (s.as_str(), ids[0], 0)
    );
    assert_eq!(due[0].ended_at, Some(1_800_000_040));
    // Not ready yet: asked again later; a given-up analysis check is dropped.
    store
        .reschedule_tag_checks(Kind::Tags, vec![(s.clone(), Some(9_000))])
        .await
        .unwrap();
    assert!(store
        .due_tag_checks(Kind::Tags, 8_999, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.due_tag_checks(Kind::Tags, 9_000, 10).await.unwrap()[0].checks,
        1
    );
    store
        .reschedule_tag_checks(Kind::Analysis, vec![(s.clone(), None)])
        .await
        .unwrap();
    assert_eq!(
        store.next_tag_check_due(Kind::Analysis).await.unwrap(),
        None
    );

    let tags = vec![tag("intent", "buy"), tag("budget", "high")];
    let w = store
        .record_tags(s.clone(), tags.clone(), TagActions::default(), 10_000)
        .await
        .unwrap();
    assert!(
        w.new && w.opted_out.is_none() && w.redial.is_none(),
        "{w:?}"
    );
    let w = store
        .record_tags(
            s.clone(),
            vec![tag("intent", "no")],
            TagActions::default(),
            11_000,
        )
        .await
        .unwrap();
    assert!(!w.new, "a session's tags are written once");
    assert_eq!(store.session_tags(s.clone()).await.unwrap(), tags);
    assert_eq!(store.pending_tag_checks(vec![id]).await.unwrap(), 0);
    assert_eq!(
        store.campaign_tag_names(id).await.unwrap(),
        vec!["intent".to_string(), "budget".to_string()]
    );
    let a = Analysis {
        summary: "wants a quote".into(),
        mood: "calm".into(),
        intention: "buy".into(),
        result: "[]".into(),
    };
    assert!(store
        .record_analysis(s.clone(), a.clone(), 12_000)
        .await
        .unwrap());
    assert!(!store
        .record_analysis(s.clone(), a.clone(), 13_000)
        .await
        .unwrap());
    assert!(
        !store
            .record_tags("s-nobody".into(), tags.clone(), TagActions::default(), 1)
            .await
            .unwrap()
            .new,
        "a session no attempt has"
    );
    let results = store.contact_results(ids[0]).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].tags.clone(), results[0].analysis.clone()),
        (tags, Some(a))
    );
    assert!(store.contact_results(ids[1]).await.unwrap().is_empty());

    // The results' extra cells: summary, mood, intention, then the tags in the order seen.
    let extras = store.result_extras(id).await.unwrap();
    assert_eq!(
        extras,
        ResultExtras {
            analysis: true,
            tags: vec!["intent".into(), "budget".into()]
        }
    );
    let page = store
        .results_page_with(id, 0, 10, extras.clone())
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0].1,
        vec!["wants a quote", "calm", "buy", "buy", "high"]
    );
    assert_eq!(page[1].1, vec![""; 5]);
    assert_eq!(page[1].0.line, 3);
    let (n, cells) = store
        .for_each_result_with(id, false, extras, Vec::new(), |all, _, cells| {
            all.push(cells);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(cells[0], page[0].1);
}

async fn an_opt_out_tag_lists_the_number_and_an_operator_takes_it_off_with_a_reason(f: &Fixture) {
    let store = f.open().await;
    let (id, ids) = answered_campaign(&store, 5_000).await;
    let s = format!("s-{}", ids[0]);
    let actions = TagActions {
        opt_out: Some(TagRule {
            name: "do_not_call".into(),
            value: "yes".into(),
            after: None,
        }),
    };
    let w = store
        .record_tags(s.clone(), vec![tag("do_not_call", "yes")], actions, 7_000)
        .await
        .unwrap();
    assert_eq!(w.opted_out.as_deref(), Some("008613000000001"));
    assert!(store
        .own_dnc_numbers()
        .await
        .unwrap()
        .contains("008613000000001"));
    let entries = store.own_dnc_entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        (
            e.number.as_str(),
            e.added_at,
            e.source.as_str(),
            e.campaign_id,
            e.campaign.as_deref(),
            e.session_id.as_deref()
        ),
        (
            "008613000000001",
            7_000,
            "opt_out_tag",
            Some(id),
            Some("t"),
            Some(s.as_str())
        )
    );
    assert!(e.reason.contains("do_not_call=yes"), "{}", e.reason);
    let removed = store
        .remove_own_dnc("008613000000001".into(), "asked again".into(), 8_000)
        .await
        .unwrap();
    assert_eq!(removed.as_ref(), Some(e));
    assert_eq!(
        store
            .remove_own_dnc("008613000000001".into(), "twice".into(), 9_000)
            .await
            .unwrap(),
        None
    );
    assert!(store.own_dnc_entries().await.unwrap().is_empty());
}
