//! `ccc-dialer run` and `serve` with `--state postgres://…` end to end: the child process
//! against the stand-in over loopback, its store a PostgreSQL schema of its own (see `pg`). The
//! stand-in's figures are the judge, as for the SQLite store (`run_campaign`).

use std::path::PathBuf;
use std::process::Command;

use crate::pg::PgSchema;
use crate::support::*;

/// A password the URL carries (trust auth ignores it): it must never be printed.
const PASSWORD: &str = "pw-Never-Printed-42";

/// The longest one `ccc-dialer` child may take here.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// [`run_async`] with a deadline (a hung run fails the test instead of hanging it).
async fn run_within(s: &Scratch) -> std::process::Output {
    tokio::time::timeout(DEADLINE, run_async(s))
        .await
        .expect("the run finished within its deadline")
}

fn with_password(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PASSWORD}@"),
        1,
    )
}

fn command(s: &Scratch, sub: &str, state: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg(sub)
        .arg("--state")
        .arg(state)
        .env_remove("CCC_DIALER_STATE")
        .env_remove("CCC_DIALER_LOG")
        .current_dir(s.dir.path());
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn run_on_postgres_places_every_contact_once_and_a_rerun_dials_nothing() {
    let schema = PgSchema::create().await;
    let url = with_password(&schema.url);
    let mock = mock_with(20, 0, &fails_once(&phone(3), "ResourceUnavailable")).await;
    let mut s = Scratch::new(
        &mock.endpoint(),
        "",
        "[retry]\nbackoff_initial = \"10ms\"\nbackoff_max = \"20ms\"\n",
    );
    s.state = PathBuf::from(&url);
    let mut csv = contacts_csv(25);
    csv.push_str("+8613800000004,dup\nnot-a-number,bad\n");
    s.write_contacts(&csv);

    let out = run_within(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    let rows = s.results();
    assert_eq!(rows.len(), 27, "every line exactly once in the results");
    let placed: Vec<_> = rows.iter().filter(|r| r.status == "placed").collect();
    assert_eq!(placed.len(), 25);
    assert!(placed.iter().all(|r| !r.session_id.is_empty()));
    assert_eq!(
        rows.iter().find(|r| r.callee == phone(3)).unwrap().attempts,
        2,
        "the retried contact used two attempts"
    );
    let skipped: Vec<_> = rows.iter().filter(|r| r.status == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.len(), 25);
    assert!(stats.duplicate_callees.is_empty(), "nobody called twice");
    let requests = stats.requests;

    // A rerun resumes from the database: nothing left to dial, nothing sent.
    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(mock.stats().requests, requests, "the rerun sent nothing");
    assert_eq!(s.results(), rows);

    // status and export read the same database.
    let out = command(&s, "status", &url).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert_eq!(code_of(&out), 0, "{text}");
    assert!(text.contains("placed"), "{text}");
    assert!(text.contains("25"), "{text}");
    assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    let exported = s.dir.path().join("exported.csv");
    let out = command(&s, "export", &url)
        .arg("--results")
        .arg(&exported)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(
        ccc_dialer::results::read(&exported).unwrap(),
        rows,
        "export rewrites the same rows from the database"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_on_postgres_leaves_its_in_flight_calls_unknown_never_redialled() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 1_500, "").await;
    // The rerun settles the dead run's calls once their leases ran out.
    let mut s = Scratch::new(&mock.endpoint(), "", SHORT_LEASE);
    s.state = PathBuf::from(&schema.url);
    s.write_contacts(&contacts_csv(40));
    let mut child = s.spawn();
    wait_for_requests(&mock, "requests to arrive", 5).await;
    child.kill().expect("kill -9");
    let _ = child.wait();

    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 40, "every contact accounted for");
    let unknown = rows.iter().filter(|r| r.status == "unknown").count();
    assert!(unknown >= 1, "the calls in flight at the kill are in doubt");
    assert_eq!(
        rows.iter().filter(|r| r.status == "placed").count() + unknown,
        40
    );
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "a call in doubt was dialled again: {:?}",
        stats.duplicate_callees
    );
    assert!(stats.requests_by_callee.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_exits_2_naming_it_without_its_password() {
    let mock = mock_with(20, 0, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", "");
    s.state = PathBuf::from(format!(
        "postgres://dialer:{PASSWORD}@127.0.0.1:1/calls?sslmode=disable&connect_timeout=5"
    ));
    s.write_contacts(&contacts_csv(3));
    let out = run_within(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 2, "{err}");
    assert!(
        err.contains("postgres://dialer:***@127.0.0.1:1/calls"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    assert_eq!(mock.stats().requests, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_postgres_dials_a_posted_campaign_and_a_restart_finds_it() {
    use crate::served::{count, csv_of, serve_command, state, Served};
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = crate::served::scratch(&mock, "");
    s.state = PathBuf::from(&schema.url);
    let start = |s: &Scratch| {
        let mut cmd = serve_command(s);
        // Uploads of a PostgreSQL store go to ./uploads.
        cmd.current_dir(s.dir.path());
        cmd
    };
    let srv = Served::start_with(&s, start(&s)).await;
    let id = srv.create("spring", &csv_of(41, 12)).await;
    let c = srv
        .wait_campaign(id, "the campaign to complete", |c| state(c) == "completed")
        .await;
    assert_eq!(count(&c, "placed"), 12, "{c}");
    let stats = mock.stats();
    assert_eq!(stats.calls_per_callee.len(), 12);
    assert!(stats.duplicate_callees.is_empty());
    assert!(
        s.dir.path().join("uploads").is_dir(),
        "the upload was kept in ./uploads"
    );
    srv.signal("-TERM");
    let (code, log) = srv.wait_exit().await;
    assert_eq!(code, 0, "{log}");

    // Another process on the same database sees the campaign as it was left.
    let srv = Served::start_with(&s, start(&s)).await;
    let c = srv.campaign(id).await;
    assert_eq!((state(&c), count(&c, "placed")), ("completed", 12), "{c}");
    assert_eq!(
        mock.stats().requests,
        stats.requests,
        "nothing dialled again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_on_postgres_writes_nothing_and_then_resumes_what_a_run_stored() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", "");
    s.state = PathBuf::from(&schema.url);
    s.write_contacts(&contacts_csv(5));
    let dry = |s: &Scratch| {
        let mut cmd = s.run_command();
        cmd.arg("--dry-run");
        async move {
            let out = output_within(cmd, "the dry run to finish").await;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr_of(&out)
            );
            (code_of(&out), text)
        }
    };
    let (code, text) = dry(&s).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("5 contacts would be dialled"), "{text}");
    let (admin, conn) = tokio_postgres::connect(crate::pg::ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tables: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the dry run wrote nothing, not even the schema");

    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let (code, text) = dry(&s).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("resuming"), "{text}");
    assert!(text.contains("0 contacts would be dialled"), "{text}");
    assert_eq!(
        mock.stats().calls_per_callee.len(),
        5,
        "only the real run dialled"
    );
}

/// The pid of the `ccc-dialer` process holding the writer lock of `schema`, from the lock
/// connection's application name (`pid N, …`) and the lock itself.
async fn lock_session_of(schema: &PgSchema, pid: u32) -> i32 {
    let (admin, conn) = tokio_postgres::connect(crate::pg::ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .query_one(
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
             WHERE a.application_name LIKE $1 AND l.locktype = 'advisory' AND l.granted
               AND l.objid = (SELECT oid FROM pg_namespace WHERE nspname = $2)",
            &[&format!("pid {pid}, %"), &schema.name],
        )
        .await
        .expect("the first process holds the writer lock on a connection that names it")
        .get(0)
}

/// Leases in the tests: short, so a replica's frozen or dead claims are taken over quickly.
const SHORT_LEASE: &str = "[store]\nlease = \"2s\"\n";

/// A second scratch on the same PostgreSQL store and stand-in, with the same contacts file (so
/// the same campaign) and results of its own: another replica.
fn replica_of(s: &Scratch, mock: &ccc_dialer::mock::MockServer, csv: &str) -> Scratch {
    let mut r = Scratch::new(&mock.endpoint(), "", SHORT_LEASE);
    r.state = s.state.clone();
    r.write_contacts(csv);
    r
}

/// A `run` in the background whose output is collected as it comes (a child writing more log
/// than a pipe holds would block otherwise): its pid and its output when it ends.
fn start(s: &Scratch) -> (u32, tokio::task::JoinHandle<std::process::Output>) {
    let child = s.spawn();
    let pid = child.id();
    let wait = wait_within(pid, "a background run to exit", move || {
        child.wait_with_output()
    });
    (
        pid,
        tokio::spawn(async move { wait.await.expect("its output") }),
    )
}

async fn ended(run: tokio::task::JoinHandle<std::process::Output>) -> std::process::Output {
    run.await.expect("the run finished within its deadline")
}

/// Kills the process when dropped (a test that fails while a child is stopped must not leave
/// it, nor hang waiting for it).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn signal(pid: u32, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}

/// How many contacts of the store were claimed again after a first claim (taken over from a
/// replica, or recovered from it): the epoch counts claims.
async fn taken_over(schema: &PgSchema) -> i64 {
    let (admin, conn) = tokio_postgres::connect(crate::pg::ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM {}.contacts WHERE epoch >= 2",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

fn each_callee_called_once(stats: &ccc_dialer::mock::MockStats, n: usize) {
    nobody_called_twice(stats);
    assert_eq!(stats.requests_by_callee.len(), n, "every contact requested");
}

/// No call created twice for a callee, no request sent twice for one. (A replica killed or
/// frozen between writing an attempt down and sending it leaves that contact in doubt,
/// unrequested: `unknown`, never sent by anyone else.)
fn nobody_called_twice(stats: &ccc_dialer::mock::MockStats) {
    assert!(
        stats.duplicate_callees.is_empty(),
        "called twice: {:?}",
        stats.duplicate_callees
    );
    let twice: Vec<_> = stats
        .requests_by_callee
        .iter()
        .filter(|(_, n)| **n != 1)
        .collect();
    assert!(twice.is_empty(), "requested more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_on_one_postgres_store_call_every_contact_exactly_once() {
    let schema = PgSchema::create().await;
    let url = with_password(&schema.url);
    let mock = mock_with(1_000, 100, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", SHORT_LEASE);
    s.state = PathBuf::from(&url);
    let csv = contacts_csv(300);
    s.write_contacts(&csv);
    let (first_pid, first) = start(&s);
    wait_for_requests(&mock, "the first run dials", 5).await;
    let other = replica_of(&s, &mock, &csv);
    let (second_pid, second) = start(&other);

    // A command that needs the store to itself is refused while they dial, naming both.
    let requeue = command(&s, "requeue", &url)
        .args(["--status", "failed"])
        .output()
        .unwrap();
    let err = stderr_of(&requeue);
    assert_eq!(code_of(&requeue), 2, "{err}");
    assert!(
        err.contains("in use by another ccc-dialer process"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {first_pid}, `ccc-dialer run`")),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");

    let (one, two) = (ended(first).await, ended(second).await);
    assert_eq!(code_of(&one), 0, "{}", stderr_of(&one));
    assert_eq!(code_of(&two), 0, "{}", stderr_of(&two));
    let placed_by = |o: &std::process::Output| stderr_of(o).matches("\"placed\"").count();
    assert!(
        placed_by(&two) > 0,
        "the second replica dialled its share: {}",
        stderr_of(&two)
    );
    let _ = second_pid;
    let stats = mock.stats();
    each_callee_called_once(&stats, 300);
    assert_eq!(stats.accepted, 300);
    // Both end with every contact's result, from the shared store.
    for rows in [s.results(), other.results()] {
        assert_eq!(rows.len(), 300);
        assert!(rows.iter().all(|r| r.status == "placed"), "{rows:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_on_postgres_leaves_its_calls_in_doubt_and_the_other_dials_the_rest() {
    let schema = PgSchema::create().await;
    let mock = mock_with(1_000, 1_500, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", SHORT_LEASE);
    s.state = PathBuf::from(&schema.url);
    let csv = contacts_csv(200);
    s.write_contacts(&csv);
    let (victim, killed) = start(&s);
    // The second starts once the first created the campaign and stored its contacts.
    wait_for_requests(&mock, "the first replica dials", 5).await;
    let other = replica_of(&s, &mock, &csv);
    let (_, survivor) = start(&other);
    wait_for_requests(&mock, "both replicas dial", 40).await;
    signal(victim, "-KILL");
    let _ = ended(killed).await;

    // The survivor waits out the dead replica's leases, then takes its contacts: its calls in
    // flight are in doubt (never redialled), the ones it held unsent are dialled.
    let out = ended(survivor).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    // The killed replica, started again, finds nothing left to dial.
    let requests = mock.stats().requests;
    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(mock.stats().requests, requests, "the restart sent nothing");

    let stats = mock.stats();
    nobody_called_twice(&stats);
    let rows = s.results();
    assert_eq!(rows.len(), 200, "every contact accounted for");
    let unknown = rows.iter().filter(|r| r.status == "unknown").count();
    let placed = rows.iter().filter(|r| r.status == "placed").count();
    assert!(unknown >= 1, "the calls in flight at the kill are in doubt");
    assert_eq!(placed + unknown, 200, "{rows:?}");
    assert!(stats.requests_by_callee.len() >= placed);
    assert!(taken_over(&schema).await >= unknown as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_frozen_past_its_leases_sends_nothing_for_the_contacts_taken_over() {
    let schema = PgSchema::create().await;
    let mock = mock_with(1_000, 50, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", SHORT_LEASE);
    s.state = PathBuf::from(&schema.url);
    let csv = contacts_csv(150);
    s.write_contacts(&csv);
    let (frozen_pid, frozen) = start(&s);
    let _guard = KillOnDrop(frozen_pid);
    wait_for_requests(&mock, "the first replica dials", 10).await;
    // Frozen (a long GC-like pause) holding a batch of claimed contacts and maybe calls in
    // flight.
    signal(frozen_pid, "-STOP");
    let before = mock.stats().requests;
    let other = replica_of(&s, &mock, &csv);
    let out = run_within(&other).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(
        taken_over(&schema).await > 0,
        "the other replica took the frozen one's contacts over"
    );
    nobody_called_twice(&mock.stats());
    assert!(mock.stats().requests > before);

    // It wakes: every lease it held is stale; it dials nothing more and ends. A request it had
    // already written down and passed its last check for when it froze (in flight: the other
    // replica left that contact in doubt, `unknown`, never dialled it) may still reach the
    // service as it wakes: the pause fell between the check and the write, which no check on
    // this side can close. Anything else it sends is a contact dialled after its lease ran out.
    let before_wake = mock.stats().requests_by_callee;
    signal(frozen_pid, "-CONT");
    let out = ended(frozen).await;
    let err = stderr_of(&out);
    assert!(matches!(code_of(&out), 0 | 1), "{err}");
    nobody_called_twice(&mock.stats());
    let rows = other.results();
    assert_eq!(rows.len(), 150);
    assert!(
        rows.iter()
            .all(|r| r.status == "placed" || r.status == "unknown"),
        "{rows:?}"
    );
    let digits = |c: &str| -> String {
        let d: String = c.chars().filter(|c| c.is_ascii_digit()).collect();
        d[d.len().saturating_sub(11)..].to_string()
    };
    let in_doubt: std::collections::HashSet<String> = rows
        .iter()
        .filter(|r| r.status == "unknown")
        .map(|r| digits(&r.callee))
        .collect();
    let after_wake: Vec<String> = mock
        .stats()
        .requests_by_callee
        .into_iter()
        .filter(|(callee, n)| before_wake.get(callee) != Some(n))
        .map(|(callee, _)| callee)
        .collect();
    assert!(
        after_wake.iter().all(|c| in_doubt.contains(&digits(c))),
        "the frozen replica dialled after waking a contact it had not sent before freezing: \
         {after_wake:?} (in doubt at the other replica: {in_doubt:?}): {err}"
    );
    assert!(
        after_wake.len() <= in_doubt.len(),
        "{after_wake:?} {in_doubt:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_postgres_lock_connection_drops_stops_dialling_and_a_rerun_finishes() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", "");
    s.state = PathBuf::from(&schema.url);
    s.write_contacts(&contacts_csv(200));
    let first = s.spawn();
    let first_pid = first.id();
    wait_for_requests(&mock, "the first run dials", 5).await;
    // What a database restart or a cut connection does to the lock: its session ends.
    let session = lock_session_of(&schema, first_pid).await;
    let (admin, conn) = tokio_postgres::connect(crate::pg::ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let ended: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&session])
        .await
        .unwrap()
        .get(0);
    assert!(ended);

    let pid = first.id();
    let out = wait_within(pid, "the process to stop", move || first.wait_with_output())
        .await
        .expect("its output");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lost the store's writer lock"), "{err}");
    let sent = mock.stats().requests;
    assert!(sent < 200, "it stopped dialling ({sent} sent)");

    // The next process takes the lock and dials the rest, nobody twice.
    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let rows = s.results();
    assert_eq!(rows.len(), 200, "every contact accounted for");
    let stats = mock.stats();
    assert!(
        stats.duplicate_callees.is_empty(),
        "{:?}",
        stats.duplicate_callees
    );
    assert_eq!(stats.requests_by_callee.len(), 200);
    assert!(stats.requests_by_callee.values().all(|n| *n == 1));
}

/// Outcome tracking, post-call tags and analysis, the opt-out list and redials, end to end on
/// a PostgreSQL store: what `run` learns after the calls lands in the database and the results,
/// and redials dial only who the policy asks for, each call created once.
#[tokio::test(flavor = "multi_thread")]
async fn run_on_postgres_tracks_outcomes_tags_and_redials() {
    let callee = |i: usize| format!("0086138{:08}", i);
    let faults = format!(
        r#"
[[rule]]
callee = "{c0}"
calls = ["not_answered", "answered:1s"]
tags = [{{ interested = false }}, {{ interested = true }}]
analysis = [{{ summary = "never asked", mood = "calm", intention = "none" }}, {{ summary = "wants a brochure", mood = "positive", intention = "buy" }}]
[[rule]]
callee = "{c1}"
calls = ["answered:1s"]
tags = [{{ opt_out = "yes" }}]
[[rule]]
callee = "{c2}"
calls = ["busy", "busy", "busy"]
[[rule]]
callee = "{c3}"
calls = ["answered:1s"]
"#,
        c0 = callee(0),
        c1 = callee(1),
        c2 = callee(2),
        c3 = callee(3)
    );
    let mock = ccc_dialer::mock::MockServer::spawn(outcome_options(&faults))
        .await
        .expect("stand-in starts");
    let schema = PgSchema::create().await;
    let mut s = Scratch::new(
        &mock.endpoint(),
        "",
        "[outcomes]\nenabled = true\nfirst_check_after = \"0s\"\ncheck_every = \"1s\"\n\
         give_up_after = \"15s\"\nreconcile_after = \"10s\"\ntags = true\nanalysis = true\n\
         [dnc]\nopt_out_tag = { name = \"opt_out\", value = \"yes\" }\n\
         [calling]\nmin_gap = \"0s\"\n\
         [redial]\non = [\"not_answered\", \"busy\"]\nmax_dials = 2\nafter = \"1s\"\n",
    );
    s.state = PathBuf::from(&schema.url);
    let mut csv = String::from("callee\n");
    for i in 0..4 {
        csv.push_str(&format!("+86138{i:08}\n"));
    }
    s.write_contacts(&csv);

    let out = run_within(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    assert!(
        err.contains("reached 3, not reached after all dials 1"),
        "{err}"
    );
    let mut r = csv::Reader::from_path(&s.results).expect("results readable");
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let rows: std::collections::HashMap<String, std::collections::HashMap<String, String>> = r
        .records()
        .map(|rec| {
            let row: std::collections::HashMap<String, String> = header
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect();
            (row["callee"].clone(), row)
        })
        .collect();
    let want = [
        ("answered", "2"),
        ("answered", "1"),
        ("busy", "2"),
        ("answered", "1"),
    ];
    for (i, (outcome, dials)) in want.iter().enumerate() {
        let row = &rows[&callee(i)];
        assert_eq!(
            (
                row["status"].as_str(),
                row["outcome"].as_str(),
                row["dials"].as_str()
            ),
            ("placed", *outcome, *dials),
            "callee {i}: {row:?}"
        );
    }
    assert_eq!(rows[&callee(0)]["tag:interested"], "true");
    assert_eq!(rows[&callee(0)]["summary"], "wants a brochure");
    assert_eq!(rows[&callee(1)]["tag:opt_out"], "yes");
    let stats = mock.stats();
    let created: Vec<u32> = (0..4)
        .map(|i| stats.calls_per_callee.get(&callee(i)).copied().unwrap_or(0))
        .collect();
    assert_eq!(
        created,
        vec![2, 1, 2, 1],
        "each call created once, redials as asked"
    );
    for (action, a) in &stats.actions {
        assert_eq!(a.windows_over_limit, 0, "{action}");
    }
    // What the database holds: the opt-out on the own list, the figures by outcome.
    let store = ccc_dialer::store::Store::connect_postgres(&schema.url)
        .await
        .unwrap();
    assert!(store.own_dnc_numbers().await.unwrap().contains(&callee(1)));
    let c = store.find_campaign("run").await.unwrap().unwrap();
    let counts = store.outcome_counts(c.id).await.unwrap();
    assert_eq!(
        (counts.reached, counts.not_reached, counts.redials_pending),
        (3, 1, 0)
    );
    assert_eq!(counts.by_class.get("answered"), Some(&3));
}
