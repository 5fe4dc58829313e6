//! Shared test scaffolding: the built-in stand-in on port 0, a scratch directory with a config
//! and a contacts file, and the `ccc-dialer` binary as a child process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccc_dialer::contact::ResultRow;
use ccc_dialer::mock::{CallLength, Faults, Length, MockOptions, MockServer};
use ccc_dialer::results::{self};
use ccc_dialer::secret::Secret;

pub const SECRET_ID: &str = "AKIDtestTESTtestTESTtestTESTtest0000";
pub const SECRET_KEY: &str = "test-secret-key-never-printed";

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ccc-dialer")
}

/// Stand-in options accepting the test key.
pub fn mock_options() -> MockOptions {
    MockOptions {
        credentials: vec![(SECRET_ID.to_string(), Secret::new(SECRET_KEY))],
        ..Default::default()
    }
}

/// Stand-in options for outcome tests: the test key, `faults` (with `calls` scripts), records
/// visible as soon as a call ends, calls that ring 0 s and talk 0 s unless scripted. Override
/// fields with `MockOptions { clock: …, cdr_delay: …, ..outcome_options(faults) }`.
pub fn outcome_options(faults: &str) -> MockOptions {
    MockOptions {
        faults: Faults::from_toml_str(faults).expect("test fault script parses"),
        cdr_delay: Duration::ZERO,
        call_length: CallLength {
            ring: Length::Fixed(Duration::ZERO),
            talk: Length::Fixed(Duration::ZERO),
        },
        ..mock_options()
    }
}

/// A request for `action` to the stand-in, signed with the test key at `timestamp` (Unix
/// seconds) over `body`, as the dialer signs.
pub fn signed_request(
    mock: &MockServer,
    action: &str,
    body: &str,
    timestamp: i64,
) -> reqwest::RequestBuilder {
    let host = mock.addr.to_string();
    let creds = ccc_dialer::sign::Credentials {
        secret_id: SECRET_ID.into(),
        secret_key: Secret::new(SECRET_KEY),
        session_token: None,
    };
    let signed = ccc_dialer::sign::sign(
        &creds,
        &ccc_dialer::sign::SignRequest {
            host: &host,
            service: "ccc",
            action,
            version: "2020-02-10",
            region: None,
            language: None,
            payload: body.as_bytes(),
            timestamp,
        },
    )
    .expect("sign");
    let mut req = reqwest::Client::new().post(mock.endpoint());
    for (k, v) in &signed.headers {
        req = req.header(*k, v);
    }
    req.body(body.to_string())
}

/// Send a signed `action` request; returns the `Response` object of the reply.
pub async fn api_call(
    mock: &MockServer,
    action: &str,
    body: &str,
    timestamp: i64,
) -> serde_json::Value {
    let resp = signed_request(mock, action, body, timestamp)
        .send()
        .await
        .expect("stand-in answers");
    assert_eq!(resp.status().as_u16(), 200, "API replies are HTTP 200");
    let v: serde_json::Value = resp.json().await.expect("JSON reply");
    v["Response"].clone()
}

/// The error code of an API reply (`""` when it is not an error).
pub fn error_code(response: &serde_json::Value) -> String {
    response["Error"]["Code"].as_str().unwrap_or("").to_string()
}

pub async fn mock_with(rate_limit: u32, latency_ms: u64, faults: &str) -> MockServer {
    let opts = MockOptions {
        rate_limit,
        latency_ms,
        faults: Faults::from_toml_str(faults).expect("test fault script parses"),
        ..mock_options()
    };
    MockServer::spawn(opts).await.expect("stand-in starts")
}

/// A scratch campaign: config, contacts, results and state paths in a temp dir.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub contacts: PathBuf,
    pub results: PathBuf,
    pub state: PathBuf,
}

impl Scratch {
    /// `extra` is appended to the generated config (more tables, e.g. `[retry]`).
    pub fn new(endpoint: &str, campaign_extra: &str, extra: &str) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("dialer.toml");
        std::fs::write(
            &config,
            format!(
                "[tencentcloud]\nendpoint = \"{endpoint}\"\nrequest_timeout = \"10s\"\n\n\
                 [campaign]\nsdk_app_id = 1400000000\nai_agent_id = 15\n{campaign_extra}\n\n{extra}\n"
            ),
        )
        .expect("write config");
        Scratch {
            contacts: dir.path().join("contacts.csv"),
            results: dir.path().join("results.csv"),
            state: dir.path().join("state.db"),
            config,
            dir,
        }
    }

    pub fn write_contacts(&self, text: &str) {
        std::fs::write(&self.contacts, text).expect("write contacts");
    }

    pub fn run_command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--contacts")
            .arg(&self.contacts)
            .arg("--results")
            .arg(&self.results)
            .arg("--state")
            .arg(&self.state)
            .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
            .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
            .env_remove("TENCENTCLOUD_SESSION_TOKEN")
            .env_remove("CCC_DIALER_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// Run to completion (blocking; call from `spawn_blocking` in async tests).
    pub fn run(&self) -> Output {
        self.run_command().output().expect("spawn ccc-dialer")
    }

    /// A `run` in the background, killed if the test ends (or fails) before it does.
    pub fn spawn(&self) -> Spawned {
        Spawned(Some(
            self.run_command()
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ccc-dialer"),
        ))
    }

    pub fn results(&self) -> Vec<ResultRow> {
        results::read(&self.results).expect("results file readable")
    }
}

pub fn phone(i: usize) -> String {
    format!("0086138{:08}", i)
}

/// A contacts CSV of `n` distinct Chinese mobiles.
pub fn contacts_csv(n: usize) -> String {
    let mut s = String::from("callee,id\n");
    for i in 0..n {
        s.push_str(&format!("+86138{:08},c{i}\n", i));
    }
    s
}

/// How long a test waits for anything (a child, a reply, a browser) before it fails: far above
/// what a passing test takes on a loaded host, so only a regression that waits forever meets it.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// `fut`, or a failure naming `what` once [`DEADLINE`] passes: a regression that waits forever
/// fails the test with a message instead of hanging CI.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for: {what}"),
    }
}

/// Run `cmd` to completion from async code, within [`DEADLINE`] (killed if it is still running
/// then, and the test fails naming `what`).
pub async fn output_within(cmd: Command, what: &str) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    within(what, cmd.output()).await.expect("spawn ccc-dialer")
}

/// A blocking `wait` on the child `pid` (its `wait_with_output`, `wait`) from async code, within
/// [`DEADLINE`]: past it the child is killed (so the blocked wait returns and the test process
/// can end instead of hanging CI) and the test fails naming `what`.
pub async fn wait_within<T: Send + 'static>(
    pid: u32,
    what: &str,
    wait: impl FnOnce() -> T + Send + 'static,
) -> T {
    let mut task = tokio::task::spawn_blocking(wait);
    match tokio::time::timeout(DEADLINE, &mut task).await {
        Ok(r) => r.expect("the wait on the child did not panic"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = task.await;
            panic!("timed out after {DEADLINE:?} waiting for: {what} (the child was killed)")
        }
    }
}

/// Run the scratch's `run` to completion from async code, within [`DEADLINE`].
pub async fn run_async(s: &Scratch) -> Output {
    output_within(s.run_command(), "ccc-dialer run to exit").await
}

/// Wait until the stand-in has seen at least `n` requests (bounded; a condition, not a sleep).
pub async fn wait_for_requests(mock: &MockServer, what: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if mock.requests() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What `ccc-dialer <command> --state <state> <args…>` printed on stdout (a read-only command such
/// as `status` or `report`); fails the test, with its stderr, if it did not succeed.
pub fn read_command(command: &str, state: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg(command)
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn ccc-dialer {command}: {e}"));
    assert!(out.status.success(), "{command}: {}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code_of(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A fault-script rule: `callee`'s first request is answered with `code`, the next succeeds.
pub fn fails_once(callee: &str, code: &str) -> String {
    format!("[[rule]]\ncallee = \"{callee}\"\noutcomes = [\"error:{code}\", \"ok\"]\n")
}

/// A child `ccc-dialer` that a failing test does not leave behind: an orphaned `run` probing a
/// stand-in that is gone would linger for its whole outage limit.
pub struct Spawned(Option<Child>);

impl Spawned {
    /// Wait for the child to end and collect its output.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        match self.0.take() {
            Some(child) => child.wait_with_output(),
            None => Err(std::io::Error::other("child already collected")),
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("child present until collected")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until collected")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
