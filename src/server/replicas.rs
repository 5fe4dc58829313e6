//! Several `serve` replicas on one PostgreSQL store: each follows what the others (and any
//! `run` or `dnc` command on the same store) change, so a campaign created, steered or added to
//! through one replica is dialled, paused, resumed or cancelled by every replica.
//!
//! - Notifications first: the store's notices (`store::pg::notices`, `LISTEN/NOTIFY`, sent
//!   at commit by triggers) name the campaign; this replica reads its state and makes its own
//!   runner agree ([`super::Campaigns::follow`]): started, woken for added contacts, or
//!   stopped. A change to the do-not-call lists reloads them here too (files and own list).
//! - Polling as the fallback: every [`POLL_EVERY`] the campaign list is read and every runner
//!   made to agree with it, so a lost notification (the listening connection cut and being
//!   reopened) delays a change by at most that long. When the listening connection (re)starts,
//!   every running campaign is also woken once (contacts may have been added unseen).
//! - An intake left unfinished by a replica that died (its claim on the campaign gone with
//!   its connection) is finished by the next replica to poll ([`Service::finish_intakes`]).
//! - A SQLite store has one process: nothing to follow.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Service;
use crate::dispatch::Stop;
use crate::store::Notice;

/// How often the campaign list is read for changes no notification told of.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// Follow the other replicas until `stop` leaves [`Stop::Run`] (returns at once on SQLite).
pub async fn follow(svc: Arc<Service>, mut stop: watch::Receiver<Stop>) {
    let Some(mut notices) = svc.store.notices() else {
        return;
    };
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() != Stop::Run {
            return;
        }
        tokio::select! {
            n = notices.recv() => match n {
                Some(n) => heard(&svc, n).await,
                None => return,
            },
            _ = poll.tick() => {
                if let Err(e) = svc.campaigns.follow_all(false).await {
                    tracing::warn!(error = %e, "cannot read the campaigns other replicas changed");
                }
                // An intake a dead replica was reading is finished here.
                if let Err(e) = svc.finish_intakes().await {
                    tracing::warn!(error = %e, "cannot finish an intake another replica left");
                }
            }
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

async fn heard(svc: &Arc<Service>, n: Notice) {
    let followed = match n {
        Notice::Campaign(id) => {
            // Its counts may have changed (a requeue reopened it, a purge emptied it).
            svc.forget_counts(id);
            svc.campaigns.follow(id).await
        }
        Notice::Contacts(id) => svc.campaigns.follow(id).await,
        Notice::Dnc => {
            reload_dnc(svc).await;
            Ok(())
        }
        Notice::Resync => {
            reload_dnc(svc).await;
            svc.campaigns.follow_all(true).await
        }
    };
    if let Err(e) = followed {
        tracing::warn!(error = %e, notice = ?n, "cannot follow a change another replica made");
    }
}

/// The do-not-call lists as they are now: the files read again (as `POST /v1/dnc/reload`
/// does) and the account's own list from the store.
async fn reload_dnc(svc: &Arc<Service>) {
    let rules = svc.campaigns.base().rules.clone();
    let files = tokio::task::spawn_blocking(move || rules.dnc.reload()).await;
    match files {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "do-not-call files: reload asked by another replica failed; the lists in use stay")
        }
        Err(e) => tracing::warn!(error = %e, "do-not-call files: reload failed"),
    }
    match svc.store.own_dnc_numbers().await {
        Ok(own) => svc.campaigns.base().rules.dnc.set_own(own),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the account's own do-not-call list")
        }
    }
}
