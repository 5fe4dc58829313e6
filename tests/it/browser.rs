//! Debian's Chromium driven through chromedriver (WebDriver, with `fantoccini`), for the console
//! tests. Chromium and chromedriver must be installed (`apt-get install -y chromium
//! chromium-driver`; `.ci/run` does it): without them these tests fail, saying so, rather than
//! pass without having looked at a page.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::within;

/// How long a page gets to show what a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

const INSTALL: &str = "the console tests drive Debian's Chromium through chromedriver: install them with `sudo apt-get install -y chromium chromium-driver` (or point CHROMIUM and CHROMEDRIVER at the binaries)";

/// A program named by `var`, else the first of `names` on the PATH.
fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file; {INSTALL}",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{} not found on the PATH; {INSTALL}", names.join(" or "));
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium with a fresh profile, behind its own chromedriver.
    pub async fn start() -> Browser {
        let chromium = program("CHROMIUM", &["chromium", "chromium-browser"]);
        let driver_bin = program("CHROMEDRIVER", &["chromedriver"]);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", driver_bin.display()));
        let mut b = BrowserStart {
            driver: Some(driver),
        };
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver is ready when its status says so.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = within("chromedriver's status", async {
                match http.get(format!("{url}/status")).send().await {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["value"]["ready"] == true),
                    Err(_) => false,
                }
            })
            .await;
            if ready {
                break;
            }
            if let Some(status) = b.driver.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
                panic!("chromedriver exited at start ({status}); {INSTALL}");
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": profile.path().join("downloads"),
                    "download.prompt_for_download": false,
                },
            }),
        );
        // chromedriver is plain HTTP on loopback: no TLS stack.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = within(
            "chromedriver to start a session",
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url),
        )
        .await
        .unwrap_or_else(|e| panic!("chromedriver cannot start Chromium: {e}; {INSTALL}"));
        Browser {
            client,
            driver: b.driver.take().expect("driver"),
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        within(&format!("the browser to load {url}"), self.client.goto(url))
            .await
            .expect("goto");
    }

    pub async fn js(&self, script: &str) -> Value {
        within(
            &format!("the browser to run {script:?}"),
            self.client.execute(script, vec![]),
        )
        .await
        .expect("script")
    }

    /// The text of the first element matching `css` once `pred` holds for it (polling the page
    /// until the deadline; fails with what the page showed).
    pub async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = within(&format!("the browser to read {css}"), async {
                match self.client.find(Locator::Css(css)).await {
                    Ok(el) => el.text().await.ok(),
                    Err(_) => None,
                }
            })
            .await;
            if let Some(t) = &text {
                if pred(t) {
                    return t.clone();
                }
            }
            if Instant::now() >= deadline {
                let body = self
                    .js("return document.body ? document.body.innerText : ''")
                    .await;
                panic!("timed out waiting for {what} ({css}): last {text:?}\npage:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `script` (a JS expression) is truthy; returns its value.
    pub async fn wait_js(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.js(&format!("return ({script});")).await;
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            if Instant::now() >= deadline {
                let body = self
                    .js("return document.body ? document.body.innerText : ''")
                    .await;
                panic!("timed out waiting for {what} ({script}): last {v}\npage:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let el = self
            .client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        within(&format!("the browser to click {css}"), el.click())
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        within(&format!("the browser to type into {css}"), async {
            el.clear().await.expect("clear");
            el.send_keys(text).await.expect("type");
        })
        .await;
    }

    pub async fn count(&self, css: &str) -> u64 {
        self.js(&format!(
            "return document.querySelectorAll({}).length;",
            json!(css)
        ))
        .await
        .as_u64()
        .unwrap_or(0)
    }

    /// Where this browser's downloads land.
    pub fn downloads(&self) -> PathBuf {
        self.profile.path().join("downloads")
    }

    /// The file `name` once it is completely downloaded (polled until the deadline).
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads().join(name);
        let partial = self.downloads().join(format!("{name}.crdownload"));
        let deadline = Instant::now() + DEADLINE;
        loop {
            if path.is_file() && !partial.exists() {
                return std::fs::read(&path).expect("read the download");
            }
            assert!(Instant::now() < deadline, "{name} was never downloaded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// axe-core's accessibility check of the page as it is: fails on any serious or critical
    /// violation, naming the rule and the elements.
    pub async fn check_accessibility(&self, page: &str) {
        let axe = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/axe-core-4.14.1/axe.min.js"),
        )
        .expect("tests/data/axe-core-4.14.1/axe.min.js");
        // Injected through WebDriver (not a page <script>): the page's CSP does not apply.
        within(
            "the browser to load axe-core",
            self.client.execute(&axe, vec![]),
        )
        .await
        .expect("load axe-core");
        let check = self.client.execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({
                       id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.map(n => n.target.join(' '))
                   }))))
                   .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
            vec![],
        );
        let result = within(&format!("axe-core's check of {page}"), check)
            .await
            .expect("run axe-core");
        let serious: Vec<&Value> = result
            .as_array()
            .expect("violations")
            .iter()
            .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
            .collect();
        assert!(
            serious.is_empty(),
            "accessibility violations on {page}: {}",
            serde_json::to_string_pretty(&serious).unwrap_or_default()
        );
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = within("the browser's screenshot", self.client.screenshot())
            .await
            .expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// End the session (Chromium exits) and chromedriver.
    pub async fn quit(mut self) {
        // Bounded like every other call; chromedriver is killed below either way.
        let _ = tokio::time::timeout(DEADLINE, self.client.clone().close()).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_profile_processes(self.profile.path());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_profile_processes(self.profile.path());
    }
}

/// chromedriver while it starts: killed if the start fails.
struct BrowserStart {
    driver: Option<Child>,
}

impl Drop for BrowserStart {
    fn drop(&mut self) {
        if let Some(mut d) = self.driver.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// A test that failed before `quit` leaves Chromium to its driver's death; the processes of
/// this test's own profile (and only those) are ended by their ids.
fn kill_profile_processes(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let matches = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == needle.as_bytes());
        if matches {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}
