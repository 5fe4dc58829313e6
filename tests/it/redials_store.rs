//! Redials in the SQLite store beyond the behaviours both stores are held to in
//! `store_contract::redials` (an outcome in `redial.on` redials, a repeat or an older session's
//! record does nothing, `max_dials` counts every call): a redial due outside the calling window is
//! held by the window gate until its opening, like any first call; redial settings are checked
//! alike everywhere; an opt-out in the same tags wins over a `[[redial.on_tag]]` match.

use std::time::Duration;

use ccc_dialer::calling::gate::Gate;
use ccc_dialer::config::Config;
use ccc_dialer::contact::{NewContact, Overrides, Status};
use ccc_dialer::dispatch::rules::{Rules, Verdict};
use ccc_dialer::outcomes::ai_results::{Kind, Tag};
use ccc_dialer::outcomes::tag_rules::TagRule;
use ccc_dialer::redial::RedialPolicy;
use ccc_dialer::store::{AttemptOutcome, OutcomeRecord, Store, TagActions};

const CALLEE: &str = "008613000000001";

async fn store_with_policy(policy: Option<RedialPolicy>) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).unwrap();
    let c = store.create_campaign("t", "fp", "x.csv", 0).await.unwrap();
    let row = NewContact {
        line: 2,
        callee: CALLEE.into(),
        ext_id: None,
        overrides: Overrides::default(),
        skip_reason: None,
    };
    store.insert_contacts(c.id, vec![row], 0).await.unwrap();
    store.set_redial_policy(c.id, policy).await.unwrap();
    (dir, store, c.id)
}

/// Dial the campaign's due contact at `sent_at` (unix ms): placed with session `session`.
async fn dial(store: &Store, campaign: i64, sent_at: i64, session: &str) -> i64 {
    let due = store
        .due_contacts(campaign, sent_at, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "one contact due at {sent_at}");
    let d = &due[0];
    let n = store.begin_attempt(d.id, sent_at, None).await.unwrap();
    let o = AttemptOutcome {
        status: Status::Placed,
        attempts: d.attempts + 1,
        reschedules: 0,
        next_at: 0,
        session_id: Some(session.into()),
        request_id: None,
        error_code: None,
        error_message: None,
        outcome: "placed",
        sent_at: Some(sent_at),
        finished_at: sent_at,
    };
    store.finish_attempt(d.id, n, o).await.unwrap();
    d.id
}

/// A record of `session` ended (unix seconds) `ended` with `class`/`code`.
fn record(session: &str, class: &str, code: i64, ended: i64) -> OutcomeRecord {
    OutcomeRecord {
        session_id: session.into(),
        class: class.into(),
        end_status: Some(code),
        end_status_string: Some(
            match code {
                202 => "notAnswer",
                206 => "busy",
                _ => "ok",
            }
            .into(),
        ),
        ended_at: Some(ended),
        source: "poll".into(),
        recorded_at: ended * 1000 + 500,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_redial_due_outside_the_window_is_held_by_the_window_until_its_opening() {
    let cfg = Config::parse(
        std::path::Path::new("t.toml"),
        "[tencentcloud]\nendpoint = \"builtin\"\n[campaign]\nsdk_app_id = 1\nai_agent_id = 2\n\
         [calling]\ntimezone = \"Asia/Shanghai\"\nmin_gap = \"0s\"\n\
         [calling.hours]\nmon = [\"09:00-17:00\"]\ntue = [\"09:00-17:00\"]\nwed = [\"09:00-17:00\"]\n\
         thu = [\"09:00-17:00\"]\nfri = [\"09:00-17:00\"]\nsat = [\"09:00-17:00\"]\nsun = [\"09:00-17:00\"]\n\
         [outcomes]\nenabled = true\n[redial]\non = [\"not_answered\"]\nafter = \"2h\"\n",
    )
    .unwrap();
    let (rules, _) = Rules::from_config(&cfg).unwrap();
    let (_dir, store, id) = store_with_policy(cfg.redial.clone()).await;
    // A Chinese number: the window is Shanghai's. The first call at 15:50 there, inside the
    // window; it ends at 16:00, the redial falls due at 18:00, after the window closed.
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let first = at("2026-12-01T15:50:00+08:00");
    dial(&store, id, first, "s-1").await;
    let ended = at("2026-12-01T16:00:00+08:00") / 1000;
    let w = store
        .record_outcomes(vec![record("s-1", "not_answered", 202, ended)])
        .await
        .unwrap();
    assert_eq!(w.redials, 1);
    let due_ms = at("2026-12-01T18:00:00+08:00");
    let due = store
        .due_contacts(id, due_ms, 10, Default::default())
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let verdict = rules
        .check(
            &store,
            &due[0],
            jiff::Timestamp::from_millisecond(due_ms).unwrap(),
        )
        .await
        .unwrap();
    let opening = at("2026-12-02T09:00:00+08:00");
    match verdict {
        Verdict::Wait {
            gate: Gate::WindowClosed { .. },
            until,
        } => assert_eq!(until, opening),
        other => panic!("expected the window to hold the redial, got {other:?}"),
    }
    // At the opening it goes.
    let verdict = rules
        .check(
            &store,
            &due[0],
            jiff::Timestamp::from_millisecond(opening).unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(verdict, Verdict::Go), "{verdict:?}");
}

const BASE: &str =
    "[tencentcloud]\nendpoint = \"builtin\"\n[campaign]\nsdk_app_id = 1\nai_agent_id = 2\n";

#[test]
fn redial_settings_are_checked_alike_in_the_config_serve_settings_and_sidecars() {
    use ccc_dialer::server::settings::CampaignSettings;
    let parse = |extra: &str| {
        Config::parse(
            std::path::Path::new("dialer.toml"),
            &format!("{BASE}[outcomes]\nenabled = true\n{extra}"),
        )
    };
    let e = parse("[redial]\non = [\"busy\", \"bsy\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("dialer.toml: redial.on[1] = \"bsy\": expected an outcome class"),
        "{e}"
    );
    let e = parse("[redial]\non = [\"busy\"]\nmax_dials = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("dialer.toml: redial.max_dials = 0: expected"),
        "{e}"
    );
    let e = parse("[redial]\non = [\"busy\"]\nretries = 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown key retries in [redial]") && e.contains("line"),
        "{e}"
    );
    // Redials are decided from outcomes: without outcome tracking the table is refused.
    let e = Config::parse(
        std::path::Path::new("dialer.toml"),
        &format!("{BASE}[redial]\non = [\"busy\"]\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("[outcomes] enabled = true"), "{e}");
    let cfg = parse("[redial]\non = [\"busy\"]\nafter = \"30m\"\n").unwrap();
    let p = cfg.redial.clone().unwrap();
    assert_eq!((p.max_dials, p.after), (3, Duration::from_secs(1800)));
    // The same keys in serve's settings and an inbox sidecar, the same words when bad.
    let e = CampaignSettings::from_json(br#"{"redial": {"on": ["busy"], "max_dials": 11}}"#)
        .unwrap_err();
    assert!(e.starts_with("redial.max_dials = 11: expected"), "{e}");
    let e = CampaignSettings::from_toml("[redial]\non = [\"answered\"]\n").unwrap_err();
    assert!(
        e.starts_with("redial.on[0] = \"answered\": expected"),
        "{e}"
    );
    let s =
        CampaignSettings::from_toml("[redial]\non = [\"not_answered\"]\nmax_dials = 2\n").unwrap();
    assert_eq!(s.redial(&cfg).map(|p| p.max_dials), Some(2));
    assert_eq!(CampaignSettings::default().redial(&cfg), cfg.redial);
    let off = Config::parse(std::path::Path::new("dialer.toml"), BASE).unwrap();
    assert!(s
        .validate_with(&off)
        .unwrap_err()
        .contains("[outcomes] enabled"));
    // The demo redials, and its per-person gap lets it within `after`.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = Config::load(&root.join("config/demo.toml")).unwrap();
    let p = demo.redial.expect("the demo redials");
    assert!(demo.calling.min_gap <= p.after);
}

fn tag(name: &str, info_type: &str, value: &str) -> Tag {
    Tag {
        name: name.into(),
        info_type: info_type.into(),
        info_content: String::new(),
        value: value.into(),
        result: String::new(),
    }
}

/// An answered record of `session`, ended (unix seconds) `ended`.
fn answered(session: &str, ended: i64) -> OutcomeRecord {
    OutcomeRecord {
        answered_at: Some(ended - 20),
        duration_s: Some(20),
        ..record(session, "answered", 1, ended)
    }
}

#[tokio::test]
async fn an_opt_out_in_the_same_tags_wins_over_a_callback_and_a_false_callback_asks_nothing() {
    let rule = |name: &str, after: Option<Duration>| TagRule {
        name: name.into(),
        value: "yes".into(),
        after,
    };
    let p = RedialPolicy {
        on: Vec::new(),
        max_dials: 3,
        after: Duration::from_secs(10),
        on_tag: vec![rule("callback", Some(Duration::from_secs(60)))],
    };
    let (_dir, store, id) = store_with_policy(Some(p)).await;
    store.set_tag_kinds(vec![Kind::Tags], 0).await.unwrap();
    dial(&store, id, 1_000_000, "s-1").await;
    store
        .record_outcomes(vec![answered("s-1", 1_030)])
        .await
        .unwrap();
    let w = store
        .record_tags(
            "s-1".into(),
            vec![tag("callback", "Boolean", "false")],
            TagActions::default(),
            1_040_000,
        )
        .await
        .unwrap();
    assert_eq!((w.new, w.redial), (true, None));
    assert_eq!(store.redial_wait(id).await.unwrap(), None);

    let (_dir2, store, id) = store_with_policy(Some(RedialPolicy {
        on: Vec::new(),
        max_dials: 3,
        after: Duration::from_secs(10),
        on_tag: vec![rule("callback", Some(Duration::from_secs(60)))],
    }))
    .await;
    store.set_tag_kinds(vec![Kind::Tags], 0).await.unwrap();
    dial(&store, id, 1_000_000, "s-1").await;
    store
        .record_outcomes(vec![answered("s-1", 1_030)])
        .await
        .unwrap();
    let actions = TagActions {
        opt_out: Some(rule("opt_out", None)),
    };
    let w = store
        .record_tags(
            "s-1".into(),
            vec![
                tag("callback", "Boolean", "true"),
                tag("opt_out", "Text", "yes"),
            ],
            actions,
            1_040_000,
        )
        .await
        .unwrap();
    assert_eq!(w.opted_out.as_deref(), Some(CALLEE));
    assert_eq!(w.redial, None, "an opted-out number is never called again");
    let d = store.contact_detail(id, CALLEE).await.unwrap().unwrap();
    assert_eq!(d.status, "placed");
}

#[test]
fn on_tag_rules_stand_alone_need_tags_read_and_are_checked_alike_everywhere() {
    use ccc_dialer::server::settings::CampaignSettings;
    const ON_TAG: &str =
        "[[redial.on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"1d\"\n";
    let parse = |outcomes: &str, extra: &str| {
        Config::parse(
            std::path::Path::new("dialer.toml"),
            &format!("{BASE}[outcomes]\nenabled = true\n{outcomes}{extra}"),
        )
    };
    // `on` may be left out when on_tag rules are given.
    let cfg = parse("tags = true\n", ON_TAG).unwrap();
    let p = cfg.redial.clone().expect("a policy");
    assert!(p.on.is_empty());
    assert_eq!(
        (p.on_tag[0].name.as_str(), p.on_tag[0].after),
        ("callback", Some(Duration::from_secs(86_400)))
    );
    // Without tags read, a tag rule could never match: refused, naming the key.
    let e = parse("", ON_TAG).unwrap_err().to_string();
    assert!(
        e.starts_with("dialer.toml: redial.on_tag = (set): expected [outcomes] tags = true"),
        "{e}"
    );
    // Neither `on` nor `on_tag`: the table asks for nothing.
    let e = parse("tags = true\n", "[redial]\nmax_dials = 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("redial.on = []") && e.contains("on_tag"), "{e}");
    let e = parse(
        "tags = true\n",
        "[[redial.on_tag]]\nname = \"callback\"\nvalue = \"yes\"\nafter = \"later\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("dialer.toml: redial.on_tag[0].after = \"later\": expected"),
        "{e}"
    );
    // The same rules in serve's settings and an inbox sidecar, the same words when bad.
    let s = CampaignSettings::from_json(
        br#"{"redial": {"on_tag": [{"name": "callback", "value": "yes", "after": "2h"}], "max_dials": 2}}"#,
    )
    .unwrap();
    let p = s.redial(&cfg).expect("the campaign's policy");
    assert_eq!((p.max_dials, p.on_tag.len()), (2, 1));
    s.validate_with(&cfg).unwrap();
    let no_tags = parse("", "").unwrap();
    let e = s.validate_with(&no_tags).unwrap_err();
    assert!(
        e.starts_with("redial.on_tag: expected [outcomes] tags = true"),
        "{e}"
    );
    let e = CampaignSettings::from_toml(
        "[[redial.on_tag]]\nname = \"callback\"\nvalue = \"\"\nafter = \"1h\"\n",
    )
    .unwrap_err();
    assert!(
        e.starts_with("redial.on_tag[0].value = \"\": expected"),
        "{e}"
    );
    let e = CampaignSettings::from_json(
        br#"{"redial": {"on_tag": [{"name": "callback", "value": "yes"}]}}"#,
    )
    .unwrap_err();
    assert!(
        e.starts_with("redial.on_tag[0].after = (missing): expected"),
        "{e}"
    );
}
