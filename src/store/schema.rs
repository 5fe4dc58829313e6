//! The schema and its migrations. `PRAGMA user_version` holds the version; a store written by a
//! newer build is refused rather than misread.

use rusqlite::Connection;
use std::path::Path;

use super::StoreError;

pub const SCHEMA_VERSION: i64 = 20;

pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Schema {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        v1(conn)?;
    }
    if version < 2 {
        v2(conn)?;
    }
    if version < 3 {
        v3(conn)?;
    }
    if version < 4 {
        v4(conn)?;
    }
    if version < 5 {
        v5(conn)?;
    }
    if version < 6 {
        v6(conn)?;
    }
    if version < 7 {
        v7(conn)?;
    }
    if version < 8 {
        v8(conn)?;
    }
    if version < 9 {
        v9(conn)?;
    }
    if version < 10 {
        v10(conn)?;
    }
    if version < 11 {
        outcome_counts_and_retry_checks(conn, 11)?;
    }
    if version < 12 {
        v12(conn)?;
    }
    if version < 13 {
        v13(conn)?;
    }
    if version < 14 {
        v14(conn)?;
    }
    if version < 15 {
        v15(conn)?;
    }
    if version < 16 {
        v16(conn)?;
    }
    if version < 17 {
        v17(conn)?;
    }
    if version < 18 {
        // PostgreSQL's v18 is the account's window shared by replicas; a SQLite store is one
        // process, whose limiter keeps the window.
        conn.execute_batch("PRAGMA user_version = 18;")?;
    }
    if version < 19 {
        v19(conn)?;
    }
    if version < 20 {
        // PostgreSQL's v20 tells the shared window's reported departures from the unreported
        // ones; a SQLite store shares no window.
        conn.execute_batch("PRAGMA user_version = 20;")?;
    }
    Ok(())
}

/// Campaigns, contacts, attempts: what `run` needs.
fn v1(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS campaigns (
           id INTEGER PRIMARY KEY,
           name TEXT NOT NULL UNIQUE,
           fingerprint TEXT NOT NULL,
           source TEXT NOT NULL,
           created_at INTEGER NOT NULL,
           intake_done INTEGER NOT NULL DEFAULT 0
         );
         CREATE TABLE IF NOT EXISTS contacts (
           id INTEGER PRIMARY KEY,
           campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
           line INTEGER NOT NULL,
           callee TEXT NOT NULL,
           ext_id TEXT,
           overrides TEXT,
           status TEXT NOT NULL,
           attempts INTEGER NOT NULL DEFAULT 0,
           reschedules INTEGER NOT NULL DEFAULT 0,
           next_at INTEGER NOT NULL DEFAULT 0,
           session_id TEXT,
           request_id TEXT,
           error_code TEXT,
           error_message TEXT,
           updated_at INTEGER NOT NULL,
           UNIQUE (campaign_id, line)
         );
         CREATE UNIQUE INDEX IF NOT EXISTS contacts_one_dial_per_callee
           ON contacts (campaign_id, callee) WHERE status != 'skipped';
         CREATE INDEX IF NOT EXISTS contacts_due
           ON contacts (campaign_id, status, next_at, id);
         CREATE TABLE IF NOT EXISTS attempts (
           id INTEGER PRIMARY KEY,
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           n INTEGER NOT NULL,
           started_at INTEGER NOT NULL,
           sent_at INTEGER,
           caller TEXT,
           finished_at INTEGER,
           outcome TEXT,
           code TEXT,
           message TEXT,
           session_id TEXT,
           request_id TEXT,
           UNIQUE (contact_id, n)
         );
         CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at);
         PRAGMA user_version = 1;
         COMMIT;",
    )?;
    Ok(())
}

/// What `serve` adds: a campaign's state (active, paused, cancelled, completed) with the reason,
/// its own settings and priority, and the inbox files already imported.
fn v2(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         ALTER TABLE campaigns ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
         ALTER TABLE campaigns ADD COLUMN reason TEXT;
         ALTER TABLE campaigns ADD COLUMN settings TEXT;
         ALTER TABLE campaigns ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE campaigns ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE IF NOT EXISTS inbox_files (
           id INTEGER PRIMARY KEY,
           name TEXT NOT NULL,
           fingerprint TEXT NOT NULL,
           campaign_id INTEGER REFERENCES campaigns(id),
           outcome TEXT NOT NULL,
           detail TEXT,
           at INTEGER NOT NULL,
           UNIQUE (name, fingerprint)
         );
         CREATE TABLE IF NOT EXISTS meta (
           key TEXT PRIMARY KEY,
           value TEXT NOT NULL
         );
         PRAGMA user_version = 2;
         COMMIT;",
    )?;
    Ok(())
}

/// Calling rules: why a pending contact waits (`gate`: window_closed, min_gap, …), shown by
/// `status` and the API.
fn v3(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         ALTER TABLE contacts ADD COLUMN gate TEXT;
         PRAGMA user_version = 3;
         COMMIT;",
    )?;
    Ok(())
}

/// `dials`: every request that may have rung a number (written with its attempt, dropped when
/// the attempt ends in an error or unsent), by number and time across every campaign, for the
/// per-person gap and daily cap. Backfilled from the attempts already in the store.
fn v4(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS dials (
           attempt_id INTEGER PRIMARY KEY REFERENCES attempts(id),
           callee TEXT NOT NULL,
           at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS dials_by_callee ON dials (callee, at);
         INSERT OR IGNORE INTO dials (attempt_id, callee, at)
           SELECT a.id, k.callee, COALESCE(a.sent_at, a.started_at)
           FROM attempts a JOIN contacts k ON k.id = a.contact_id
           WHERE a.outcome IS NULL OR a.outcome IN ('placed', 'in_doubt');
         PRAGMA user_version = 4;
         COMMIT;",
    )?;
    Ok(())
}

/// `agent_lines`: each AI agent's learned line count and how long a call holds a line, so the
/// estimate survives a restart (see `crate::lines`).
fn v5(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS agent_lines (
           agent_id INTEGER PRIMARY KEY,
           learned REAL,
           hold_ms INTEGER NOT NULL,
           updated_at INTEGER NOT NULL
         );
         PRAGMA user_version = 5;
         COMMIT;",
    )?;
    Ok(())
}

/// The contacts table of the console and `GET /v1/campaigns/{id}/contacts`, filtered by status,
/// in line order: one index range per page (see `store::pages`).
fn v6(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE INDEX IF NOT EXISTS contacts_by_status_line ON contacts (campaign_id, status, line);
         PRAGMA user_version = 6;
         COMMIT;",
    )?;
    Ok(())
}

/// `waits`: how long each campaign's dispatcher waited, and why (`window_closed`, `min_gap`,
/// `outage`, `throttled`, `rate`, …), summed in milliseconds, for `report`. `purged_at`: when a
/// campaign's contacts and attempts were deleted (`purge`, `[store] retain`).
fn v7(conn: &Connection) -> Result<(), StoreError> {
    // Idempotent, like the tables' `IF NOT EXISTS`: a store whose version was set back (tests
    // fake older builds so) already has the column.
    let has_purged_at: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('campaigns') WHERE name = 'purged_at'",
        [],
        |r| r.get(0),
    )?;
    let add_purged_at = if has_purged_at {
        ""
    } else {
        "ALTER TABLE campaigns ADD COLUMN purged_at INTEGER;"
    };
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS waits (
           campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
           reason TEXT NOT NULL,
           ms INTEGER NOT NULL,
           PRIMARY KEY (campaign_id, reason)
         );
         {add_purged_at}
         PRAGMA user_version = 7;
         COMMIT;"
    ))?;
    Ok(())
}

/// Outcome tracking (see `crate::outcomes`): `outcomes` holds what the call records say about
/// each session (one row per SessionId, written once); `outcome_checks` is the schedule: one row
/// per placed session still waiting for its record (`kind = 'outcome'`) and per in-doubt attempt
/// still waiting to be reconciled from the call records (`kind = 'reconcile'`), removed when it
/// is answered. Triggers enrol every attempt as it becomes `placed` or `in_doubt`, whatever wrote
/// it; the ones already in the store are backfilled.
fn v8(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS outcomes (
           session_id TEXT PRIMARY KEY,
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           class TEXT NOT NULL,
           end_status INTEGER,
           end_status_string TEXT,
           duration_s INTEGER,
           ring_at INTEGER,
           answered_at INTEGER,
           ended_at INTEGER,
           hangup_side TEXT,
           sys_hangup_reason INTEGER,
           ai_agent_id INTEGER,
           source TEXT NOT NULL,
           recorded_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS outcomes_by_contact ON outcomes (contact_id);
         CREATE TABLE IF NOT EXISTS outcome_checks (
           attempt_id INTEGER PRIMARY KEY REFERENCES attempts(id),
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           kind TEXT NOT NULL,
           session_id TEXT,
           sent_at INTEGER NOT NULL,
           asked INTEGER NOT NULL DEFAULT 0,
           checks INTEGER NOT NULL DEFAULT 0,
           next_check_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS outcome_checks_due
           ON outcome_checks (kind, asked, next_check_at);
         CREATE INDEX IF NOT EXISTS outcome_checks_by_session ON outcome_checks (session_id);
         CREATE INDEX IF NOT EXISTS outcome_checks_by_contact ON outcome_checks (contact_id);
         CREATE INDEX IF NOT EXISTS attempts_by_session ON attempts (session_id);
         CREATE TRIGGER IF NOT EXISTS attempts_placed_enrol AFTER UPDATE OF outcome ON attempts
           WHEN NEW.outcome = 'placed' AND NEW.session_id IS NOT NULL
             AND (OLD.outcome IS NULL OR OLD.outcome != 'placed')
         BEGIN
           INSERT OR IGNORE INTO outcome_checks
             (attempt_id, contact_id, kind, session_id, sent_at, next_check_at)
           VALUES (NEW.id, NEW.contact_id, 'outcome', NEW.session_id,
                   COALESCE(NEW.sent_at, NEW.started_at), COALESCE(NEW.sent_at, NEW.started_at));
         END;
         CREATE TRIGGER IF NOT EXISTS attempts_in_doubt_enrol AFTER UPDATE OF outcome ON attempts
           WHEN NEW.outcome = 'in_doubt' AND (OLD.outcome IS NULL OR OLD.outcome != 'in_doubt')
         BEGIN
           INSERT OR IGNORE INTO outcome_checks
             (attempt_id, contact_id, kind, session_id, sent_at, next_check_at)
           VALUES (NEW.id, NEW.contact_id, 'reconcile', NULL,
                   COALESCE(NEW.sent_at, NEW.started_at), COALESCE(NEW.sent_at, NEW.started_at));
         END;
         INSERT OR IGNORE INTO outcome_checks
           (attempt_id, contact_id, kind, session_id, sent_at, next_check_at)
           SELECT id, contact_id, 'outcome', session_id, COALESCE(sent_at, started_at),
                  COALESCE(sent_at, started_at)
           FROM attempts WHERE outcome = 'placed' AND session_id IS NOT NULL;
         INSERT OR IGNORE INTO outcome_checks
           (attempt_id, contact_id, kind, session_id, sent_at, next_check_at)
           SELECT a.id, a.contact_id, 'reconcile', NULL, COALESCE(a.sent_at, a.started_at),
                  COALESCE(a.sent_at, a.started_at)
           FROM attempts a JOIN contacts k ON k.id = a.contact_id
           WHERE a.outcome = 'in_doubt' AND k.status = 'unknown';
         PRAGMA user_version = 8;
         COMMIT;",
    )?;
    Ok(())
}

/// `contact_counts`: each campaign's contacts by status, kept as they change, so the console's
/// and the API's live figures read a handful of rows instead of counting a million every 2 s.
/// A status change (every path: the engine, cancel, requeue, settle) and a delete keep it by
/// trigger; intake adds each batch's rows itself (a per-row insert trigger made intake 4 times
/// slower). Built from the contacts already stored.
fn v9(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS contact_counts (
           campaign_id INTEGER NOT NULL,
           status TEXT NOT NULL,
           n INTEGER NOT NULL,
           PRIMARY KEY (campaign_id, status)
         ) WITHOUT ROWID;
         DELETE FROM contact_counts;
         INSERT INTO contact_counts (campaign_id, status, n)
           SELECT campaign_id, status, COUNT(*) FROM contacts GROUP BY campaign_id, status;
         CREATE TRIGGER IF NOT EXISTS contact_counts_moved
           AFTER UPDATE OF status ON contacts WHEN OLD.status IS NOT NEW.status
         BEGIN
           UPDATE contact_counts SET n = n - 1
             WHERE campaign_id = OLD.campaign_id AND status = OLD.status;
           INSERT INTO contact_counts (campaign_id, status, n) VALUES (NEW.campaign_id, NEW.status, 1)
             ON CONFLICT (campaign_id, status) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS contact_counts_deleted AFTER DELETE ON contacts
         BEGIN
           UPDATE contact_counts SET n = n - 1
             WHERE campaign_id = OLD.campaign_id AND status = OLD.status;
         END;
         PRAGMA user_version = 9;
         COMMIT;",
    )?;
    Ok(())
}

/// `sends`: when the requests of the actions other than CreateAIAgentCall left (the attempts
/// keep the dialler's), so each action's limiter seeds its window after a restart (see
/// `store/sends.rs`).
fn v10(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS sends (
           id INTEGER PRIMARY KEY,
           action TEXT NOT NULL,
           started_at INTEGER NOT NULL,
           sent_at INTEGER
         );
         CREATE INDEX IF NOT EXISTS sends_by_action ON sends (action, started_at);
         PRAGMA user_version = 10;
         COMMIT;",
    )?;
    Ok(())
}

/// `outcome_checks` of kind `retry_check`: an attempt that failed with `InternalError*` (the
/// service may have created the call before failing) is enrolled like an in-doubt one, so that
/// with outcome tracking on its retry waits until the call records were consulted (see
/// `crate::outcomes::poller`): the call found, the contact is placed and not called again.
///
/// `outcome_counts`: each campaign's placed contacts by the outcome class of the session they
/// hold (their latest call), kept as it changes, so a campaign view, `status` and `run`'s wait
/// read a handful of rows instead of joining every placed contact to its outcome (314 ms per
/// view at 1M contacts). Kept by triggers: an outcome written or re-classed (a give-up replaced
/// by a late record, a push corrected by a poll) or deleted, a contact becoming or ceasing to be
/// `placed` or changing its session, a contact deleted. Built from what is stored.
fn outcome_counts_and_retry_checks(conn: &Connection, version: i64) -> Result<(), StoreError> {
    conn.execute_batch(&format!(
        "BEGIN;
         CREATE TRIGGER IF NOT EXISTS attempts_internal_error_enrol
           AFTER UPDATE OF outcome ON attempts
           WHEN NEW.outcome = 'error' AND NEW.code LIKE 'InternalError%'
             AND (OLD.outcome IS NULL OR OLD.outcome != 'error')
         BEGIN
           INSERT OR IGNORE INTO outcome_checks
             (attempt_id, contact_id, kind, session_id, sent_at, next_check_at)
           VALUES (NEW.id, NEW.contact_id, 'retry_check', NULL,
                   COALESCE(NEW.sent_at, NEW.started_at), COALESCE(NEW.sent_at, NEW.started_at));
         END;
         CREATE TABLE IF NOT EXISTS outcome_counts (
           campaign_id INTEGER NOT NULL,
           class TEXT NOT NULL,
           n INTEGER NOT NULL,
           PRIMARY KEY (campaign_id, class)
         ) WITHOUT ROWID;
         DELETE FROM outcome_counts;
         INSERT INTO outcome_counts (campaign_id, class, n)
           SELECT k.campaign_id, o.class, COUNT(*) FROM contacts k
             JOIN outcomes o ON o.session_id = k.session_id
           WHERE k.status = 'placed' GROUP BY k.campaign_id, o.class;
         CREATE TRIGGER IF NOT EXISTS outcome_counts_recorded AFTER INSERT ON outcomes
         BEGIN
           INSERT INTO outcome_counts (campaign_id, class, n)
             SELECT k.campaign_id, NEW.class, 1 FROM contacts k
             WHERE k.id = NEW.contact_id AND k.status = 'placed' AND k.session_id = NEW.session_id
             ON CONFLICT (campaign_id, class) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_counts_reclassed
           AFTER UPDATE OF class ON outcomes WHEN OLD.class IS NOT NEW.class
         BEGIN
           UPDATE outcome_counts SET n = n - 1
             WHERE class = OLD.class AND campaign_id = (SELECT k.campaign_id FROM contacts k
               WHERE k.id = OLD.contact_id AND k.status = 'placed'
                 AND k.session_id = OLD.session_id);
           INSERT INTO outcome_counts (campaign_id, class, n)
             SELECT k.campaign_id, NEW.class, 1 FROM contacts k
             WHERE k.id = NEW.contact_id AND k.status = 'placed' AND k.session_id = NEW.session_id
             ON CONFLICT (campaign_id, class) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_counts_forgotten AFTER DELETE ON outcomes
         BEGIN
           UPDATE outcome_counts SET n = n - 1
             WHERE class = OLD.class AND campaign_id = (SELECT k.campaign_id FROM contacts k
               WHERE k.id = OLD.contact_id AND k.status = 'placed'
                 AND k.session_id = OLD.session_id);
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_counts_contact_moved
           AFTER UPDATE OF status, session_id ON contacts
           WHEN (OLD.status = 'placed' OR NEW.status = 'placed')
             AND (OLD.status IS NOT NEW.status OR OLD.session_id IS NOT NEW.session_id)
         BEGIN
           UPDATE outcome_counts SET n = n - 1
             WHERE OLD.status = 'placed' AND campaign_id = OLD.campaign_id
               AND class = (SELECT o.class FROM outcomes o WHERE o.session_id = OLD.session_id);
           INSERT INTO outcome_counts (campaign_id, class, n)
             SELECT NEW.campaign_id, o.class, 1 FROM outcomes o
             WHERE NEW.status = 'placed' AND o.session_id = NEW.session_id
             ON CONFLICT (campaign_id, class) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_counts_contact_deleted
           AFTER DELETE ON contacts WHEN OLD.status = 'placed'
         BEGIN
           UPDATE outcome_counts SET n = n - 1
             WHERE campaign_id = OLD.campaign_id
               AND class = (SELECT o.class FROM outcomes o WHERE o.session_id = OLD.session_id);
         END;
         PRAGMA user_version = {version};
         COMMIT;"
    ))?;
    Ok(())
}

/// What the AI agent learned (see `crate::outcomes::tags`): `session_tags` (one row per session
/// and tag name, written once), `campaign_tag_names` (each campaign's tag names in the order
/// first seen: the results file's `tag:NAME` columns), `session_analysis` (summary, mood,
/// intention). `tag_checks` is the schedule: a trigger enrols every answered session, when its
/// outcome is written, for each kind listed in `tag_kinds` (the running process lists the kinds
/// its config asks for). `dnc_entries` is the account's own do-not-call list (opt-outs heard by
/// the agent, `[dnc] opt_out_tag`), `dnc_log` every addition and removal with its reason.
fn v12(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS tag_kinds (kind TEXT PRIMARY KEY) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS tag_checks (
           session_id TEXT NOT NULL,
           kind TEXT NOT NULL,
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           call_at INTEGER,
           ended_at INTEGER,
           checks INTEGER NOT NULL DEFAULT 0,
           next_check_at INTEGER NOT NULL,
           PRIMARY KEY (session_id, kind)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS tag_checks_due ON tag_checks (kind, next_check_at);
         CREATE INDEX IF NOT EXISTS tag_checks_by_contact ON tag_checks (contact_id);
         CREATE TRIGGER IF NOT EXISTS outcomes_answered_enrol AFTER INSERT ON outcomes
           WHEN NEW.answered_at > 0
         BEGIN
           INSERT OR IGNORE INTO tag_checks
             (session_id, kind, contact_id, call_at, ended_at, next_check_at)
           SELECT NEW.session_id, t.kind, NEW.contact_id,
                  COALESCE(NULLIF(NEW.ring_at, 0), NEW.answered_at), NEW.ended_at, NEW.recorded_at
           FROM tag_kinds t;
         END;
         CREATE TRIGGER IF NOT EXISTS outcomes_answered_late_enrol AFTER UPDATE OF answered_at ON outcomes
           WHEN NEW.answered_at > 0 AND (OLD.answered_at IS NULL OR OLD.answered_at <= 0)
         BEGIN
           INSERT OR IGNORE INTO tag_checks
             (session_id, kind, contact_id, call_at, ended_at, next_check_at)
           SELECT NEW.session_id, t.kind, NEW.contact_id,
                  COALESCE(NULLIF(NEW.ring_at, 0), NEW.answered_at), NEW.ended_at, NEW.recorded_at
           FROM tag_kinds t;
         END;
         CREATE TABLE IF NOT EXISTS session_tags (
           id INTEGER PRIMARY KEY,
           session_id TEXT NOT NULL,
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           campaign_id INTEGER NOT NULL,
           name TEXT NOT NULL,
           info_type TEXT NOT NULL,
           info_content TEXT NOT NULL,
           value TEXT NOT NULL,
           result TEXT NOT NULL,
           recorded_at INTEGER NOT NULL,
           UNIQUE (session_id, name)
         );
         CREATE INDEX IF NOT EXISTS session_tags_by_contact ON session_tags (contact_id, id);
         CREATE TABLE IF NOT EXISTS campaign_tag_names (
           campaign_id INTEGER NOT NULL,
           name TEXT NOT NULL,
           seq INTEGER NOT NULL,
           PRIMARY KEY (campaign_id, name)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS session_analysis (
           session_id TEXT PRIMARY KEY,
           contact_id INTEGER NOT NULL REFERENCES contacts(id),
           summary TEXT NOT NULL,
           mood TEXT NOT NULL,
           intention TEXT NOT NULL,
           result TEXT NOT NULL,
           recorded_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS session_analysis_by_contact ON session_analysis (contact_id);
         CREATE TABLE IF NOT EXISTS dnc_entries (
           number TEXT PRIMARY KEY,
           added_at INTEGER NOT NULL,
           source TEXT NOT NULL,
           campaign_id INTEGER,
           session_id TEXT,
           reason TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS dnc_log (
           id INTEGER PRIMARY KEY,
           number TEXT NOT NULL,
           action TEXT NOT NULL,
           at INTEGER NOT NULL,
           source TEXT NOT NULL,
           campaign_id INTEGER,
           session_id TEXT,
           reason TEXT NOT NULL
         );
         PRAGMA user_version = 12;
         COMMIT;",
    )?;
    Ok(())
}

/// `pending_pushes`: a pushed call record of a session no attempt has yet (the push came before
/// the dialler wrote the reply, or the reply was lost and reconciliation has not yet named the
/// session). It is kept, not dropped: when an attempt gets that session, a trigger moves the
/// record into `outcomes` in the same transaction. Rows no attempt claims (another dialer's
/// calls on the same application) are pruned after `crate::store::PENDING_PUSH_KEEP_MS`.
fn v13(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS pending_pushes (
           session_id TEXT PRIMARY KEY,
           class TEXT NOT NULL,
           end_status INTEGER,
           end_status_string TEXT,
           duration_s INTEGER,
           ring_at INTEGER,
           answered_at INTEGER,
           ended_at INTEGER,
           hangup_side TEXT,
           sys_hangup_reason INTEGER,
           ai_agent_id INTEGER,
           recorded_at INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS pending_pushes_by_time ON pending_pushes (recorded_at);
         CREATE TRIGGER IF NOT EXISTS pending_push_claimed
           AFTER UPDATE OF session_id ON attempts
           WHEN NEW.session_id IS NOT NULL AND OLD.session_id IS NOT NEW.session_id
         BEGIN
           INSERT OR IGNORE INTO outcomes (session_id, contact_id, class, end_status,
               end_status_string, duration_s, ring_at, answered_at, ended_at, hangup_side,
               sys_hangup_reason, ai_agent_id, source, recorded_at)
             SELECT p.session_id, NEW.contact_id, p.class, p.end_status, p.end_status_string,
                    p.duration_s, p.ring_at, p.answered_at, p.ended_at, p.hangup_side,
                    p.sys_hangup_reason, p.ai_agent_id, 'push', p.recorded_at
             FROM pending_pushes p WHERE p.session_id = NEW.session_id;
           DELETE FROM pending_pushes WHERE session_id = NEW.session_id;
         END;
         CREATE TRIGGER IF NOT EXISTS pending_push_claimed_at_insert
           AFTER INSERT ON attempts WHEN NEW.session_id IS NOT NULL
         BEGIN
           INSERT OR IGNORE INTO outcomes (session_id, contact_id, class, end_status,
               end_status_string, duration_s, ring_at, answered_at, ended_at, hangup_side,
               sys_hangup_reason, ai_agent_id, source, recorded_at)
             SELECT p.session_id, NEW.contact_id, p.class, p.end_status, p.end_status_string,
                    p.duration_s, p.ring_at, p.answered_at, p.ended_at, p.hangup_side,
                    p.sys_hangup_reason, p.ai_agent_id, 'push', p.recorded_at
             FROM pending_pushes p WHERE p.session_id = NEW.session_id;
           DELETE FROM pending_pushes WHERE session_id = NEW.session_id;
         END;
         PRAGMA user_version = 13;
         COMMIT;",
    )?;
    Ok(())
}

/// Redial by outcome (see `crate::redial`): `campaigns.redial`, the campaign's redial policy
/// (JSON, `None`: no redials), written by `run` and `serve` when they start the campaign, read
/// by the transaction that writes a call's outcome so that the decision to redial is durable
/// with it.
fn v14(conn: &Connection) -> Result<(), StoreError> {
    let has_redial: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('campaigns') WHERE name = 'redial'",
        [],
        |r| r.get(0),
    )?;
    let add = if has_redial {
        ""
    } else {
        "ALTER TABLE campaigns ADD COLUMN redial TEXT;"
    };
    conn.execute_batch(&format!(
        "BEGIN;
         {add}
         PRAGMA user_version = 14;
         COMMIT;"
    ))?;
    Ok(())
}

/// A held push (`pending_pushes`, v13) is no longer claimed by trigger: the transaction that
/// gives an attempt its session claims it in code, through the same write as any record's
/// arrival (`store::outcomes::claim_held_push`: the redial decision, and the process told of it
/// for lines, `/metrics` and waiters). The triggers wrote the outcome and nothing else.
fn v15(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         DROP TRIGGER IF EXISTS pending_push_claimed;
         DROP TRIGGER IF EXISTS pending_push_claimed_at_insert;
         PRAGMA user_version = 15;
         COMMIT;",
    )?;
    Ok(())
}

/// `outcome_minutes`: each campaign's calls by the minute they ended (unix minutes; the minute
/// the record was written when it has no end time) and outcome class, kept by triggers on
/// `outcomes` (a record written, re-classed or re-timed, deleted), so the history of outcomes
/// (`GET /v1/campaigns/{id}/outcomes/history`, the console's chart) reads one row per minute
/// and class however many contacts the campaign has. Built from what is stored.
fn v16(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE IF NOT EXISTS outcome_minutes (
           campaign_id INTEGER NOT NULL,
           minute INTEGER NOT NULL,
           class TEXT NOT NULL,
           n INTEGER NOT NULL,
           PRIMARY KEY (campaign_id, minute, class)
         ) WITHOUT ROWID;
         DELETE FROM outcome_minutes;
         INSERT INTO outcome_minutes (campaign_id, minute, class, n)
           SELECT k.campaign_id, COALESCE(o.ended_at, o.recorded_at / 1000) / 60, o.class,
                  COUNT(*)
           FROM outcomes o JOIN contacts k ON k.id = o.contact_id
           GROUP BY 1, 2, 3;
         CREATE TRIGGER IF NOT EXISTS outcome_minutes_recorded AFTER INSERT ON outcomes
         BEGIN
           INSERT INTO outcome_minutes (campaign_id, minute, class, n)
             SELECT k.campaign_id, COALESCE(NEW.ended_at, NEW.recorded_at / 1000) / 60,
                    NEW.class, 1
             FROM contacts k WHERE k.id = NEW.contact_id
             ON CONFLICT (campaign_id, minute, class) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_minutes_changed
           AFTER UPDATE OF class, ended_at, recorded_at ON outcomes
           WHEN OLD.class IS NOT NEW.class
             OR COALESCE(OLD.ended_at, OLD.recorded_at / 1000) / 60
                IS NOT COALESCE(NEW.ended_at, NEW.recorded_at / 1000) / 60
         BEGIN
           UPDATE outcome_minutes SET n = n - 1
             WHERE campaign_id = (SELECT k.campaign_id FROM contacts k WHERE k.id = OLD.contact_id)
               AND minute = COALESCE(OLD.ended_at, OLD.recorded_at / 1000) / 60
               AND class = OLD.class;
           INSERT INTO outcome_minutes (campaign_id, minute, class, n)
             SELECT k.campaign_id, COALESCE(NEW.ended_at, NEW.recorded_at / 1000) / 60,
                    NEW.class, 1
             FROM contacts k WHERE k.id = NEW.contact_id
             ON CONFLICT (campaign_id, minute, class) DO UPDATE SET n = n + 1;
         END;
         CREATE TRIGGER IF NOT EXISTS outcome_minutes_forgotten AFTER DELETE ON outcomes
         BEGIN
           UPDATE outcome_minutes SET n = n - 1
             WHERE campaign_id = (SELECT k.campaign_id FROM contacts k WHERE k.id = OLD.contact_id)
               AND minute = COALESCE(OLD.ended_at, OLD.recorded_at / 1000) / 60
               AND class = OLD.class;
         END;
         PRAGMA user_version = 16;
         COMMIT;",
    )?;
    Ok(())
}

/// Nothing on SQLite: PostgreSQL's v17 makes replicas announce campaign changes to each other
/// (`store::pg::notices`); a SQLite store has one process.
fn v17(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA user_version = 17;")?;
    Ok(())
}

/// PostgreSQL's leases for several replicas (its v19): nothing here, where one process owns the
/// store through its file lock (`store::lock`). The version is kept equal to PostgreSQL's.
fn v19(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA user_version = 19;")?;
    Ok(())
}
