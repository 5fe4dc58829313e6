//! The webhook: when a campaign completes, halts, or is paused by the engine (an outage, an
//! engine error), a JSON body is POSTed to `[notify] url`, signed with a shared secret.
//!
//! Invariants:
//! - Never in the dialling path: [`Notifier::notify`] only puts the event in a bounded queue
//!   (`try_send`); one task of its own delivers them, one at a time. A full queue drops the
//!   event with a warning; a receiver that is down or hangs costs that task's time, nothing
//!   else.
//! - Each event is tried `attempts` times, `timeout` each, with a doubling backoff (1 s, 2 s,
//!   4 s, … at most 60 s); after the last it is dropped with a warning.
//! - The secret (`CCC_DIALER_NOTIFY_SECRET` or `_FILE`) is never logged, nor is the URL's path or
//!   query (it may hold a token): logs name its scheme and host only.
//!
//! How a receiver verifies a delivery: take the `X-Ccc-Dialer-Timestamp` header (unix seconds)
//! and the raw body bytes, compute `HMAC-SHA256(secret, timestamp + "." + body)` as lowercase
//! hex, and compare it in constant time with the `X-Ccc-Dialer-Signature` header's value after
//! `sha256=`. Refuse timestamps more than a few minutes off (a replay), and use the body's
//! `delivery` id to ignore a retried delivery already handled.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::credentials::{CredentialsError, Env};
use crate::secret::Secret;

pub const SECRET_VAR: &str = "CCC_DIALER_NOTIFY_SECRET";
pub const SIGNATURE_HEADER: &str = "x-ccc-dialer-signature";
pub const TIMESTAMP_HEADER: &str = "x-ccc-dialer-timestamp";
/// The shortest secret accepted.
pub const MIN_SECRET: usize = 16;
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// `[notify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    url: Option<String>,
    timeout: Option<String>,
    attempts: Option<i64>,
    queue: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    pub url: String,
    /// Per delivery attempt.
    pub timeout: Duration,
    pub attempts: u32,
    /// Events waiting for delivery at most; more are dropped with a warning.
    pub queue: usize,
}

/// A bad `[notify]` key: shown with its value, or withheld (the URL may hold a token).
#[derive(Debug)]
pub enum Invalid {
    Shown(String, String, String),
    Withheld(String, String),
}

pub fn validate(raw: &RawNotify) -> Result<Option<NotifySettings>, Invalid> {
    let Some(url) = &raw.url else {
        if raw.timeout.is_some() || raw.attempts.is_some() || raw.queue.is_some() {
            return Err(Invalid::Shown(
                "notify.url".into(),
                "(missing)".into(),
                "the webhook's http(s) URL when any other [notify] key is set".into(),
            ));
        }
        return Ok(None);
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if !host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::Withheld(
            "notify.url".into(),
            "an http(s)://host[:port]/path URL without user-info".into(),
        ));
    }
    let timeout_text = raw.timeout.as_deref().unwrap_or("10s");
    let timeout = crate::duration::parse(timeout_text)
        .ok()
        .filter(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(300))
        .ok_or_else(|| {
            Invalid::Shown(
                "notify.timeout".into(),
                format!("{timeout_text:?}"),
                "a duration from 100ms to 5m".into(),
            )
        })?;
    let whole = |key: &str, v: Option<i64>, default: i64, max: i64| match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Invalid::Shown(
            key.into(),
            n.to_string(),
            format!("a whole number from 1 to {max}"),
        )),
    };
    Ok(Some(NotifySettings {
        url: url.clone(),
        timeout,
        attempts: whole("notify.attempts", raw.attempts, 5, 20)? as u32,
        queue: whole("notify.queue", raw.queue, 100, 10_000)? as usize,
    }))
}

/// `scheme://host[:port]` of `url`: what logs may say about it.
pub fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => "(webhook)".into(),
    }
}

/// The shared secret from `CCC_DIALER_NOTIFY_SECRET` or `_FILE` (required with `notify.url`).
pub fn secret(env: &dyn Env) -> anyhow::Result<Secret> {
    let s = crate::credentials::read_secret(env, SECRET_VAR)?.ok_or(CredentialsError::Missing {
        name: SECRET_VAR.into(),
    })?;
    if s.expose().trim().chars().count() < MIN_SECRET {
        anyhow::bail!(
            "{SECRET_VAR}: expected at least {MIN_SECRET} characters (notify.url is set: the webhook's deliveries are signed with it)"
        );
    }
    Ok(s)
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `timestamp` + "." + `body`).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    #[allow(clippy::expect_used)] // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What happened to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Completed,
    /// An error code stopped it (an account-level code, a systematic error, an outage that
    /// lasted `run.outage_limit`); `serve` pauses it with the reason.
    Halted,
    /// Paused by the engine for another reason (an endpoint outage, an engine error).
    Paused,
}

/// The JSON body.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// A fresh id per event (the same in every retry of it): receivers deduplicate by it.
    pub delivery: String,
    pub event: Kind,
    pub campaign_id: i64,
    pub campaign: String,
    pub reason: Option<String>,
    /// Contacts by status, every status present.
    pub counts: BTreeMap<String, u64>,
    /// RFC 3339, UTC.
    pub at: String,
}

impl Event {
    pub fn new(
        event: Kind,
        campaign_id: i64,
        campaign: &str,
        reason: Option<String>,
        counts: &BTreeMap<crate::contact::Status, u64>,
    ) -> Event {
        let mut all: BTreeMap<String, u64> = crate::contact::Status::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for (s, n) in counts {
            all.insert(s.as_str().to_string(), *n);
        }
        Event {
            delivery: uuid::Uuid::new_v4().to_string(),
            event,
            campaign_id,
            campaign: campaign.to_string(),
            reason,
            counts: all,
            at: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        }
    }
}

/// The sending side of the queue; a no-op when no webhook is configured.
#[derive(Clone, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
}

/// The delivery task, to wait for at the end of a `run`.
pub struct Delivery {
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    /// No webhook: every event is ignored.
    pub fn disabled() -> Notifier {
        Notifier { tx: None }
    }

    /// Start the delivery task.
    pub fn start(settings: NotifySettings, secret: Secret) -> (Notifier, Delivery) {
        let (tx, rx) = mpsc::channel(settings.queue);
        let task = tokio::spawn(deliver_all(settings, secret, rx));
        (Notifier { tx: Some(tx) }, Delivery { task })
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue `event` for delivery; never waits.
    pub fn notify(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        if let Err(e) = tx.try_send(event) {
            let (why, ev) = match e {
                mpsc::error::TrySendError::Full(ev) => ("the queue is full", ev),
                mpsc::error::TrySendError::Closed(ev) => ("delivery has stopped", ev),
            };
            tracing::warn!(campaign = %ev.campaign, event = ?ev.event, "webhook: notification dropped: {why}");
        }
    }
}

impl Delivery {
    /// Wait (at most `bound`) for the queued events to be delivered or given up; every
    /// [`Notifier`] clone must be dropped first, or this waits the whole bound.
    pub async fn finish(self, bound: Duration) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(bound, self.task).await.is_err() {
            abort.abort();
            tracing::warn!(
                waited_s = bound.as_secs(),
                "webhook: stopped waiting for deliveries still pending"
            );
        }
    }
}

async fn deliver_all(settings: NotifySettings, secret: Secret, mut rx: mpsc::Receiver<Event>) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook: cannot build its HTTP client; notifications are off");
            return;
        }
    };
    let to = origin(&settings.url);
    while let Some(event) = rx.recv().await {
        deliver(&client, &settings, &secret, &to, &event).await;
    }
}

async fn deliver(
    client: &reqwest::Client,
    settings: &NotifySettings,
    secret: &Secret,
    to: &str,
    event: &Event,
) {
    let body = match serde_json::to_vec(event) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "webhook: cannot encode the event");
            return;
        }
    };
    let mut backoff = BACKOFF_INITIAL;
    for attempt in 1..=settings.attempts {
        let timestamp = jiff::Timestamp::now().as_second().to_string();
        let sig = signature(secret.expose().as_bytes(), &timestamp, &body);
        let sent = client
            .post(&settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, sig)
            .body(body.clone())
            .send()
            .await;
        let why = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(campaign = %event.campaign, event = ?event.event, to, "webhook: delivered");
                return;
            }
            Ok(r) => format!("answered {}", r.status().as_u16()),
            // Without the URL: reqwest's error text names it, and it may hold a token.
            Err(e) if e.is_timeout() => "no answer within notify.timeout".to_string(),
            Err(e) if e.is_connect() => "cannot connect".to_string(),
            Err(_) => "the request failed".to_string(),
        };
        if attempt == settings.attempts {
            tracing::warn!(campaign = %event.campaign, event = ?event.event, to, attempts = attempt, "webhook: notification dropped: {why}");
            return;
        }
        tracing::warn!(campaign = %event.campaign, event = ?event.event, to, attempt, retry_in_s = backoff.as_secs(), "webhook: {why}; will retry");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RawNotify {
        RawNotify {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 test case 2's key and data, split at the '.'-free point: key "Jefe",
        // data "what do ya want for nothing?" = "what do ya want for nothing?"; here the
        // timestamp and body are joined by '.', so check against a direct HMAC of the join.
        let direct = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"1700000000.{\"a\":1}");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(
            signature(b"Jefe", "1700000000", b"{\"a\":1}"),
            format!("sha256={direct}")
        );
        assert_ne!(
            signature(b"Jefe", "1700000001", b"{\"a\":1}"),
            format!("sha256={direct}")
        );
    }

    #[test]
    fn a_url_is_checked_and_never_echoed() {
        let ok = validate(&raw("https://hooks.example.com/ccc?token=abc"))
            .unwrap()
            .unwrap();
        assert_eq!(ok.attempts, 5);
        assert_eq!(ok.timeout, Duration::from_secs(10));
        assert_eq!(origin(&ok.url), "https://hooks.example.com");
        for bad in [
            "ftp://x",
            "https://user:pw@host/x",
            "https:///x",
            "https://a b",
        ] {
            match validate(&raw(bad)) {
                Err(Invalid::Withheld(key, _)) => assert_eq!(key, "notify.url"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let no_url = RawNotify {
            attempts: Some(3),
            ..Default::default()
        };
        assert!(matches!(validate(&no_url), Err(Invalid::Shown(..))));
        assert!(validate(&RawNotify::default()).unwrap().is_none());
        let bad_attempts = RawNotify {
            attempts: Some(0),
            ..raw("http://127.0.0.1:9/")
        };
        assert!(
            matches!(validate(&bad_attempts), Err(Invalid::Shown(k, ..)) if k == "notify.attempts")
        );
    }
}
