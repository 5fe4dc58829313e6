//! The inbox reads only what was put in it, and says why it refuses without quoting what it
//! read: a settings file that does not parse is reported by line, column and key (never its
//! text) in `rejected/NAME.csv.error.txt` and the store; symbolic links (CSV or settings) are
//! refused into `rejected/` with a reason, never followed; a file written in place is taken
//! whole once it stops changing; file names are held to the API's name rules.
//!
//! `serve` runs in-process and the test steps the inbox one pass at a time
//! ([`Inbox::pass`]), so nothing races the once-a-second poll.

use std::path::{Path, PathBuf};

use ccc_dialer::dispatch::Stop;
use ccc_dialer::server::inbox::Inbox;

use crate::served::{in_process, InProcess};

const SECRET: &str = "AKIDsecretvalue1234567890";

struct Folder {
    p: InProcess,
    dir: PathBuf,
    inbox: Inbox,
}

impl Folder {
    async fn new() -> Folder {
        let p = in_process(64 * 1024, async |_| {}).await;
        let dir = p.scratch.dir.path().join("inbox");
        for sub in ["done", "rejected"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Folder {
            inbox: Inbox::new(dir.clone()),
            dir,
            p,
        }
    }

    /// Two passes: a file is taken once it looks the same at two in a row.
    async fn settle(&mut self) {
        self.inbox.pass(&self.p.svc, None).await;
        self.inbox.pass(&self.p.svc, None).await;
    }

    /// `rejected/NAME.error.txt` (NAME cut to fit a file name's 255 bytes).
    fn error_report(&self, csv: &str) -> String {
        let p = self
            .dir
            .join("rejected")
            .join(format!("{}.error.txt", &csv[..csv.len().min(245)]));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}; inbox holds {:?}", p.display(), list(&self.dir)))
    }

    /// `inbox_files.detail` for a file name, straight from the store.
    fn detail(&self, name: &str) -> Option<String> {
        let db = rusqlite::Connection::open_with_flags(
            &self.p.scratch.state,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT detail FROM inbox_files WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .ok()
    }

    async fn campaign_names(&self) -> Vec<String> {
        self.p
            .svc
            .store
            .campaigns()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    async fn stop(self) {
        self.p.stop.send_replace(Stop::Now);
        let _ = self.p.task.await;
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

const CSV: &str = "callee\n+8613800000031\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_that_does_not_parse_is_reported_by_line_and_key_never_by_its_text() {
    let mut f = Folder::new().await;
    std::fs::write(f.dir.join("pasted.csv"), CSV).unwrap();
    std::fs::write(
        f.dir.join("pasted.toml"),
        format!("priority = 1\n{SECRET}\n"),
    )
    .unwrap();
    std::fs::write(f.dir.join("typed.csv"), CSV).unwrap();
    std::fs::write(
        f.dir.join("typed.toml"),
        format!("ai_agent_id = \"{SECRET}\"\n"),
    )
    .unwrap();
    f.settle().await;

    let pasted = f.error_report("pasted.csv");
    assert!(
        pasted.starts_with("pasted.toml: line 2, column 26: "),
        "{pasted}"
    );
    let typed = f.error_report("typed.csv");
    assert!(
        typed.starts_with("typed.toml: line 1, column 15, key ai_agent_id: invalid type"),
        "{typed}"
    );
    for (name, report) in [("pasted.csv", &pasted), ("typed.csv", &typed)] {
        assert!(!report.contains("AKID"), "{report}");
        let detail = f.detail(name).expect("the rejection is recorded");
        assert_eq!(detail.trim(), report.trim());
        // The server's own folders are not disclosed either.
        assert!(!report.contains(&f.dir.display().to_string()), "{report}");
    }
    assert!(f.campaign_names().await.is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_parse_but_are_refused_are_reported_by_line_and_key_never_by_value() {
    let mut f = Folder::new().await;
    let cases = [
        (
            "dur",
            format!("priority = 1\nbackoff_max = \"{SECRET}\"\n"),
            "line 2, key backoff_max: expected",
        ),
        (
            "callers",
            format!("callers = [\"{SECRET}\"]\n"),
            "line 1, key callers: expected a caller number",
        ),
        (
            "window",
            format!("[calling]\nnot_after = \"{SECRET}\"\n"),
            "line 2, key calling.not_after: expected",
        ),
        (
            "named",
            format!("name = \"x/{SECRET}\"\n"),
            "line 1, key name: expected",
        ),
    ];
    for (stem, toml, _) in &cases {
        std::fs::write(f.dir.join(format!("{stem}.csv")), CSV).unwrap();
        std::fs::write(f.dir.join(format!("{stem}.toml")), toml).unwrap();
    }
    f.settle().await;
    for (stem, _, start) in &cases {
        let csv = format!("{stem}.csv");
        let report = f.error_report(&csv);
        assert!(
            report.starts_with(&format!("{stem}.toml: {start}")),
            "{report}"
        );
        assert!(!report.contains("AKID"), "{report}");
        assert!(!report.contains("secretvalue"), "{report}");
        let detail = f.detail(&csv).expect("the rejection is recorded");
        assert_eq!(detail.trim(), report.trim());
    }
    assert!(f.campaign_names().await.is_empty());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_in_the_inbox_are_refused_with_a_reason_and_never_followed() {
    let mut f = Folder::new().await;
    // A credential file the service can read, outside the inbox.
    let key_file = f.p.scratch.dir.path().join("secret-key");
    std::fs::write(&key_file, format!("{SECRET}\n")).unwrap();
    // Settings linked to it: followed, its first line would be quoted in the parse error.
    std::fs::write(f.dir.join("linked-settings.csv"), CSV).unwrap();
    std::os::unix::fs::symlink(&key_file, f.dir.join("linked-settings.toml")).unwrap();
    // A CSV that is a link: ignored for ever, without a word, before.
    let outside = f.p.scratch.dir.path().join("outside.csv");
    std::fs::write(&outside, "callee\n+8613800000032\n").unwrap();
    std::os::unix::fs::symlink(&outside, f.dir.join("linked.csv")).unwrap();
    f.settle().await;

    let report = f.error_report("linked-settings.csv");
    assert!(
        report.starts_with("linked-settings.toml is a symbolic link"),
        "{report}"
    );
    assert!(!report.contains("AKID"), "{report}");
    let report = f.error_report("linked.csv");
    assert!(
        report.starts_with("linked.csv is a symbolic link: links are never followed"),
        "{report}"
    );
    let rejected = f.dir.join("rejected");
    // The links themselves were moved, their targets left alone.
    for l in ["linked.csv", "linked-settings.toml"] {
        let m = std::fs::symlink_metadata(rejected.join(l)).unwrap();
        assert!(m.file_type().is_symlink(), "{l}");
    }
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        format!("{SECRET}\n")
    );
    assert!(outside.is_file());
    assert!(f.campaign_names().await.is_empty());
    assert_eq!(f.p.mock.stats().requests, 0);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_place_is_imported_whole_once_it_stops_changing() {
    use std::io::Write;
    let mut f = Folder::new().await;
    let path = f.dir.join("in-place.csv");
    let rows: Vec<String> = (0..20).map(|i| format!("+86138000001{i:02}")).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    write!(file, "callee\n{}\n", rows[..10].join("\n")).unwrap();
    file.flush().unwrap();
    // Half the file is there: the copy is still under way.
    f.inbox.pass(&f.p.svc, None).await;
    assert!(f.campaign_names().await.is_empty(), "half a file was taken");
    writeln!(file, "{}", rows[10..].join("\n")).unwrap();
    file.sync_all().unwrap();
    drop(file);
    f.inbox.pass(&f.p.svc, None).await;
    assert!(
        f.campaign_names().await.is_empty(),
        "a growing file was taken"
    );
    f.inbox.pass(&f.p.svc, None).await;

    assert_eq!(f.campaign_names().await, vec!["in-place".to_string()]);
    let c =
        f.p.svc
            .store
            .find_campaign("in-place")
            .await
            .unwrap()
            .unwrap();
    let total: u64 = f.p.svc.store.counts(c.id).await.unwrap().values().sum();
    assert_eq!(total, 20, "every row of the file");
    assert!(f.dir.join("done").join("in-place.csv").is_file());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_file_names_are_held_to_the_api_name_rules() {
    let mut f = Folder::new().await;
    let escape = "esc\u{1b}[31mred.csv";
    let long = format!("{}.csv", "n".repeat(250));
    for name in [escape, long.as_str()] {
        std::fs::write(f.dir.join(name), CSV).unwrap();
    }
    f.settle().await;
    for name in [escape, long.as_str()] {
        let report = f.error_report(name);
        assert!(
            report.starts_with("the file's name makes the campaign name: name = "),
            "{report}"
        );
        assert!(report.contains("no '/' or control characters"), "{report}");
    }
    assert!(f.campaign_names().await.is_empty());
    f.stop().await;
}
