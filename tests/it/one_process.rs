//! One process per store: a second `run` or `serve` on a store in use exits 2 naming the
//! holder, `status` reads beside the writer, and the lock goes with the process (kill -9 too).

use std::process::Stdio;

use crate::served::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_store_in_use_exits_2_naming_the_holder() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(80));
    let first = s.spawn();
    let first_pid = first.id();
    wait_for_requests(&mock, "the first run dials", 5).await;

    let second = run_async(&s).await;
    let err = stderr_of(&second);
    assert_eq!(code_of(&second), 2, "{err}");
    assert!(
        err.contains("in use by another ccc-dialer process"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {first_pid}")), "{err}");
    assert!(err.contains("ccc-dialer --log-format json run"), "{err}");
    assert!(err.contains(", since 20"), "{err}");

    // `status` reads beside the writer, read-only, and says a writer is live.
    let state = s.state.clone();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["status", "--state"]).arg(&state);
    let status = output_within(cmd, "status beside the writer").await;
    assert_eq!(code_of(&status), 0, "{}", stderr_of(&status));
    assert!(
        stderr_of(&status).contains(&format!("is in use by pid {first_pid}")),
        "{}",
        stderr_of(&status)
    );
    // So does `export`.
    let (state, again) = (s.state.clone(), s.dir.path().join("export.csv"));
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["export", "--state"])
        .arg(&state)
        .arg("--results")
        .arg(&again);
    let export = output_within(cmd, "export beside the writer").await;
    assert_eq!(code_of(&export), 0, "{}", stderr_of(&export));
    assert!(
        stderr_of(&export).contains(&format!("is in use by pid {first_pid}")),
        "{}",
        stderr_of(&export)
    );

    let pid = first.id();
    let out = wait_within(pid, "the first run to exit", move || {
        first.wait_with_output()
    })
    .await
    .expect("the first run's output");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // The cap across the two processes is judged by arrival times in the `cap` binary
    // (`a_second_run_on_a_store_in_use_sends_nothing_and_the_cap_holds`), where nothing else
    // loads the host while they are timed.
    let stats = mock.stats();
    assert_eq!(stats.accepted, 80);
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(s.results().len(), 80);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_beside_serve_on_one_store_exits_2_and_sends_nothing() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    let served = Served::start(&s).await;
    let out = run_async(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 2, "{err}");
    assert!(
        err.contains(&format!("pid {}", served.child.id())) && err.contains("serve"),
        "{err}"
    );
    assert_eq!(mock.stats().requests, 0);
    assert!(!s.results.exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_writer_leaves_no_lock_behind() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(60));
    let mut first = s.run_command().stderr(Stdio::null()).spawn().unwrap();
    wait_for_requests(&mock, "the first run dials", 3).await;
    first.kill().unwrap(); // SIGKILL: no destructor runs
    first.wait().unwrap();

    let out = run_async(&s).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert_eq!(s.results().len(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_serve_or_a_run_naming_the_store_another_way_exits_2_and_sends_nothing() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    let served = Served::start(&s).await;
    let holder = format!("pid {}", served.child.id());
    // The same store under three names: as given, through a symlink, and through `..`.
    let link = s.dir.path().join("link.db");
    std::os::unix::fs::symlink(&s.state, &link).unwrap();
    let sub = s.dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let dotted = sub.join("../state.db");

    let mut second_serve = serve_command(&s);
    second_serve.stdout(Stdio::piped()).stderr(Stdio::piped());
    let linked_run = with_state(&s.run_command(), &link);
    let mut linked_serve = with_state(&serve_command(&s), &dotted);
    linked_serve.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (what, cmd) in [
        ("a second serve", second_serve),
        ("run through a symlink", linked_run),
        ("serve through ..", linked_serve),
    ] {
        let out = output_within(cmd, "the refused command to exit").await;
        let err = stderr_of(&out);
        assert_eq!(code_of(&out), 2, "{what}: {err}");
        assert!(
            err.contains("in use by another ccc-dialer process") && err.contains(&holder),
            "{what}: {err}"
        );
    }
    assert_eq!(mock.stats().requests, 0, "nothing was sent");
    assert!(!s.results.exists(), "nothing written");
}

/// `cmd` (program, arguments, environment) with its `--state` value replaced by `state`.
fn with_state(cmd: &std::process::Command, state: &std::path::Path) -> std::process::Command {
    let mut out = std::process::Command::new(cmd.get_program());
    let mut args = cmd.get_args();
    while let Some(a) = args.next() {
        out.arg(a);
        if a == "--state" {
            args.next();
            out.arg(state);
        }
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    out.stdin(Stdio::null());
    out
}
