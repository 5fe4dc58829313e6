//! `run --dry-run` checks what the real run checks before sending, reports do-not-call skips as
//! the real run does, lists what would be dialled, and exits with the real run's code.

use std::process::Output;

use crate::support::*;

async fn dry(s: &Scratch, edit: impl FnOnce(&mut std::process::Command)) -> Output {
    let mut cmd = s.run_command();
    cmd.arg("--dry-run");
    edit(&mut cmd);
    output_within(cmd, "the dry run to finish").await
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_skips_do_not_call_numbers_and_lists_what_would_be_dialled() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[calling]\ndnc_files = [\"dnc.txt\"]\n",
    );
    std::fs::write(s.dir.path().join("dnc.txt"), "+8613800000002\n").unwrap();
    s.write_contacts("callee,id\n+8613800000001,a\n+8613800000002,b\nbad,c\n+8613800000003,d\n");
    let out = dry(&s, |_| {}).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would dial 008613800000001 (line 2, id a)")
            && stdout.contains("would dial 008613800000003 (line 5, id d)"),
        "{stdout}"
    );
    assert!(!stdout.contains("008613800000002"), "{stdout}");
    assert!(
        stdout.contains("2 contacts would be dialled, 2 skipped"),
        "{stdout}"
    );
    assert!(
        stderr_of(&out).contains("line 3: skipped") && stderr_of(&out).contains("do-not-call"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(mock.stats().requests, 0);
    assert!(!s.state.exists() && !s.results.exists());

    // After a real run, the dry run resumes from the store: nothing is left to dial.
    let real = run_async(&s).await;
    assert_eq!(code_of(&real), 0, "{}", stderr_of(&real));
    let out = dry(&s, |_| {}).await;
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dry run: 0 contacts would be dialled"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_exits_2_where_the_real_run_does() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[calling]\ndnc_files = [\"missing-dnc.txt\"]\n",
    );
    s.write_contacts(&contacts_csv(2));
    // A missing do-not-call list.
    let dry_out = dry(&s, |_| {}).await;
    let real = run_async(&s).await;
    assert_eq!(code_of(&real), 2, "{}", stderr_of(&real));
    assert_eq!(code_of(&dry_out), 2, "{}", stderr_of(&dry_out));
    assert!(stderr_of(&dry_out).contains("missing-dnc.txt"));

    // Missing credentials for a real endpoint.
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(2));
    let out = dry(&s, |c| {
        c.env_remove("TENCENTCLOUD_SECRET_KEY");
    })
    .await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("TENCENTCLOUD_SECRET_KEY is not set"));

    // A fault script that cannot be read, for the built-in stand-in.
    let s = Scratch::new("builtin", "", "[mock]\nfaults = \"nope.toml\"\n");
    s.write_contacts(&contacts_csv(2));
    let out = dry(&s, |_| {}).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("nope.toml"), "{}", stderr_of(&out));

    // --results over the contacts file.
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(2));
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["run", "--dry-run", "--config"])
        .arg(&s.config)
        .arg("--contacts")
        .arg(&s.contacts)
        .arg("--results")
        .arg(&s.contacts)
        .arg("--state")
        .arg(&s.state)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY);
    let out = cmd.output().unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert_eq!(mock.stats().requests, 0);
}
