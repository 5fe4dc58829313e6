//! ccc-dialer: outbound call campaigns through Tencent Cloud Contact Center AI voice agents.
//!
//! Map of the modules, from the pure core outwards:
//! - [`sign`]: TC3-HMAC-SHA256 signing (pure; the clock is an argument).
//! - [`policy`]: error code → class → retry decision (pure).
//! - [`intake`], [`phone`]: CSV rows → validated, normalised contacts (pure).
//! - [`calling`]: calling windows, time zones, do-not-call lists, caller pool, gates (pure);
//!   `dispatch::rules` applies them in the engine.
//! - [`config`], [`credentials`], [`duration`], [`secret`]: settings and secrets.
//! - [`ccc`]: the CreateAIAgentCall client and its typed errors (not sent / in doubt / API);
//!   [`connections`] opens its connections ahead of need and times the ones opened late.
//! - [`store`]: SQLite state store, which is also the queue; [`import`] streams intake into it.
//! - [`limiter`]: pacing plus a sliding-window guard shared by every request; [`lines`]: the
//!   second limiter, pacing calls by the lines each AI agent has free; [`outage`]: the
//!   endpoint's circuit breaker, shared the same way (an unreachable endpoint stops every campaign).
//! - [`dispatch`]: the engine that ties them together; [`results`] writes the results CSV;
//!   [`requeue`] puts finished contacts back in the queue on an operator's request.
//! - [`outcomes`]: what became of each placed call (DescribeTelCdr polling, outcome classes)
//!   and `unknown` contacts resolved from the call records; [`end_status`]: the service's end
//!   codes and their strings; [`redial`]: dialling a contact again by its call's outcome.
//! - [`report`]: a campaign's report from the store (totals, rate against the cap, time spent
//!   waiting and why).
//! - [`server`]: `serve`, many campaigns in one process behind an HTTP API and an inbox;
//!   [`metrics`] holds its figures.
//! - [`mock`]: the built-in CCC stand-in (a real HTTP server that verifies signatures).
//! - [`cli`], [`commands`], [`exit`], [`telemetry`]: the binary's shell.

pub mod calling;
pub mod ccc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connections;
pub mod console;
pub mod contact;
pub mod credentials;
pub mod dispatch;
pub mod duration;
pub mod end_status;
pub mod exit;
pub mod import;
pub mod intake;
pub mod limiter;
pub mod lines;
pub mod metrics;
pub mod mock;
pub mod notify;
pub mod outage;
pub mod outcomes;
pub mod phone;
pub mod policy;
pub mod purge;
pub mod redial;
pub mod report;
pub mod requeue;
pub mod results;
pub mod secret;
pub mod seed;
pub mod server;
pub mod setting_rules;
pub mod shared_window;
pub mod sign;
pub mod store;
pub mod telemetry;
pub mod times;
