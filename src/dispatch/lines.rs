//! The engine's side of pacing by the agent's lines ([`crate::lines`]): take a line before a
//! contact takes a permit or a rate token, hold the campaign's due contacts (gate
//! `agent_lines_busy`) while every line is believed busy, and settle the line with the reply.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::{lock, now_ms, Engine, EngineError, RequestDefaults, Shared, Stop};
use crate::ccc::{CallError, Placed};
use crate::lines::{Busy, LineTicket, Saved};
use crate::policy::{self, Class};
use crate::store::{DueContact, AGENT_LINES_BUSY};

/// The longest the dispatcher rests while every line is busy before it looks again (a stop, a
/// halt or a call-end event is noticed sooner).
const REST: Duration = Duration::from_secs(1);

/// A line for the contact at the front of `buffer`, or `None` when every line of its agent is
/// believed busy: then the buffered contacts of that agent wait in the store (gate
/// `agent_lines_busy`) until one is likely free, the buffer lets go of them, and, when no other
/// agent's contact is buffered, the dispatcher rests a moment. Each pass holds at most one
/// buffer of contacts, so a campaign of a million rows costs one small write a second.
/// `freed` is the campaign's receiver of [`crate::lines::Lines::freed`]: marked seen before the
/// look, so a line freed any moment after it ends the rest and releases the held contacts.
pub(super) async fn take(
    engine: &Engine,
    defaults: &RequestDefaults,
    buffer: &mut std::collections::VecDeque<DueContact>,
    shared: &Shared,
    stop: &mut watch::Receiver<Stop>,
    freed: &mut watch::Receiver<u64>,
    turn: &mut Option<(tokio::sync::OwnedMutexGuard<()>, u32)>,
) -> Result<Option<LineTicket>, EngineError> {
    let Some(contact) = buffer.front() else {
        return Ok(None);
    };
    let own = contact.overrides.ai_agent_id;
    let agent = own.unwrap_or(defaults.ai_agent_id);
    let campaign_id = contact.campaign_id;
    freed.borrow_and_update();
    let busy = match engine.lines.try_start(agent) {
        Ok(ticket) => return Ok(Some(ticket)),
        Err(busy) => busy,
    };
    let until = until_ms(&busy);
    tracing::debug!(
        campaign = contact.campaign_id,
        agent,
        gate = AGENT_LINES_BUSY,
        "{busy}"
    );
    let agent_of = |c: &DueContact| c.overrides.ai_agent_id.unwrap_or(defaults.ai_agent_id);
    let (this, others): (Vec<DueContact>, Vec<DueContact>) =
        buffer.drain(..).partition(|c| agent_of(c) == agent);
    buffer.extend(others);
    let ids: Vec<i64> = this.iter().map(|c| c.id).collect();
    engine
        .store
        .hold_for_lines(ids.clone(), until, now_ms())
        .await?;
    {
        let mut held = lock(&shared.held);
        for id in &ids {
            held.remove(id);
        }
    }
    if buffer.is_empty() {
        // Resting: the other campaigns keep their turns at the shared limiter meanwhile.
        *turn = None;
        tokio::select! {
            _ = tokio::time::sleep(busy.wait.min(REST)) => {}
            Ok(()) = freed.changed() => release(engine, campaign_id).await?,
            Ok(()) = stop.changed() => {}
        }
    }
    Ok(None)
}

/// A line was freed by a call-end event: the campaign's contacts held for a line are due now.
pub(super) async fn release(engine: &Engine, campaign_id: i64) -> Result<(), EngineError> {
    engine
        .store
        .release_line_holds(campaign_id, now_ms())
        .await?;
    Ok(())
}

fn until_ms(busy: &Busy) -> i64 {
    now_ms().saturating_add(i64::try_from(busy.wait.as_millis()).unwrap_or(i64::MAX))
}

/// Settle the request's line with its reply. Returns when the contact is due again if the
/// service refused it because every line was busy (unix ms, just before the other held
/// contacts: the front of the queue).
pub(super) async fn settle(
    engine: &Engine,
    line: Option<LineTicket>,
    result: &Result<Placed, CallError>,
) -> Option<i64> {
    let line = line?;
    let (saved, due) = match result {
        Ok(placed) => (line.placed(Some(&placed.session_id)), None),
        Err(CallError::InDoubt { .. }) => (line.placed(None), None),
        Err(err @ CallError::Api { .. })
            if policy::classify(err, &engine.classes) == Class::Capacity =>
        {
            engine
                .counters
                .capacity_refusals
                .fetch_add(1, Ordering::Relaxed);
            let (busy, saved) = line.refused()?;
            (saved, Some(until_ms(&busy) - 1))
        }
        Err(_) => {
            drop(line);
            (None, None)
        }
    };
    if let Some(s) = saved {
        save(engine, s).await;
    }
    due
}

async fn save(engine: &Engine, s: Saved) {
    if let Err(e) = engine.store.save_agent_lines(s, now_ms()).await {
        tracing::warn!(error = %e, agent = s.agent, "cannot save the agent's line estimate");
    }
}
