//! Outcome tracking (issue 13): what became of each placed call, from the service's call
//! records, and `unknown` contacts resolved from them.
//!
//! - [`cdr`]: the DescribeTelCdr request and reply (pure).
//! - [`classes`]: end code → outcome class, the documented table and its overrides (pure).
//! - [`schedule`]: when a session is asked about next, when to give up (pure).
//! - [`reconcile`]: which call record, if any, an in-doubt request created (pure).
//! - [`retry_check`]: a retry after `InternalError*` waits for the call records.
//! - [`stops`]: a tracker stopped on an account-level refusal; what waits for it cannot finish.
//! - [`ai_results`]: DescribeAICallExtractResult / DescribeAIAnalysisResult requests and
//!   replies (pure); [`tag_rules`]: rules acting on a tag (redial, opt-out; pure).
//! - [`tags`]: the task that asks for answered sessions' tags and analysis, at their own rates.
//! - [`reply`]: the envelope every query action's reply shares, and its errors (pure).
//! - [`poller`]: the task that asks, at its own rate, and writes the answers to the store.

pub mod ai_results;
pub mod cdr;
pub mod classes;
pub mod poller;
pub mod reconcile;
pub mod reply;
pub mod retry_check;
pub mod schedule;
pub mod settings;
pub mod stops;
pub mod tag_rules;
pub mod tags;
