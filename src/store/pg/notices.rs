//! Replicas of one PostgreSQL store tell each other what changed, through `LISTEN/NOTIFY` on
//! the schema's channel (`ccc_dialer_<schema oid>`, named by the `ccc_channel()` function of
//! schema v17).
//!
//! - Triggers announce a campaign written (`campaign <id>`: created, deleted, its state,
//!   intake, settings or priority changed) and contacts added to one (`contacts <id>`), whatever
//!   process wrote them; a process announces a change to the do-not-call lists itself
//!   ([`announce`], `dnc`). A notification carries only the kind and an id: the receiver reads
//!   the rest from the store.
//! - A notification is delivered at its transaction's commit, so what a receiver reads after
//!   it includes the change.
//! - One connection of its own listens ([`listen`]), pinged every [`PING_EVERY`]; when it ends
//!   or stops answering it is opened again (every [`RETRY_EVERY`] until it succeeds), and each
//!   (re)start says [`Notice::Resync`]: whatever was announced while nobody listened must be
//!   looked for in the store. The receiver also polls (see `server::replicas`): notifications
//!   make a change take effect at once, polling within a second when they are lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{describe, Pg};
use crate::store::StoreError;

/// How often the listening connection is asked whether it is alive, and how long an answer may
/// take before it is replaced.
pub const PING_EVERY: Duration = Duration::from_secs(2);
const PING_PATIENCE: Duration = Duration::from_secs(3);
/// How long after a failed connection the next is tried.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What another process (or this one) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A campaign was created, deleted, or its state, intake, settings or priority changed.
    Campaign(i64),
    /// Contacts were added to a campaign.
    Contacts(i64),
    /// The do-not-call lists changed (files reloaded, a number taken off the own list).
    Dnc,
    /// The listening connection (re)started: notifications may have been missed.
    Resync,
}

impl Notice {
    /// A notification's payload, read; `None` for one this build does not know.
    pub fn parse(payload: &str) -> Option<Notice> {
        let (kind, id) = match payload.split_once(' ') {
            Some((k, id)) => (k, id.parse::<i64>().ok()),
            None => (payload, None),
        };
        match (kind, id) {
            ("campaign", Some(id)) => Some(Notice::Campaign(id)),
            ("contacts", Some(id)) => Some(Notice::Contacts(id)),
            ("dnc", None) => Some(Notice::Dnc),
            _ => None,
        }
    }

    fn payload(self) -> String {
        match self {
            Notice::Campaign(id) => format!("campaign {id}"),
            Notice::Contacts(id) => format!("contacts {id}"),
            Notice::Dnc => "dnc".into(),
            Notice::Resync => "resync".into(),
        }
    }
}

/// Tell every listening replica (this one included) of `notice`, at once.
pub async fn announce(pg: &Pg, notice: Notice) -> Result<(), StoreError> {
    let c = pg.client().await?;
    c.execute("SELECT pg_notify(ccc_channel(), $1)", &[&notice.payload()])
        .await?;
    Ok(())
}

/// Listen to the store's channel for as long as the receiver is kept (see the module's doc).
pub fn listen(pg: Arc<Pg>) -> mpsc::UnboundedReceiver<Notice> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut failing = false;
        while !tx.is_closed() {
            match listen_once(&pg, &tx).await {
                Ok(()) => return,
                Err(why) => {
                    if !failing {
                        tracing::warn!(reason = %why, "PostgreSQL notifications: listening connection lost; polling until it is back");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    });
    rx
}

/// One listening connection, until it fails (`Err`) or nobody listens any more (`Ok`).
async fn listen_once(pg: &Pg, tx: &mpsc::UnboundedSender<Notice>) -> Result<(), String> {
    let (client, mut connection) = pg
        .config
        .connect(pg.tls.clone())
        .await
        .map_err(|e| describe(&e))?;
    let (msg_tx, mut msgs) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if msg_tx.send(n.payload().to_string()).is_err() {
                        return "stopped".to_string();
                    }
                }
                Ok(_) => {}
                Err(e) => return describe(&e),
            }
        }
        "the database closed the connection".to_string()
    });
    let mut driver = driver;
    let channel: String = match client.query_one("SELECT ccc_channel()", &[]).await {
        Ok(r) => r.get(0),
        Err(e) => {
            driver.abort();
            return Err(describe(&e));
        }
    };
    // The channel is `ccc_dialer_` and digits: safe inside quotes.
    if let Err(e) = client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
        driver.abort();
        return Err(describe(&e));
    }
    tracing::debug!(%channel, "PostgreSQL notifications: listening");
    if tx.send(Notice::Resync).is_err() {
        driver.abort();
        return Ok(());
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            m = msgs.recv() => match m {
                Some(payload) => {
                    if let Some(n) = Notice::parse(&payload) {
                        if tx.send(n).is_err() {
                            driver.abort();
                            return Ok(());
                        }
                    }
                }
                None => {
                    return Err((&mut driver).await.unwrap_or_else(|e| e.to_string()));
                }
            },
            _ = ping.tick() => {
                if tx.is_closed() {
                    driver.abort();
                    return Ok(());
                }
                let why = match tokio::time::timeout(PING_PATIENCE, client.simple_query("")).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => describe(&e),
                    Err(_) => "the listening connection stopped answering".to_string(),
                };
                driver.abort();
                return Err(why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_as_what_was_announced() {
        for n in [Notice::Campaign(7), Notice::Contacts(12), Notice::Dnc] {
            assert_eq!(Notice::parse(&n.payload()), Some(n));
        }
        assert_eq!(Notice::parse("campaign x"), None);
        assert_eq!(Notice::parse("resync"), None, "never sent by anyone");
        assert_eq!(Notice::parse("other 3"), None);
    }
}
