//! The shared send window (see `store::window`): a slot reserved inside the caller's
//! transaction, and a departure told afterwards. Both are one statement, a call of a PL/pgSQL
//! function (schema 18) that locks the action's row in `send_windows`: reservations of one
//! action take turns for the time between the reservation and their transaction's commit, so
//! the reservation is the last statement before the commit.

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;

use super::Pg;
use crate::store::window::{spacing, Slot, HOLD, HORIZON};
use crate::store::StoreError;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Reserve a slot for one request of `action` in the caller's transaction, if the store shares
/// `action`'s window (`None` otherwise). Refused with [`StoreError::WindowFull`] when the
/// earliest slot is further ahead than [`HORIZON`]: the caller's transaction must then be
/// rolled back (nothing is written down).
pub async fn reserve<C: GenericClient>(
    c: &C,
    pg: &Pg,
    action: &str,
) -> Result<Option<Slot>, StoreError> {
    let Some(cap) = pg.window_cap(action) else {
        return Ok(None);
    };
    let stmt = c
        .prepare_cached("SELECT granted, slot, now_us FROM send_window_reserve($1, $2, $3, $4, $5)")
        .await?;
    let asked = Instant::now();
    let row = c
        .query_one(
            &stmt,
            &[
                &action,
                &(cap as i32),
                &micros(spacing()),
                &micros(HOLD),
                &micros(HORIZON),
            ],
        )
        .await?;
    let answered = Instant::now();
    let granted: bool = row.try_get(0)?;
    let slot: i64 = row.try_get(1)?;
    let now: i64 = row.try_get(2)?;
    let ahead = Duration::from_micros(u64::try_from(slot - now).unwrap_or(0));
    if !granted {
        // Room within the horizon from then on; counted from the answer, so never early.
        let wait = ahead.saturating_sub(HORIZON);
        return Err(StoreError::WindowFull(answered + wait));
    }
    Ok(Some(Slot {
        action: action.to_string(),
        recorded_us: slot + micros(HOLD),
        asked,
        answered,
        ahead,
    }))
}

/// The request of `slot` left `ago` before now (its left-by becomes the database's clock less
/// `ago`), or never reached a connection (`None`: its slot is given back).
pub async fn left(pg: &Pg, slot: &Slot, ago: Option<Duration>) -> Result<(), StoreError> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached("SELECT send_window_left($1, $2, $3, $4)")
        .await?;
    c.execute(
        &stmt,
        &[
            &slot.action,
            &slot.recorded_us,
            &ago.map(micros),
            &micros(spacing()),
        ],
    )
    .await?;
    Ok(())
}
