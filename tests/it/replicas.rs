//! Several `serve` replicas on one PostgreSQL store: what one replica (or any process on the
//! store) creates, adds or steers is followed by every other replica, through the store's
//! notifications (`LISTEN/NOTIFY`) with polling as the fallback. The stand-in and the store
//! are the judges: a replica proves it followed by the calls it sends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccc_dialer::intake::IntakeOptions;
use ccc_dialer::store::{CampaignState, NewCampaign, Notice, Store};

use crate::pg::PgSchema;
use crate::served::{count, csv_of, normalised, serve_command, state, Served};
use crate::support::*;

/// How long a notification or a change may take to show here before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

fn options() -> IntakeOptions {
    IntakeOptions {
        default_country: "CN".into(),
        callee_format: ccc_dialer::config::CalleeFormat::DoubleZero,
    }
}

/// A campaign created and imported by another process on the store (as a replica's `POST
/// /v1/campaigns` does), its contacts the file `csv` written under `dir`.
async fn create_elsewhere(store: &Store, dir: &Path, name: &str, csv: &str) -> i64 {
    let source = dir.join(format!("{name}.csv"));
    std::fs::write(&source, csv).unwrap();
    let c = store
        .create_campaign_with(
            NewCampaign {
                name: name.into(),
                fingerprint: format!("fp-{name}"),
                source: source.display().to_string(),
                settings: None,
                priority: 0,
                inbox: None,
                paused: None,
            },
            ccc_dialer::dispatch::now_ms(),
        )
        .await
        .unwrap();
    add_elsewhere(store, c.id, &source, 0).await;
    c.id
}

/// Contacts stored into campaign `id` by another process, its intake then marked done.
async fn add_elsewhere(store: &Store, id: i64, source: &Path, first_line: u64) {
    ccc_dialer::import::import_file_after(
        store,
        id,
        source,
        &options(),
        None,
        first_line,
        ccc_dialer::dispatch::now_ms(),
    )
    .await
    .unwrap();
    store.mark_intake_done(id).await.unwrap();
}

/// The next notice on `rx` that is not a resync (bounded).
async fn next_notice(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notice>) -> Notice {
    loop {
        let n = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("a notice within the patience")
            .expect("the listener is alive");
        if n != Notice::Resync {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_handle_hears_campaigns_and_contacts_another_handle_writes() {
    let schema = PgSchema::create().await;
    let ours = Store::connect_postgres(&schema.url).await.unwrap();
    let theirs = Store::connect_postgres(&schema.url).await.unwrap();
    let mut rx = ours.notices().expect("a PostgreSQL store has notices");
    // Listening once the first resync says so.
    let first = tokio::time::timeout(PATIENCE, rx.recv()).await.unwrap();
    assert_eq!(first, Some(Notice::Resync));
    let dir = tempfile::tempdir().unwrap();
    let id = create_elsewhere(&theirs, dir.path(), "elsewhere", &csv_of(51, 3)).await;
    // Created, then its contacts, then its intake done: in commit order.
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    assert_eq!(next_notice(&mut rx).await, Notice::Contacts(id));
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    theirs
        .set_campaign_state(id, CampaignState::Paused, Some("by hand".into()), 1)
        .await
        .unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Campaign(id));
    theirs.announce(Notice::Dnc).await.unwrap();
    assert_eq!(next_notice(&mut rx).await, Notice::Dnc);
    // A SQLite store has one process: nothing to hear.
    let file = Store::open(&dir.path().join("s.db")).unwrap();
    assert!(file.notices().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_dials_a_campaign_another_process_created_and_the_contacts_it_added_later() {
    let schema = PgSchema::create().await;
    let mock = mock_with(20, 0, "").await;
    let mut s = crate::served::scratch(&mock, "");
    s.state = PathBuf::from(&schema.url);
    let mut cmd = serve_command(&s);
    cmd.current_dir(s.dir.path());
    let srv = Served::start_with(&s, cmd).await;
    // The other process: here the test's own store handle, writing as a replica's API does.
    let other = Store::connect_postgres(&schema.url).await.unwrap();
    let id = create_elsewhere(&other, s.dir.path(), "from-elsewhere", &csv_of(52, 15)).await;
    let c = srv
        .wait_campaign(id, "the campaign created elsewhere to be dialled", |c| {
            state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 15, "{c}");
    let stats = mock.stats();
    for i in 0..15 {
        assert_eq!(
            stats.calls_per_callee.get(&normalised(52, i)),
            Some(&1),
            "contact {i} called once by the serve that did not create the campaign"
        );
    }

    // Contacts added to it elsewhere: the campaign reopened and the rows stored.
    let more = dir_file(s.dir.path(), "more.csv", &csv_of(53, 5));
    assert!(other
        .reopen(id, ccc_dialer::dispatch::now_ms())
        .await
        .unwrap());
    add_elsewhere(&other, id, &more, 15).await;
    let c = srv
        .wait_campaign(id, "the contacts added elsewhere to be dialled", |c| {
            count(c, "placed") == 20 && state(c) == "completed"
        })
        .await;
    assert_eq!(count(&c, "placed"), 20, "{c}");
    let stats = mock.stats();
    assert!(stats.duplicate_callees.is_empty(), "{stats:?}");
    assert_eq!(stats.calls_per_callee.len(), 20);

    // Paused elsewhere while contacts wait: this replica stops dialling it; resumed
    // elsewhere: it dials the rest.
    let later = create_elsewhere(&other, s.dir.path(), "paused-elsewhere", &csv_of(54, 4)).await;
    other
        .set_campaign_state(
            later,
            CampaignState::Paused,
            Some("by another replica".into()),
            2,
        )
        .await
        .unwrap();
    other
        .set_campaign_state(later, CampaignState::Active, None, 3)
        .await
        .unwrap();
    srv.wait_campaign(later, "the campaign resumed elsewhere to be dialled", |c| {
        state(c) == "completed" && count(c, "placed") == 4
    })
    .await;
}

fn dir_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
