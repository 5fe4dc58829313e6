//! Three `serve` processes on one PostgreSQL schema and one stand-in, one replica killed with
//! kill -9 (and started again) ten times while they dial: no callee created twice, every
//! contact ends exactly once (unknown only for a killed replica's calls in flight), the
//! survivors take over the dead replica's contacts, and the account never exceeds 20 requests
//! in any second at the stand-in. Here (the `cap` binary, one test at a time) because the
//! stand-in's arrival times judge the cap.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::pg::{PgSchema, ADMIN_URL};
use crate::served::{csv_of, serve_command, Served};
use crate::support::*;

/// Short leases, so a dead replica's claims return within seconds.
const REPLICA_CONFIG: &str = "[store]\nlease = \"2s\"\n";
/// How long the store may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(120);
const KILLS: usize = 10;

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(conn);
    client
}

/// One replica: its scratch (config, inbox, logs) and its running `serve`.
struct Replica {
    scratch: Scratch,
    served: Served,
}

async fn start(scratch: &Scratch) -> Served {
    let mut cmd = serve_command(scratch);
    cmd.current_dir(scratch.dir.path());
    Served::start_with(scratch, cmd).await
}

/// The lease owner of process `pid` (`host-pid-xxxxxxxx`) as a LIKE pattern.
fn owner_of(pid: u32) -> String {
    format!("%-{pid}-________")
}

/// Contact ids of the schema by status.
async fn by_status(db: &tokio_postgres::Client, schema: &str) -> BTreeMap<String, BTreeSet<i64>> {
    let rows = db
        .query(&format!("SELECT status, id FROM {schema}.contacts"), &[])
        .await
        .expect("contacts");
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().insert(r.get(1));
    }
    out
}

/// Contacts (pending or in flight) leased to the process `pid`.
async fn leased_to(db: &tokio_postgres::Client, schema: &str, pid: u32) -> Vec<(i64, String)> {
    db.query(
        &format!(
            "SELECT id, status FROM {schema}.contacts
             WHERE lease_owner LIKE $1 AND status IN ('pending', 'in_flight')"
        ),
        &[&owner_of(pid)],
    )
    .await
    .expect("leases")
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Poll `cond` every 50 ms until it holds; fails naming `what` after [`PATIENCE`].
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match cond().await {
            Ok(()) => return,
            Err(state) => assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting for {what}: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_serve_replicas_killed_ten_times_call_each_contact_once_within_the_cap() {
    let _alone = crate::alone().await;
    let mock = crate::cap_mock(20, 100, "").await;
    let schema = PgSchema::create().await;
    let db = admin().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let mut scratch = crate::served::scratch(&mock, REPLICA_CONFIG);
        scratch.state = std::path::PathBuf::from(&schema.url);
        let served = start(&scratch).await;
        replicas.push(Replica { scratch, served });
    }
    // One large campaign and two small ones, each posted to a different replica.
    let sizes = [(81, 2000), (82, 25), (83, 15)];
    let mut ids = Vec::new();
    for (r, (prefix, n)) in sizes.iter().enumerate() {
        let id = replicas[r]
            .served
            .create(&format!("replicas-{prefix}"), &csv_of(*prefix, *n))
            .await;
        ids.push(id);
    }
    let total: usize = sizes.iter().map(|(_, n)| n).sum();
    let started = Instant::now();

    // Kills spread over the large campaign, each of a replica chosen at random.
    let mut suspects: BTreeSet<i64> = BTreeSet::new();
    let mut taken_over = 0;
    for k in 0..KILLS {
        let mark = 120 + 170 * k as u64;
        wait_for_requests(&mock, "the replicas to dial on", mark).await;
        let victim = rand::random_range(0..replicas.len());
        let pid = replicas[victim].served.child.id();
        // It holds contacts (so there is something to take over).
        until("the victim to hold leases", || {
            let db = &db;
            let schema = &schema.name;
            async move {
                let held = leased_to(db, schema, pid).await;
                if held.is_empty() {
                    Err("none".into())
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let unknown_before = by_status(&db, &schema.name)
            .await
            .remove("unknown")
            .unwrap_or_default();
        replicas[victim].served.child.kill().expect("kill -9");
        replicas[victim].served.child.wait().expect("reaped");
        let held = leased_to(&db, &schema.name, pid).await;
        let held_ids: BTreeSet<i64> = held.iter().map(|(id, _)| *id).collect();
        // The survivors take every contact it held: each is claimed by another replica or
        // ends (its call in flight: unknown).
        until(
            "the survivors to take over the dead replica's contacts",
            || {
                let db = &db;
                let schema = &schema.name;
                let ids: Vec<i64> = held_ids.iter().copied().collect();
                async move {
                    let left: i64 = db
                        .query_one(
                            &format!(
                                "SELECT COUNT(*) FROM {schema}.contacts
                             WHERE id = ANY($1) AND status IN ('pending', 'in_flight')
                               AND (lease_owner IS NULL OR lease_owner LIKE $2)"
                            ),
                            &[&ids, &owner_of(pid)],
                        )
                        .await
                        .expect("count")
                        .get(0);
                    if left == 0 {
                        Ok(())
                    } else {
                        Err(format!("{left} of {} not taken over", ids.len()))
                    }
                }
            },
        )
        .await;
        taken_over += held_ids.len();
        let unknown_after = by_status(&db, &schema.name)
            .await
            .remove("unknown")
            .unwrap_or_default();
        let new: BTreeSet<i64> = unknown_after.difference(&unknown_before).copied().collect();
        let foreign: Vec<_> = new.difference(&held_ids).collect();
        assert!(
            foreign.is_empty(),
            "kill {k}: contacts in doubt that the dead replica did not hold: {foreign:?}"
        );
        suspects.extend(new);
        // Started again, it dials on beside the others.
        let scratch = &replicas[victim].scratch;
        let again = start(scratch).await;
        replicas[victim].served = again;
    }

    // Every contact ends: placed (or failed), unknown only where a dead replica's call was in
    // flight.
    until("every contact to end", || {
        let db = &db;
        let schema = &schema.name;
        async move {
            let now = by_status(db, schema).await;
            let open: usize = ["pending", "in_flight"]
                .iter()
                .map(|s| now.get(*s).map_or(0, |v| v.len()))
                .sum();
            if open == 0 {
                Ok(())
            } else {
                Err(format!("{open} still open"))
            }
        }
    })
    .await;
    let wall = started.elapsed();
    let end = by_status(&db, &schema.name).await;
    let counted: usize = end.values().map(|v| v.len()).sum();
    assert_eq!(counted, total, "each contact stored once: {end:?}");
    let odd: Vec<_> = end
        .keys()
        .filter(|s| !["placed", "failed", "unknown"].contains(&s.as_str()))
        .collect();
    assert!(
        odd.is_empty(),
        "statuses besides placed/failed/unknown: {odd:?}"
    );
    let unknown = end.get("unknown").cloned().unwrap_or_default();
    let stray: Vec<_> = unknown.difference(&suspects).collect();
    assert!(
        stray.is_empty(),
        "in doubt without a kill to explain it: {stray:?}"
    );
    for (id, (prefix, n)) in ids.iter().zip(sizes) {
        // Every contact has ended; the replica that saw the last one end completes the
        // campaign a moment later (bounded wait; fails with the last body).
        let c = replicas[0]
            .served
            .wait_campaign(*id, "the campaign to complete", |c| {
                crate::served::state(c) == "completed"
            })
            .await;
        let ended: u64 = ["placed", "failed", "unknown"]
            .iter()
            .map(|s| crate::served::count(&c, s))
            .sum();
        assert_eq!(ended, n as u64, "campaign {prefix}: {c}");
    }

    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "created twice: {:?}",
        stats.duplicate_callees
    );
    let twice: Vec<_> = stats
        .requests_by_callee
        .iter()
        .filter(|(_, n)| **n != 1)
        .collect();
    assert!(twice.is_empty(), "requested more than once: {twice:?}");
    // Every placed contact reached the stand-in; nothing else did but calls in doubt.
    let placed = end.get("placed").map_or(0, |v| v.len());
    assert!(stats.accepted as usize >= placed, "{stats:?}");
    assert!(
        stats.requests_by_callee.len()
            <= placed + unknown.len() + end.get("failed").map_or(0, |v| v.len()),
        "{stats:?}"
    );
    let t = mock.arrivals();
    let span = t[t.len() - 1].duration_since(t[0]).as_secs_f64();
    eprintln!(
        "three serve replicas, {KILLS} kills: {total} contacts in {:.1} s; {} requests over {span:.1} s ({:.2}/s), at most {} in a second; {} placed, {} unknown; {taken_over} held by the dead taken over",
        wall.as_secs_f64(),
        t.len(),
        (t.len() - 1) as f64 / span,
        stats.max_in_any_window,
        placed,
        unknown.len()
    );
    assert!(
        stats.max_in_any_window <= 20,
        "three replicas sent {} in one second",
        stats.max_in_any_window
    );
    assert_eq!(
        stats.rate_limited, 0,
        "the stand-in never had to refuse one"
    );
}
