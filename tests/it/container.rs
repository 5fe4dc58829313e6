//! Container conditions without a container engine: `ccc-dialer serve` started the way the image
//! starts it (Dockerfile, samples/kubernetes.yaml) and held to what the image promises.
//!
//! - An unprivileged user: uid/gid 10001 with no supplementary groups when the tests run as
//!   root (as they do in CI and here); otherwise the current user, the only one there is.
//! - No flags: `serve` plus `CCC_DIALER_*` variables, nothing else in the environment; the
//!   config a read-only file in a root-owned folder; every secret a `*_FILE` readable by the
//!   service's group only (the Kubernetes sample's `defaultMode: 0440`, `fsGroup: 10001`).
//! - The state folder (the volume) is the only place it can write, the working folder
//!   included, and everything it writes lands there.
//! - SIGTERM drains replies in flight and exits 0, also as PID 1 of its own PID namespace,
//!   where the kernel delivers SIGTERM only to a process that handles it.
//! - The image's HEALTHCHECK (`ccc-dialer healthcheck`) and the API token from its file work,
//!   and no secret is ever printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccc_dialer::contact::Status;
use ccc_dialer::store::{CampaignState, Store};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{bin, mock_with, wait_for_requests, SECRET_ID, SECRET_KEY};

/// The image's user and group (`USER 10001:10001`).
const SERVICE_ID: u32 = 10001;
const API_TOKEN: &str = "container-api-token-5f1c0e9a7d3b";
/// A generous bound on anything the tests wait for; never a pacing assumption.
const PATIENCE: Duration = Duration::from_secs(60);
const UNSHARE: &str = "/usr/bin/unshare";
const SETPRIV: &str = "/usr/bin/setpriv";

#[tokio::test(flavor = "multi_thread")]
async fn serve_as_an_unprivileged_user_configured_from_env_and_files_writes_only_its_state_dir() {
    let mock = mock_with(20, 0, "").await;
    let layout = Layout::new(&mock.endpoint());
    let untouched = layout.outside_state();
    let mut serving = Serving::start(&layout, Launch::Plain).await;
    let api = Api::new(serving.addr);

    assert_eq!(healthcheck(&layout, serving.addr).await, Some(0));
    assert_eq!(api.get("/v1/campaigns", None).await.0, 401);
    assert_eq!(
        api.get("/v1/campaigns", Some("not-the-token-0123456789"))
            .await
            .0,
        401
    );
    assert_eq!(api.get("/v1/campaigns", Some(API_TOKEN)).await.0, 200);

    let id = api.create_campaign(&callees(5)).await;
    let done = api.wait_until_completed(id).await;
    assert_eq!(done["counts"]["placed"], 5, "{done}");
    let stats = mock.stats();
    assert_eq!(
        stats.accepted, 5,
        "the keys from the files sign every request"
    );
    assert_eq!(stats.signature_failures, 0);

    let out = serving.stop().await;
    assert_eq!(out.code, Some(0), "SIGTERM when idle: {}", out.stderr);
    assert_ne!(
        healthcheck(&layout, serving.addr).await,
        Some(0),
        "the healthcheck fails once serve has stopped"
    );
    out.assert_clean();

    assert_eq!(
        layout.outside_state(),
        untouched,
        "nothing outside the state folder was created, changed or removed"
    );
    let written = tree(&layout.state());
    let top: Vec<String> = written
        .keys()
        .filter(|p| p.components().count() == 1)
        .map(|p| p.display().to_string())
        .collect();
    for name in &top {
        assert!(
            [
                "state.db",
                "state.db-wal",
                "state.db-shm",
                "state.db.lock",
                "uploads",
                "inbox"
            ]
            .contains(&name.as_str()),
            "unexpected file in the state folder: {name} (all: {:?})",
            written.keys()
        );
    }
    assert!(top.contains(&"state.db".to_string()), "{top:?}");
    assert_eq!(
        written
            .keys()
            .filter(|p| p.starts_with("uploads") && p.extension().is_some_and(|x| x == "csv"))
            .count(),
        1,
        "the upload is kept in the state folder: {:?}",
        written.keys()
    );
    if let Some((uid, gid)) = layout.user {
        for (path, meta) in &written {
            assert_eq!(
                (meta.uid(), meta.gid()),
                (uid, gid),
                "{} was written by the service's user",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_campaign_drains_replies_in_flight_and_exits_zero() {
    sigterm_drains(Launch::Plain).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_to_pid_1_of_a_pid_namespace_drains_replies_in_flight_and_exits_zero() {
    // A new PID namespace needs root (CAP_SYS_ADMIN); where that is missing or the sandbox
    // forbids it, only the plain variant above runs. Say so rather than fail.
    if !running_as_root() {
        eprintln!("skipped: PID 1 in a new PID namespace needs root");
        return;
    }
    let probe = Command::new(UNSHARE)
        .args(["--pid", "--fork", "--mount-proc", "/bin/true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: `unshare --pid --fork --mount-proc` is not available here");
        return;
    }
    sigterm_drains(Launch::Pid1).await;
}

/// SIGTERM while replies are in flight (the stand-in answers after 400 ms): exit 0, every reply
/// recorded, nothing `in_flight` or `unknown`, the campaign still active for the next start.
async fn sigterm_drains(launch: Launch) {
    let mock = mock_with(20, 400, "").await;
    let layout = Layout::new(&mock.endpoint());
    let mut serving = Serving::start(&layout, launch).await;
    let api = Api::new(serving.addr);
    let contacts = 80;
    let id = api.create_campaign(&callees(contacts)).await;
    wait_for_requests(&mock, "calls to be in flight", 5).await;

    let out = serving.stop().await;
    assert_eq!(out.code, Some(0), "SIGTERM mid-campaign: {}", out.stderr);
    out.assert_clean();

    let store = Store::open(&layout.state().join("state.db")).expect("store opens");
    let campaign = store.campaign(id).await.unwrap().expect("campaign stored");
    assert_eq!(
        campaign.state,
        CampaignState::Active,
        "the next start resumes it"
    );
    let counts = store.counts(id).await.unwrap();
    let n = |s: Status| counts.get(&s).copied().unwrap_or(0);
    assert_eq!(n(Status::InFlight), 0, "drained: {counts:?}");
    assert_eq!(
        n(Status::Unknown),
        0,
        "every reply was waited for: {counts:?}"
    );
    assert!(n(Status::Pending) > 0, "stopped mid-campaign: {counts:?}");
    assert_eq!(
        n(Status::Placed),
        mock.stats().accepted,
        "every call created is recorded as placed"
    );
    assert_eq!(counts.values().sum::<u64>(), contacts as u64);
}

/// Whether this test process is root (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn callees(n: usize) -> String {
    let mut csv = String::from("callee\n");
    for i in 1..=n {
        csv.push_str(&format!("+86138{i:08}\n"));
    }
    csv
}

/// The container's filesystem under one root-owned temp folder: `etc/` (the config, mounted
/// read-only), `secrets/`, `state/` (the volume: empty, owned by the service) and `work/` (the
/// working folder, read-only).
struct Layout {
    root: tempfile::TempDir,
    /// Who the service runs as: `Some((uid, gid))` when this process can switch users; when it
    /// cannot (not root), the service runs as the current user.
    user: Option<(u32, u32)>,
}

impl Layout {
    fn new(endpoint: &str) -> Layout {
        let layout = Layout {
            root: tempfile::tempdir().expect("temp dir"),
            user: running_as_root().then_some((SERVICE_ID, SERVICE_ID)),
        };
        set_mode(layout.root.path(), 0o755);

        std::fs::create_dir(layout.etc()).unwrap();
        let config = layout.etc().join("dialer.toml");
        std::fs::write(
            &config,
            format!(
                "[tencentcloud]\nendpoint = \"{endpoint}\"\nrequest_timeout = \"10s\"\n\n\
                 [campaign]\nsdk_app_id = 1400000000\nai_agent_id = 15\n\n\
                 [run]\ngrace_period = \"30s\"\n"
            ),
        )
        .unwrap();
        set_mode(&config, 0o444);
        set_mode(&layout.etc(), 0o555);

        // As the Kubernetes sample mounts them: root-owned, readable by the service's group.
        let secrets = layout.secrets();
        std::fs::create_dir(&secrets).unwrap();
        for (name, value) in [
            ("tencentcloud-secret-id", SECRET_ID),
            ("tencentcloud-secret-key", SECRET_KEY),
            ("api-token", API_TOKEN),
        ] {
            let path = secrets.join(name);
            // A trailing newline, as `echo` and secret managers write it.
            std::fs::write(&path, format!("{value}\n")).unwrap();
            layout.share_with_group(&path, 0o440, 0o400);
        }
        layout.share_with_group(&secrets, 0o550, 0o500);

        std::fs::create_dir(layout.state()).unwrap();
        if let Some((uid, gid)) = layout.user {
            chown(layout.state(), Some(uid), Some(gid)).unwrap();
        }
        set_mode(&layout.state(), 0o750);

        std::fs::create_dir(layout.work()).unwrap();
        set_mode(&layout.work(), 0o555);
        layout
    }

    fn etc(&self) -> PathBuf {
        self.root.path().join("etc")
    }
    fn secrets(&self) -> PathBuf {
        self.root.path().join("secrets")
    }
    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }
    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// Root-owned with the service's group and `group_mode`; without root, `own_mode`.
    fn share_with_group(&self, path: &Path, group_mode: u32, own_mode: u32) {
        match self.user {
            Some((_, gid)) => {
                chown(path, Some(0), Some(gid)).unwrap();
                set_mode(path, group_mode);
            }
            None => set_mode(path, own_mode),
        }
    }

    /// The whole environment of the service: the image's variables, secrets as files.
    fn env(&self) -> Vec<(&'static str, String)> {
        let at = |p: PathBuf| p.display().to_string();
        vec![
            ("CCC_DIALER_CONFIG", at(self.etc().join("dialer.toml"))),
            ("CCC_DIALER_STATE", at(self.state().join("state.db"))),
            // Beyond loopback, as in the image: serve then insists on the token.
            ("CCC_DIALER_LISTEN", "0.0.0.0:0".to_string()),
            ("CCC_DIALER_INBOX", at(self.state().join("inbox"))),
            (
                "CCC_DIALER_API_TOKEN_FILE",
                at(self.secrets().join("api-token")),
            ),
            (
                "TENCENTCLOUD_SECRET_ID_FILE",
                at(self.secrets().join("tencentcloud-secret-id")),
            ),
            (
                "TENCENTCLOUD_SECRET_KEY_FILE",
                at(self.secrets().join("tencentcloud-secret-key")),
            ),
        ]
    }

    /// Every path outside the state folder with its kind, mode, owner, size and modification
    /// time: a folder's time changes when anything is created in it or removed from it.
    fn outside_state(&self) -> BTreeMap<PathBuf, String> {
        let mut all = tree(self.root.path());
        all.insert(PathBuf::new(), std::fs::metadata(self.root.path()).unwrap());
        all.into_iter()
            .filter(|(p, _)| !p.starts_with("state"))
            .map(|(p, m)| {
                let seen = format!(
                    "{:o} {}:{} {} {:?}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.len(),
                    m.modified().ok()
                );
                (p, seen)
            })
            .collect()
    }
}

impl Drop for Layout {
    /// Without root, the temp folder can only be removed once its folders are writable again.
    fn drop(&mut self) {
        for dir in [self.etc(), self.secrets(), self.work()] {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Everything under `dir`, by path relative to it (symlinks not followed).
fn tree(dir: &Path) -> BTreeMap<PathBuf, std::fs::Metadata> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, std::fs::Metadata>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            }
            out.insert(path.strip_prefix(base).unwrap().to_path_buf(), meta);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// A child of this test, with the service's user and group.
    Plain,
    /// PID 1 of a new PID namespace (`unshare`), user switched by `setpriv` with no new
    /// privileges: what `docker run` makes of the image's ENTRYPOINT.
    Pid1,
}

/// `ccc-dialer serve` running, with its output collected.
struct Serving {
    child: Child,
    /// The serve process as this test sees it: for [`Launch::Pid1`], not `unshare` but its child.
    pid: u32,
    addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    stopped: bool,
}

/// What serve printed and how it ended.
struct Stopped {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Stopped {
    /// No secret in the output, no error logged.
    fn assert_clean(&self) {
        for secret in [SECRET_ID, SECRET_KEY, API_TOKEN] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret was printed:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
        assert!(
            !self.stderr.contains("\"level\":\"ERROR\""),
            "{}",
            self.stderr
        );
    }
}

impl Serving {
    async fn start(layout: &Layout, launch: Launch) -> Serving {
        let mut cmd = match launch {
            Launch::Plain => {
                let mut cmd = Command::new(bin());
                if let Some((uid, gid)) = layout.user {
                    cmd.uid(uid).gid(gid);
                }
                cmd
            }
            Launch::Pid1 => {
                let (uid, gid) = layout.user.expect("a PID namespace needs root");
                let mut cmd = Command::new(UNSHARE);
                cmd.args(["--pid", "--fork", "--mount-proc", SETPRIV])
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--no-new-privs", bin()]);
                cmd
            }
        };
        cmd.arg("serve")
            .env_clear()
            .envs(layout.env())
            .current_dir(layout.work())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn serve");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (listening_tx, listening) = oneshot::channel();
        let readers = vec![
            collect(
                child.stdout.take().unwrap(),
                stdout.clone(),
                Some(listening_tx),
            ),
            collect(child.stderr.take().unwrap(), stderr.clone(), None),
        ];
        let Ok(Ok(bound)) = tokio::time::timeout(PATIENCE, listening).await else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            for r in readers {
                let _ = r.await;
            }
            panic!(
                "serve never said where it listens:\n{}",
                stderr.lock().unwrap()
            );
        };
        let outer = child.id().expect("serve is running");
        let pid = match launch {
            Launch::Plain => outer,
            Launch::Pid1 => child_of(outer),
        };
        let serving = Serving {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], bound.port())),
            stdout,
            stderr,
            readers,
            stopped: false,
        };
        serving.assert_credentials(layout, launch);
        serving
    }

    /// The process runs as the service's user with no supplementary groups; as PID 1 if asked.
    fn assert_credentials(&self, layout: &Layout, launch: Launch) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let field = |name: &str| -> Vec<String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if let Some((uid, gid)) = layout.user {
            // Real, effective, saved and filesystem ids.
            assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{status}");
            assert_eq!(field("Gid:"), vec![gid.to_string(); 4], "{status}");
            assert!(field("Groups:").is_empty(), "{status}");
        }
        if launch == Launch::Pid1 {
            assert_eq!(field("NSpid:").last().map(String::as_str), Some("1"));
        }
    }

    /// SIGTERM, as `docker stop` and Kubernetes send it, and wait for the exit.
    async fn stop(&mut self) -> Stopped {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .expect("kill");
        assert!(sent.success());
        let Ok(exit) = tokio::time::timeout(PATIENCE, self.child.wait()).await else {
            panic!(
                "serve did not stop after SIGTERM:\n{}",
                self.stderr.lock().unwrap()
            );
        };
        self.stopped = true;
        for r in self.readers.drain(..) {
            let _ = r.await;
        }
        Stopped {
            code: exit.expect("wait for serve").code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Serving {
    /// A failed test leaves nothing running. `kill_on_drop` ends `unshare`, not the serve
    /// process it started, so that one is killed by pid.
    fn drop(&mut self) {
        if !self.stopped {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// Collect a stream's lines; the first `listening on http://ADDR` line is sent on `listening`.
fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
    mut listening: Option<oneshot::Sender<SocketAddr>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let addr = line
                .strip_prefix("listening on http://")
                .and_then(|a| a.parse().ok());
            if let (Some(addr), Some(tx)) = (addr, listening.take()) {
                let _ = tx.send(addr);
            }
            let mut all = into.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    })
}

/// The only child of `parent` (this kernel has no `/proc/PID/task/TID/children`: scan).
fn child_of(parent: u32) -> u32 {
    let ppid = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| ppid(pid) == Some(parent))
        .unwrap_or_else(|| panic!("unshare ({parent}) has no child"))
}

/// `ccc-dialer healthcheck` as the image's HEALTHCHECK runs it: the service's user, no
/// environment.
async fn healthcheck(layout: &Layout, addr: SocketAddr) -> Option<i32> {
    let mut cmd = Command::new(bin());
    cmd.args(["healthcheck", "--url", &format!("http://{addr}/healthz")])
        .env_clear()
        .current_dir(layout.work())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = layout.user {
        cmd.uid(uid).gid(gid);
    }
    cmd.status().await.expect("run healthcheck").code()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("http://{addr}"),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    async fn create_campaign(&self, csv: &str) -> i64 {
        let resp = self
            .http
            .post(format!("{}/v1/campaigns", self.base))
            .bearer_auth(API_TOKEN)
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("POST /v1/campaigns");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 201, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["campaign"]["id"].as_i64().expect("campaign id")
    }

    /// Poll the campaign until it is `completed` (bounded; fails with the last answer).
    async fn wait_until_completed(&self, id: i64) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self
                .get(&format!("/v1/campaigns/{id}"), Some(API_TOKEN))
                .await;
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if v["state"] == "completed" {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "campaign {id} not completed: HTTP {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
