//! `ccc-dialer serve` as a child process on port 0, and small helpers for its tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

pub const TOKEN: &str = "test-api-token-0123456789";
/// The CDR push receiver's Basic credentials in the in-process service.
pub const PUSH_USER: &str = "tccc-push";
pub const PUSH_PASSWORD: &str = "push-password-never-printed";

/// A running `serve` child.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
}

pub fn serve_command(s: &Scratch) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--log-format")
        .arg("json")
        .arg("serve")
        .arg("--config")
        .arg(&s.config)
        .arg("--state")
        .arg(&s.state)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--inbox")
        .arg(s.dir.path().join("inbox"))
        .arg("--max-body-mib")
        .arg("1")
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env("CCC_DIALER_API_TOKEN", TOKEN)
        .env_remove("TENCENTCLOUD_SESSION_TOKEN")
        .env_remove("CCC_DIALER_LOG")
        .stdin(Stdio::null());
    cmd
}

impl Served {
    /// Start `serve` and wait for the address it prints.
    pub async fn start(s: &Scratch) -> Served {
        Served::start_with(s, serve_command(s)).await
    }

    /// Start `serve` as `cmd` (a [`serve_command`] changed by the test) and wait for its address.
    pub async fn start_with(s: &Scratch, cmd: Command) -> Served {
        let mut cmd = cmd;
        let log = s.dir.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        let mut child = cmd.spawn().expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = match tokio::time::timeout(DEADLINE, read).await {
            Ok(joined) => joined.expect("join").expect("read the address line"),
            Err(_) => {
                // Killing it closes its stdout, which ends the blocked read.
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "timed out after {DEADLINE:?} waiting for: serve to print its address; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "serve printed {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        Served {
            child,
            base,
            // A request the service never answers fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("HTTP client"),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Create a campaign from CSV text; returns its id.
    pub async fn create(&self, name: &str, csv: &str) -> i64 {
        let (status, body) = self
            .post(&format!("/v1/campaigns?name={name}"), csv.to_string())
            .await;
        assert_eq!(status, 201, "{body}");
        body["campaign"]["id"].as_i64().expect("id")
    }

    pub async fn campaign(&self, id: i64) -> Value {
        let (status, body) = self.get(&format!("/v1/campaigns/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Poll until `pred` holds for the campaign (bounded; fails with the last body).
    pub async fn wait_campaign(&self, id: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let c = self.campaign(id).await;
            if pred(&c) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {c}\nlog: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Wait (at most [`DEADLINE`]) for `serve` to exit: its code and log.
    pub async fn wait_exit(mut self) -> (i32, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for: serve to exit; log: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status.code().unwrap_or(-1), log)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn count(c: &Value, status: &str) -> u64 {
    c["counts"][status].as_u64().unwrap_or(0)
}

pub fn state(c: &Value) -> &str {
    c["state"].as_str().unwrap_or("")
}

/// Distinct Chinese mobiles `+86139<prefix:02><i:06>` (normalised `0086139…`).
pub fn csv_of(prefix: u32, n: usize) -> String {
    let mut s = String::from("callee,id\n");
    for i in 0..n {
        s.push_str(&format!("{},r{i}\n", callee(prefix, i)));
    }
    s
}

pub fn callee(prefix: u32, i: usize) -> String {
    format!("+86139{prefix:02}{i:06}")
}

pub fn normalised(prefix: u32, i: usize) -> String {
    format!("0086139{prefix:02}{i:06}")
}

pub fn scratch(mock: &ccc_dialer::mock::MockServer, extra: &str) -> Scratch {
    Scratch::new(
        &mock.endpoint(),
        "",
        &format!("[retry]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n{extra}"),
    )
}

/// `serve` in-process on port 0, with the test token, against a stand-in that answers every
/// first call "outside calling hours" (contacts are rescheduled an hour on, so campaigns stay
/// active however fast a test runs). `prepare` sees the store before the service does.
pub struct InProcess {
    pub base: String,
    pub svc: std::sync::Arc<ccc_dialer::server::Service>,
    pub uploads: PathBuf,
    pub stop: tokio::sync::watch::Sender<ccc_dialer::dispatch::Stop>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub mock: ccc_dialer::mock::MockServer,
    pub scratch: Scratch,
}

pub async fn in_process(
    max_body: usize,
    prepare: impl AsyncFnOnce(&ccc_dialer::store::Store),
) -> InProcess {
    in_process_with(max_body, "", prepare).await
}

/// [`in_process`] with `extra` appended to the config (e.g. a `[server]` table).
pub async fn in_process_with(
    max_body: usize,
    extra: &str,
    prepare: impl AsyncFnOnce(&ccc_dialer::store::Store),
) -> InProcess {
    in_process_on(max_body, extra, None, prepare).await
}

/// [`in_process_with`] on the store `state` names (a PostgreSQL URL) instead of the scratch
/// directory's SQLite file.
pub async fn in_process_on(
    max_body: usize,
    extra: &str,
    state: Option<&str>,
    prepare: impl AsyncFnOnce(&ccc_dialer::store::Store),
) -> InProcess {
    use ccc_dialer::ccc::{system_clock, Client, ClientSettings};
    use ccc_dialer::config::Config;
    use ccc_dialer::dispatch::{Engine, Stop};
    use ccc_dialer::secret::Secret;
    use std::sync::Arc;
    let mock = mock_with(
        20,
        0,
        "[[rule]]\ncallee = \"*\"\noutcomes = [\"error:FailedOperation.CalloutRuleNotWorkTime\"]\n",
    )
    .await;
    let s = Scratch::new(
        &mock.endpoint(),
        "",
        &format!("[retry]\nlater_delay = \"1h\"\nmax_reschedules = 3\n{extra}"),
    );
    let cfg = Arc::new(Config::load(&s.config).expect("config"));
    let client = Client::new(
        &ClientSettings {
            endpoint: mock.endpoint(),
            region: cfg.tencentcloud.region.clone(),
            language: cfg.tencentcloud.language.clone(),
            connect_timeout: cfg.tencentcloud.connect_timeout,
            request_timeout: cfg.tencentcloud.request_timeout,
            idle_timeout: cfg.tencentcloud.idle_timeout,
        },
        ccc_dialer::sign::Credentials {
            secret_id: SECRET_ID.into(),
            secret_key: Secret::new(SECRET_KEY),
            session_token: None,
        },
        system_clock(),
    )
    .expect("client");
    let store = match state {
        Some(url) => ccc_dialer::store::Store::connect_postgres(url)
            .await
            .expect("store"),
        None => ccc_dialer::store::Store::open(&s.state).expect("store"),
    };
    prepare(&store).await;
    let limiter = Arc::new(ccc_dialer::limiter::Limiter::new(
        cfg.rate.requests_per_second,
        &[],
    ));
    let engine = Engine::from_config(&cfg, store, client, limiter);
    let uploads = s.dir.path().join("uploads");
    let svc = ccc_dialer::server::build(
        cfg,
        engine,
        Some(Secret::new(TOKEN)),
        uploads.clone(),
        max_body,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    svc.enable_cdr_push(PUSH_USER.into(), Secret::new(PUSH_PASSWORD))
        .expect("push receiver on");
    let (stop, stop_rx) = tokio::sync::watch::channel(Stop::Run);
    let task = tokio::spawn(svc.clone().run_until_stopped(listener, None, stop_rx));
    InProcess {
        base,
        svc,
        uploads,
        stop,
        task,
        mock,
        scratch: s,
    }
}
