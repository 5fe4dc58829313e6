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
    let mut s = Scratch::new(&mock.endpoint(), "", "");
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
            let out = tokio::time::timeout(
                DEADLINE,
                tokio::task::spawn_blocking(move || cmd.output().expect("spawn ccc-dialer")),
            )
            .await
            .expect("the dry run finished within its deadline")
            .unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_postgres_store_in_use_exits_2_naming_the_holder_and_sends_nothing() {
    let schema = PgSchema::create().await;
    let url = with_password(&schema.url);
    let mock = mock_with(20, 0, "").await;
    let mut s = Scratch::new(&mock.endpoint(), "", "");
    s.state = PathBuf::from(&url);
    s.write_contacts(&contacts_csv(400));
    let first = s.spawn();
    let first_pid = first.id();
    wait_for_requests(&mock, "the first run dials", 5).await;

    let second = run_within(&s).await;
    let err = stderr_of(&second);
    assert_eq!(code_of(&second), 2, "{err}");
    assert!(
        err.contains("in use by another ccc-dialer process"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {first_pid}, `ccc-dialer run`")),
        "{err}"
    );
    assert!(err.contains(", since 20"), "{err}");
    assert!(!err.contains(PASSWORD), "the password was printed: {err}");
    // A `serve` on the same schema is refused the same way.
    let mut serve = crate::served::serve_command(&s);
    let serve = tokio::task::spawn_blocking(move || serve.output().unwrap())
        .await
        .unwrap();
    let err = stderr_of(&serve);
    assert_eq!(code_of(&serve), 2, "{err}");
    assert!(err.contains(&format!("pid {first_pid}")), "{err}");
    // `status` reads beside it and says who writes.
    let status = command(&s, "status", &url).output().unwrap();
    assert_eq!(code_of(&status), 0, "{}", stderr_of(&status));
    assert!(
        stderr_of(&status).contains(&format!("is in use by pid {first_pid}")),
        "{}",
        stderr_of(&status)
    );

    // Stopped (it drains), then the lock goes with the process: the next run takes it and
    // dials the rest.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &first_pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    let out = run_within(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let stats = mock.stats();
    assert_eq!(
        stats.requests, 400,
        "only one process sent at a time, nobody twice"
    );
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(s.results().len(), 400);
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

    let out = tokio::time::timeout(
        DEADLINE,
        tokio::task::spawn_blocking(move || first.wait_with_output().unwrap()),
    )
    .await
    .expect("the process stopped")
    .unwrap();
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
