//! The small subcommands (`mock`, `call`) and the promise that secrets never leave the process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::*;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mock_on_port_0_prints_its_address_and_call_places_one_call() {
    let mut mock = Child(
        Command::new(bin())
            .args(["mock", "--listen", "127.0.0.1:0"])
            .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(mock.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .expect("first line names the address")
        .to_string();
    assert!(
        endpoint.starts_with("http://127.0.0.1:") && !endpoint.ends_with(":0"),
        "{endpoint}"
    );

    let s = Scratch::new(&endpoint, "variables = { product = \"demo\" }", "");
    let out = Command::new(bin())
        .args(["call", "--config"])
        .arg(&s.config)
        .args(["--callee", "+86 138 0013 8000", "--var", "name=Zhang San"])
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
    let session = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(session.len(), 36, "prints the SessionId: {session}");

    let stats: serde_json::Value = reqwest::get(format!("{endpoint}/__admin/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["accepted"], 1);
    assert_eq!(
        stats["last_body_by_callee"]["008613800138000"]["Variables"],
        serde_json::json!([{"Key": "name", "Value": "Zhang San"}, {"Key": "product", "Value": "demo"}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn call_reports_an_error_code_and_exits_1() {
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:FailedOperation.CalleeIsLimited\"]\n",
    )
    .await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    let out = call_13800138000(&s.config).await;
    assert_eq!(code_of(&out), 1);
    let err = stderr_of(&out);
    assert!(err.contains("FailedOperation.CalleeIsLimited"), "{err}");
    assert!(err.contains("the call was not placed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn call_refuses_a_number_on_a_do_not_call_list() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[calling]\ndnc_files = [\"dnc.txt\"]\n",
    );
    std::fs::write(s.dir.path().join("dnc.txt"), "+8613800138000\n").unwrap();
    let out = call_13800138000(&s.config).await;
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("do-not-call"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(mock.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_logs_results_or_the_state_store() {
    let token = "session-token-that-must-stay-secret";
    // A wrong key makes every request fail authentication: the error path is exercised too.
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(3));
    let wrong_key = "wrong-secret-key-that-must-stay-secret";
    let out = s
        .run_command()
        .args(["--no-progress"])
        .arg("--log-level")
        .arg("trace")
        .env("TENCENTCLOUD_SECRET_KEY", wrong_key)
        .env("TENCENTCLOUD_SESSION_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(
        code_of(&out),
        3,
        "an auth failure halts: {}",
        stderr_of(&out)
    );
    assert!(stderr_of(&out).contains("AuthFailure.SignatureFailure"));

    // And a successful run with the right key.
    let out_ok = s
        .run_command()
        .env("TENCENTCLOUD_SESSION_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(code_of(&out_ok), 0, "{}", stderr_of(&out_ok));

    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("stderr".into(), out.stderr.clone()),
        ("stdout".into(), out.stdout.clone()),
        ("stderr (ok run)".into(), out_ok.stderr.clone()),
        ("results".into(), std::fs::read(&s.results).unwrap()),
    ];
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("state.db") {
            places.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    for secret in [wrong_key, SECRET_KEY, token] {
        for (name, bytes) in &places {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(secret), "{secret} leaked into {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stderr_does_not_stop_or_corrupt_the_campaign() {
    // `ccc-dialer run … 2>&1 | head` closes the pipe early: every later log line fails to write.
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(20));
    let mut child = s
        .run_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let pid = child.id();
    let status = wait_within(pid, "the run with a closed stderr to exit", move || {
        child.wait()
    })
    .await
    .expect("wait for the run");
    assert_eq!(status.code(), Some(0));
    let rows = s.results();
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.status == "placed"), "{rows:?}");
    assert_eq!(mock.stats().accepted, 20);
}

/// `ccc-dialer call --config CONFIG --callee 13800138000` with the test key.
async fn call_13800138000(config: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["call", "--config"])
        .arg(config)
        .args(["--callee", "13800138000"])
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY);
    output_within(cmd, "the call command to exit").await
}

#[tokio::test(flavor = "multi_thread")]
async fn log_level_trace_never_prints_a_raw_phone_number() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts("callee\n+8613812345678\n13912345678\n");
    for level in ["trace", "trace,rlibphonenumber=trace"] {
        let _ = std::fs::remove_file(&s.state);
        let out = s
            .run_command()
            .args(["--log-level", level])
            .output()
            .unwrap();
        assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains("TRACE"), "trace lines are printed: {err}");
        for digits in ["13812345678", "13912345678"] {
            assert!(
                !err.contains(digits),
                "{level}: {digits} in the log:\n{err}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_api_token_or_an_endless_secret_file_exits_2() {
    let s = Scratch::new("builtin", "", "");
    for token in ["", "   "] {
        // On all interfaces, so that a token taken for "none" fails fast instead of serving.
        let out = Command::new(bin())
            .args(["serve", "--listen", "0.0.0.0:0", "--config"])
            .arg(&s.config)
            .arg("--state")
            .arg(&s.state)
            .env("CCC_DIALER_API_TOKEN", token)
            .env_remove("CCC_DIALER_API_TOKEN_FILE")
            .output()
            .unwrap();
        assert_eq!(code_of(&out), 2, "{token:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("CCC_DIALER_API_TOKEN is empty"),
            "{}",
            stderr_of(&out)
        );
    }
    let s = Scratch::new("https://ccc.tencentcloudapi.com", "", "");
    s.write_contacts(&contacts_csv(1));
    let out = s
        .run_command()
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .env("TENCENTCLOUD_SECRET_KEY_FILE", "/dev/zero")
        .output()
        .unwrap();
    assert_eq!(code_of(&out), 2, "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("larger than 65536 bytes"),
        "{}",
        stderr_of(&out)
    );
}

/// `serve --help`: bind failures are exit 1 (it said 2 for a port in use).
#[tokio::test]
async fn serve_on_a_port_in_use_exits_1_naming_the_address() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&s.config)
        .arg("--state")
        .arg(&s.state)
        .arg("--listen")
        .arg(addr.to_string())
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env("CCC_DIALER_API_TOKEN", crate::served::TOKEN)
        .env_remove("TENCENTCLOUD_SESSION_TOKEN")
        .env_remove("CCC_DIALER_LOG")
        .stdin(std::process::Stdio::null());
    let out = output_within(cmd, "serve to exit").await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 1, "{err}");
    assert!(
        err.contains(&format!("--listen {addr}: cannot bind")),
        "{err}"
    );
    drop(taken);
}

/// The intake line counts duplicates in English: "(1 duplicate)", "(2 duplicates)".
#[tokio::test]
async fn the_intake_line_says_1_duplicate_and_2_duplicates() {
    let mock = mock_with(20, 0, "").await;
    for (copies, said) in [(1, "(1 duplicate)"), (2, "(2 duplicates)")] {
        let s = Scratch::new(&mock.endpoint(), "", "");
        let mut csv = contacts_csv(2);
        for k in 0..copies {
            csv.push_str(&format!("+86138{:08},d{k}\n", 0));
        }
        s.write_contacts(&csv);
        let out = run_async(&s).await;
        assert_eq!(code_of(&out), 0, "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains(said), "{}", stderr_of(&out));
    }
}

/// `--log-format text` into a pipe (a file, a log collector) writes plain text: no ANSI colour
/// codes, which only a terminal renders.
#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(&mock.endpoint(), "", "");
    s.write_contacts(&contacts_csv(2));
    let out = run_text_logs(&s, &[]).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    assert!(err.contains("INFO"), "text log lines expected: {err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

/// `run` of the scratch campaign with `--log-format text` (what a terminal shows) and `extra`
/// options before the command, to the end.
async fn run_text_logs(s: &Scratch, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--log-format")
        .arg("text")
        .args(extra)
        .arg("run")
        .arg("--config")
        .arg(&s.config)
        .arg("--contacts")
        .arg(&s.contacts)
        .arg("--results")
        .arg(&s.results)
        .arg("--state")
        .arg(&s.state)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env_remove("TENCENTCLOUD_SESSION_TOKEN")
        .env_remove("CCC_DIALER_LOG")
        .stdin(Stdio::null());
    output_within(cmd, "ccc-dialer to exit").await
}

/// A text log line about one contact names it as an operator can find it: its line in the
/// contacts file and its masked number; the full number appears nowhere on stderr. At the
/// default level and at warn, the level a progress bar sets (only warnings and errors show).
#[tokio::test]
async fn text_log_lines_about_a_contact_name_its_line_and_masked_number() {
    // The third contact (line 4 of the file) is refused for good; the others are placed.
    for level in [&[][..], &["--log-level", "warn"][..]] {
        let mock = mock_with(
            20,
            0,
            "[[rule]]\ncallee = \"008613800000002\"\noutcomes = [\"error:FailedOperation.CalleeIsBlackUser\"]\n",
        )
        .await;
        let s = Scratch::new(&mock.endpoint(), "", "");
        s.write_contacts(&contacts_csv(4));
        let out = run_text_logs(&s, level).await;
        let err = stderr_of(&out);
        assert_eq!(code_of(&out), 0, "{err}");
        let gave_up: Vec<&str> = err.lines().filter(|l| l.contains("gave up")).collect();
        assert_eq!(gave_up.len(), 1, "one refused contact ({level:?}): {err}");
        assert!(gave_up[0].contains("line=4"), "{level:?}: {}", gave_up[0]);
        assert!(
            gave_up[0].contains("callee=0086138****0002"),
            "{level:?}: {}",
            gave_up[0]
        );
        for i in 0..4 {
            let full = format!("13800000{i:03}");
            assert!(!err.contains(&full), "full number {full} on stderr: {err}");
        }
    }
}

/// The closing line of `run` counts every final status: contacts the campaign's end expired
/// are in it (it named placed, failed, skipped and unknown only).
#[tokio::test]
async fn the_run_summary_counts_expired_contacts() {
    let mock = mock_with(20, 0, "").await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        "[calling]\nnot_after = \"2020-01-01T00:00:00+08:00\"\n",
    );
    s.write_contacts(&contacts_csv(3));
    let out = run_async(&s).await;
    let err = stderr_of(&out);
    assert_eq!(code_of(&out), 0, "{err}");
    assert!(
        err.contains("0 placed, 0 failed, 0 skipped, 3 expired, 0 cancelled, 0 unknown"),
        "{err}"
    );
    assert_eq!(mock.stats().requests, 0);
}
