//! A systematic error: the same permanent or unrecognised code failing contact after contact
//! says our request is wrong (a wrong `ai_agent_id`, a shape the service refuses), not that
//! every callee is. After `retry.systematic_after` distinct contacts in a row fail with one such
//! code, with no call placed between, the campaign halts and those contacts go back to
//! `pending` as if that code had never answered them (their attempt is given back), as does any
//! contact the same code answers after the halt. A placed call ends the streak; another code
//! starts a new one; other outcomes (retries, throttling) leave it alone.
//!
//! One tracker per campaign runner ([`super::Engine::systematic`]). The std `Mutex` is never
//! held across an `.await`.

use std::sync::Mutex;

use std::sync::atomic::Ordering;

use super::{lock, Engine, Shared};
use crate::contact::Status;
use crate::policy::{self, Class, ClassOverrides};
use crate::store::{AttemptOutcome, DueContact};

/// `retry.systematic_after`'s default.
pub const DEFAULT_AFTER: u32 = 5;

/// How a halted campaign's reason starts when a systematic error stopped it.
pub const MESSAGE_PREFIX: &str = "every contact is failing the same way";

#[derive(Debug, Default)]
struct Streak {
    code: Option<String>,
    contacts: Vec<i64>,
    /// The code that halted the campaign: every later failure with it is given back too.
    tripped: Option<String>,
}

/// The tracker. `after = 0` turns it off.
#[derive(Debug)]
pub struct Systematic {
    after: u32,
    streak: Mutex<Streak>,
}

/// What the tracker decided about one failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Record the outcome as it is.
    Keep,
    /// Give this contact back (pending, its attempt returned) and also these earlier ones,
    /// failed by the same code; `halt` is set the first time (code, message).
    GiveBack {
        earlier: Vec<i64>,
        halt: Option<(String, String)>,
    },
}

impl Systematic {
    pub fn new(after: u32) -> Systematic {
        Systematic {
            after,
            streak: Mutex::new(Streak::default()),
        }
    }

    pub fn after(&self) -> u32 {
        self.after
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streak> {
        self.streak.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Look at one attempt's outcome for `contact_id`.
    pub fn observe(
        &self,
        contact_id: i64,
        outcome: &AttemptOutcome,
        overrides: &ClassOverrides,
    ) -> Verdict {
        if self.after == 0 {
            return Verdict::Keep;
        }
        let mut s = self.lock();
        if outcome.status == Status::Placed {
            s.code = None;
            s.contacts.clear();
            return Verdict::Keep;
        }
        let Some(code) = outcome.error_code.as_deref() else {
            return Verdict::Keep;
        };
        // A code about one callee (a blacklisted or restricted number) says nothing about the
        // request every contact shares: five such numbers in a row are not a systematic error.
        if outcome.status != Status::Failed
            || policy::is_about_the_callee(code)
            || !matches!(
                policy::classify_code(code, overrides),
                Class::Permanent | Class::Unrecognised
            )
        {
            return Verdict::Keep;
        }
        if s.tripped.as_deref() == Some(code) {
            return Verdict::GiveBack {
                earlier: Vec::new(),
                halt: None,
            };
        }
        if s.code.as_deref() != Some(code) {
            s.code = Some(code.to_string());
            s.contacts.clear();
        }
        if !s.contacts.contains(&contact_id) {
            s.contacts.push(contact_id);
        }
        if (s.contacts.len() as u32) < self.after {
            return Verdict::Keep;
        }
        let earlier: Vec<i64> = s
            .contacts
            .drain(..)
            .filter(|id| *id != contact_id)
            .collect();
        s.code = None;
        s.tripped = Some(code.to_string());
        let message = format!(
            "{MESSAGE_PREFIX}: {} contacts in a row answered {code} ({}); they are pending again",
            self.after,
            outcome.error_message.as_deref().unwrap_or("no message")
        );
        Verdict::GiveBack {
            earlier,
            halt: Some((code.to_string(), message)),
        }
    }
}

/// What the operator must fix after a systematic halt.
pub const HINT: &str = "fix: check the campaign's ai_agent_id, callers and variables (and the config's [campaign]) against the code's meaning, then resume or rerun";

/// Apply the tracker to one attempt's outcome: the outcome to record, and the earlier contacts
/// of the streak to give back after it (`Store::give_back_failed`).
pub(super) fn apply(
    engine: &Engine,
    shared: &Shared,
    contact: &DueContact,
    outcome: AttemptOutcome,
) -> (AttemptOutcome, Vec<i64>) {
    match engine
        .systematic
        .observe(contact.id, &outcome, &engine.classes)
    {
        Verdict::Keep => (outcome, Vec::new()),
        Verdict::GiveBack { earlier, halt } => {
            let n = 1 + earlier.len() as u64;
            let _ =
                engine
                    .counters
                    .failed
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                        Some(f.saturating_sub(n))
                    });
            if let Some((code, message)) = halt {
                tracing::error!(campaign = contact.campaign_id, code = %code, "{message}: halting the campaign");
                lock(&shared.halt).get_or_insert((code, message));
            }
            (given_back(contact, outcome), earlier)
        }
    }
}

/// `outcome` turned back into "not failed": pending, due at once, the attempt given back.
pub fn given_back(contact: &DueContact, mut outcome: AttemptOutcome) -> AttemptOutcome {
    outcome.status = Status::Pending;
    outcome.attempts = contact.attempts;
    outcome.next_at = 0;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: &str) -> AttemptOutcome {
        AttemptOutcome {
            status: Status::Failed,
            attempts: 1,
            reschedules: 0,
            next_at: 0,
            session_id: None,
            request_id: None,
            error_code: Some(code.into()),
            error_message: Some("refused".into()),
            outcome: "error",
            sent_at: Some(1),
            finished_at: 2,
        }
    }

    fn placed() -> AttemptOutcome {
        AttemptOutcome {
            status: Status::Placed,
            error_code: None,
            ..failed("")
        }
    }

    #[test]
    fn the_same_code_on_k_distinct_contacts_in_a_row_halts_and_gives_them_back() {
        let none = ClassOverrides::new();
        let t = Systematic::new(3);
        let bad = "InvalidParameterValue.AIAgentId";
        assert_eq!(t.observe(1, &failed(bad), &none), Verdict::Keep);
        // The same contact again is not a second contact.
        assert_eq!(t.observe(1, &failed(bad), &none), Verdict::Keep);
        assert_eq!(t.observe(2, &failed(bad), &none), Verdict::Keep);
        match t.observe(3, &failed(bad), &none) {
            Verdict::GiveBack {
                earlier,
                halt: Some((code, message)),
            } => {
                assert_eq!(earlier, [1, 2]);
                assert_eq!(code, bad);
                assert!(message.starts_with(MESSAGE_PREFIX), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Replies in flight with the same code after the halt go back too.
        assert_eq!(
            t.observe(4, &failed(bad), &none),
            Verdict::GiveBack {
                earlier: vec![],
                halt: None
            }
        );
    }

    #[test]
    fn a_placed_call_or_another_code_breaks_the_streak_and_other_classes_do_not_count() {
        let none = ClassOverrides::new();
        let t = Systematic::new(2);
        let black = "FailedOperation.CalleeIsBlackUser";
        assert_eq!(t.observe(1, &failed(black), &none), Verdict::Keep);
        assert_eq!(t.observe(2, &placed(), &none), Verdict::Keep);
        assert_eq!(t.observe(3, &failed(black), &none), Verdict::Keep);
        assert_eq!(
            t.observe(4, &failed("FailedOperation.SomethingNew"), &none),
            Verdict::Keep
        );
        // A transient code used up is not systematic.
        assert_eq!(t.observe(5, &failed("InternalError"), &none), Verdict::Keep);
        assert!(matches!(
            t.observe(6, &failed("FailedOperation.SomethingNew"), &none),
            Verdict::GiveBack { halt: Some(_), .. }
        ));
        let off = Systematic::new(0);
        for id in 0..10 {
            assert_eq!(off.observe(id, &failed(black), &none), Verdict::Keep);
        }
    }
}
