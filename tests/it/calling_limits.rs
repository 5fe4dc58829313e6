//! Who must not be called and how often: do-not-call lists normalised like contacts and
//! reloadable, per-person minimum gap and daily cap across campaigns, caller rotation with
//! cool-downs and daily caps. Fixed clocks throughout.

use std::path::PathBuf;
use std::time::Duration;

use ccc_dialer::calling::callers::{CallerPool, Pick, Strategy};
use ccc_dialer::calling::dnc::{self, DncError, DncLists, Normalise};
use ccc_dialer::calling::gate::{self, Gate};
use ccc_dialer::calling::zones;
use ccc_dialer::config::CalleeFormat;
use jiff::tz::TimeZone;
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shanghai() -> TimeZone {
    zones::zone("Asia/Shanghai").unwrap()
}

fn cn() -> Normalise {
    Normalise {
        default_country: "CN".into(),
        callee_format: CalleeFormat::DoubleZero,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

// ---- do-not-call lists ----

#[test]
fn dnc_numbers_in_any_spelling_match_the_normalised_contact() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("optout.csv");
    let plain = dir.path().join("complaints.txt");
    std::fs::write(
        &csv,
        "\u{feff}name,Phone\r\nZhang,+8613800138000\r\n\"Li, Si\",13800138001\r\n",
    )
    .unwrap();
    std::fs::write(
        &plain,
        "# complaints desk\n\n008613800138002\n  13800138003  \n",
    )
    .unwrap();
    let (lists, report) = DncLists::load(vec![csv, plain], cn()).unwrap();
    assert_eq!((report.files, report.numbers, report.bad_count), (2, 4, 0));
    for contact in ["+8613800138000", "008613800138000", "13800138000"] {
        let n = ccc_dialer::phone::normalize(contact, "CN", CalleeFormat::DoubleZero).unwrap();
        assert!(lists.contains(&n), "{contact} → {n}");
    }
    assert!(lists.contains("008613800138001"));
    assert!(lists.contains("008613800138002"));
    assert!(lists.contains("008613800138003"));
    assert!(!lists.contains("008613800138009"));
}

#[test]
fn bad_dnc_lines_are_reported_with_file_and_line_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnc.csv");
    std::fs::write(
        &path,
        "callee,note\n+8613800138000,ok\nabc,typo\n,empty\n13800138001\n",
    )
    .unwrap();
    let (set, report) = dnc::load(std::slice::from_ref(&path), &cn()).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(report.bad_count, 2);
    let bad: Vec<String> = report.bad.iter().map(ToString::to_string).collect();
    assert!(
        bad[0].starts_with(&format!(
            "{}: line 3: \"abc\": contains 'a'",
            path.display()
        )),
        "{bad:?}"
    );
    assert_eq!(
        bad[1],
        format!("{}: line 4: no number in column 1", path.display())
    );
}

#[test]
fn an_unreadable_or_headerless_dnc_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.csv");
    let e = DncLists::load(vec![missing.clone()], cn()).unwrap_err();
    assert!(matches!(e, DncError::Unreadable { .. }));
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read the do-not-call list: ",
            missing.display()
        )),
        "{e}"
    );
    let headerless = dir.path().join("export.csv");
    std::fs::write(&headerless, "name,mobile\nZhang,13800138000\n").unwrap();
    let e = DncLists::load(vec![headerless.clone()], cn()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 1: no `callee`, `number` or `phone` column in the header (found: \"name\", \"mobile\")\n\
             hint: a do-not-call list is either CSV with a header naming the number column, or one number per line",
            headerless.display()
        )
    );
}

#[test]
fn a_reload_adds_numbers_mid_campaign_and_a_failed_reload_keeps_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnc.txt");
    std::fs::write(&path, "13800138000\n").unwrap();
    let (lists, _) = DncLists::load(vec![path.clone()], cn()).unwrap();
    let before = lists.snapshot();
    assert!(!lists.contains("008613800138001"));

    std::fs::write(&path, "13800138000\n13800138001\n").unwrap();
    let report = lists.reload().unwrap();
    assert_eq!(report.numbers, 2);
    assert!(lists.contains("008613800138001"));
    assert_eq!(before.len(), 1, "a snapshot taken earlier is unchanged");

    std::fs::remove_file(&path).unwrap();
    assert!(lists.reload().is_err());
    assert!(lists.contains("008613800138001"), "the previous list stays");
    assert_eq!(lists.paths(), [PathBuf::from(&path)]);
}

#[test]
fn no_dnc_files_suppress_nobody() {
    let lists = DncLists::empty(cn());
    assert!(lists.is_empty());
    assert!(!lists.contains("008613800138000"));
}

// ---- per person, across campaigns ----

#[test]
fn the_minimum_gap_counts_calls_from_every_campaign() {
    let z = shanghai();
    // One call from campaign A at 10:00Z, one from campaign B at 11:00Z.
    let recent = [ts("2026-03-09T10:00:00Z"), ts("2026-03-09T11:00:00Z")];
    let now = ts("2026-03-09T13:00:00Z");
    let g = gate::per_person(&recent, now, 4 * HOUR, 0, &z).unwrap_err();
    assert_eq!(
        g,
        Gate::MinGap {
            until: ts("2026-03-09T15:00:00Z")
        }
    );
    assert_eq!(g.as_str(), "min_gap");
    assert_eq!(
        g.to_string(),
        "waiting for the minimum gap between calls to this number until 2026-03-09 15:00 UTC"
    );
    assert_eq!(
        gate::per_person(&recent, ts("2026-03-09T15:00:00Z"), 4 * HOUR, 0, &z),
        Ok(())
    );
    assert_eq!(gate::per_person(&[], now, 4 * HOUR, 3, &z), Ok(()));
    assert_eq!(
        gate::per_person(&recent, now, Duration::ZERO, 0, &z),
        Ok(()),
        "no limits"
    );
}

#[test]
fn the_daily_cap_counts_calls_per_local_day_and_lifts_at_local_midnight() {
    let z = shanghai();
    // 09:00 and 11:00 CST on Monday 2026-03-09, and one on Sunday that does not count.
    let recent = [
        ts("2026-03-08T12:00:00Z"),
        ts("2026-03-09T01:00:00Z"),
        ts("2026-03-09T03:00:00Z"),
    ];
    let now = ts("2026-03-09T05:00:00Z");
    assert_eq!(
        gate::per_person(&recent, now, Duration::ZERO, 3, &z),
        Ok(())
    );
    let g = gate::per_person(&recent, now, Duration::ZERO, 2, &z).unwrap_err();
    // Tuesday 00:00 CST.
    assert_eq!(
        g,
        Gate::DailyCap {
            until: ts("2026-03-09T16:00:00Z")
        }
    );
    assert_eq!(
        g.to_string(),
        "calls to this number for the day used up, waiting until 2026-03-09 16:00 UTC"
    );
}

#[test]
fn cap_and_gap_together_wait_for_both() {
    let z = shanghai();
    // Called at 23:00 CST; one call a day and 4 hours apart: midnight lifts the cap but the
    // gap holds until 03:00 CST.
    let recent = [ts("2026-03-09T15:00:00Z")];
    let g = gate::per_person(&recent, ts("2026-03-09T15:30:00Z"), 4 * HOUR, 1, &z).unwrap_err();
    assert_eq!(
        g,
        Gate::DailyCap {
            until: ts("2026-03-09T19:00:00Z")
        }
    );
    // After midnight only the gap holds.
    let g = gate::per_person(&recent, ts("2026-03-09T16:30:00Z"), 4 * HOUR, 1, &z).unwrap_err();
    assert_eq!(
        g,
        Gate::MinGap {
            until: ts("2026-03-09T19:00:00Z")
        }
    );
}

// ---- caller numbers ----

fn callers(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn picked(p: Pick) -> String {
    match p {
        Pick::Use(c) => c,
        other => panic!("expected a caller, got {other:?}"),
    }
}

#[test]
fn round_robin_spreads_calls_and_skips_a_resting_caller() {
    let mut pool = CallerPool::new(
        Strategy::RoundRobin,
        10 * 60 * Duration::from_secs(1),
        0,
        shanghai(),
    );
    let c = callers(&["a", "b", "c"]);
    let t0 = ts("2026-03-09T02:00:00Z");
    let order: Vec<String> = (0..4).map(|_| picked(pool.pick(&c, t0))).collect();
    assert_eq!(order, ["a", "b", "c", "a"]);
    // b answered CallerOverFrequency: it rests 10 minutes, the rotation goes around it.
    assert_eq!(pool.cool_down("b", t0), ts("2026-03-09T02:10:00Z"));
    let order: Vec<String> = (0..3).map(|_| picked(pool.pick(&c, t0))).collect();
    assert_eq!(order, ["c", "a", "c"]);
    // After the rest, b is back in turn.
    let later = ts("2026-03-09T02:10:00Z");
    assert_eq!(picked(pool.pick(&c, later)), "a");
    assert_eq!(picked(pool.pick(&c, later)), "b");
}

#[test]
fn least_recently_used_takes_the_caller_idle_longest() {
    let mut pool = CallerPool::new(Strategy::LeastRecentlyUsed, Duration::ZERO, 0, shanghai());
    let c = callers(&["a", "b", "c"]);
    // Seeded from the store after a restart: c was used most recently, then a.
    pool.record_use("a", ts("2026-03-09T01:00:00Z"));
    pool.record_use("c", ts("2026-03-09T01:30:00Z"));
    let now = ts("2026-03-09T02:00:00Z");
    assert_eq!(picked(pool.pick(&c, now)), "b", "never used comes first");
    assert_eq!(picked(pool.pick(&c, now)), "a");
    assert_eq!(picked(pool.pick(&c, now)), "c");
}

#[test]
fn when_every_caller_rests_the_pick_says_until_when() {
    let mut pool = CallerPool::new(
        Strategy::RoundRobin,
        10 * 60 * Duration::from_secs(1),
        0,
        shanghai(),
    );
    let c = callers(&["a", "b"]);
    let t0 = ts("2026-03-09T02:00:00Z");
    pool.cool_down("a", t0);
    pool.rest("b", ts("2026-03-09T02:05:00Z"));
    pool.rest("b", ts("2026-03-09T02:01:00Z")); // a shorter rest does not shorten it
    assert_eq!(
        pool.pick(&c, t0),
        Pick::AllResting {
            until: ts("2026-03-09T02:05:00Z")
        }
    );
    assert_eq!(picked(pool.pick(&c, ts("2026-03-09T02:05:00Z"))), "b");
}

#[test]
fn a_caller_daily_cap_resets_at_local_midnight_in_the_campaign_zone() {
    let mut pool = CallerPool::new(Strategy::RoundRobin, Duration::ZERO, 2, shanghai());
    let c = callers(&["a", "b"]);
    let t0 = ts("2026-03-09T02:00:00Z"); // 10:00 CST
    let order: Vec<String> = (0..4).map(|_| picked(pool.pick(&c, t0))).collect();
    assert_eq!(order, ["a", "b", "a", "b"]);
    assert_eq!(
        pool.pick(&c, t0),
        Pick::AllResting {
            until: ts("2026-03-09T16:00:00Z")
        }
    );
    assert_eq!(picked(pool.pick(&c, ts("2026-03-09T16:00:00Z"))), "a");
}
