//! Command-line arguments: parsed once by clap, then turned into typed settings by the commands.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every contact reached a final state (placed, failed, skipped, unknown, expired,
       not_placed)
  1    anything else went wrong (store, network setup, a single `call` that failed)
  2    bad configuration, credentials, arguments or contacts file, or `run` of a campaign
       whose contacts were purged (purge, [store] retain): nothing was sent
  3    halted by an account-level error (expired licence, auth failure…), a systematic error
       (one code failing every contact: retry.systematic_after), or an endpoint unreachable
       for run.outage_limit: undialled contacts stay pending; fix and rerun
  130  interrupted (SIGINT/SIGTERM): in-flight replies were recorded; rerun to continue

With [outcomes] enabled, `run` then waits for the outcome of every placed call (\"contacts'
latest calls ended: n / placed\") until each is known or outcomes.give_up_after passed; exit 3
also when outcome tracking stopped on an account-level error (dialling itself finished), or, with
[redial], when outcome or tag tracking stopped while their answers might still ask for a redial
(every contact that could be dialled was; rerun after the fix to continue).

Secrets come only from the environment: TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY,
TENCENTCLOUD_SESSION_TOKEN (optional), or the same names with _FILE pointing at a file; the
webhook's shared secret ([notify] url) from CCC_DIALER_NOTIFY_SECRET or its _FILE.";

#[derive(Debug, Parser)]
#[command(
    name = "ccc-dialer",
    version,
    about = "Outbound call campaigns through Tencent Cloud Contact Center AI voice agents",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Log format: text for people, json for machines; auto picks text on a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Log filter (e.g. info, warn, ccc_dialer=debug). Defaults to info (warn while a progress bar is shown).
    #[arg(long, global = true, env = "CCC_DIALER_LOG")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dial every contact of a CSV file once, at the rate cap; rerun to resume.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Print counts by status and by error code from a state store (read-only: works beside a
    /// live run or serve).
    Status(StatusArgs),
    /// Rewrite the results CSV from a state store (read-only: works beside a live run or serve).
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// A campaign's report: totals, requests per contact, rate against the cap, time spent
    /// waiting and why (read-only: works beside a live run or serve).
    #[command(after_help = REPORT_HELP)]
    Report(ReportArgs),
    /// Fetch call outcomes (answered, busy, talk time…) for placed calls from the service's call
    /// records, and resolve `unknown` contacts; cron-friendly.
    #[command(after_help = OUTCOMES_HELP)]
    Outcomes(OutcomesArgs),
    /// Put failed (or expired) contacts back in the queue, e.g. after an outage was fixed.
    #[command(after_help = REQUEUE_HELP)]
    Requeue(RequeueArgs),
    /// Delete a finished campaign's contacts, attempts and uploaded file now (personal data
    /// retention; `[store] retain` does it by itself after a while).
    #[command(after_help = PURGE_HELP)]
    Purge(PurgeArgs),
    /// The account's own do-not-call list (opt-outs heard by the AI agent): export it as CSV,
    /// or take a number off it with a reason.
    #[command(subcommand, after_help = DNC_HELP)]
    Dnc(DncCommand),
    /// Place one call and print its SessionId (checks an account's setup).
    #[command(after_help = CALL_HELP)]
    Call(CallArgs),
    /// Run the built-in CCC stand-in (for demos, tests and benchmarks).
    Mock(Box<MockArgs>),
    /// Run as a long-lived service: campaigns over an HTTP API and an inbox folder.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Exit 0 if a URL answers 200 (the container's HEALTHCHECK; no curl needed).
    Healthcheck(HealthcheckArgs),
}

pub const SERVE_HELP: &str = "\
The API needs `Authorization: Bearer <token>` with the token from CCC_DIALER_API_TOKEN (or
CCC_DIALER_API_TOKEN_FILE): at least 16 characters, 10 distinct, no template word (REPLACE,
CHANGE, EXAMPLE, PLACEHOLDER); without a token it listens on loopback only.
Probes: GET /healthz, GET /readyz, GET /metrics. API: /v1 (document at /v1/openapi.json).
The CDR push receiver POST /v1/ccc/cdr is on when CCC_DIALER_PUSH_USER and
CCC_DIALER_PUSH_PASSWORD (or _FILE) are set: HTTP Basic, as set in the TCCC console.
Slow clients are cut off by the config's [server] header_timeout, body_timeout and
max_connections. The inbox refuses symbolic links, and a file whose contacts another
campaign already has under another name (the API: 409 unless ?allow_duplicate=true).

Exit codes:
  0    stopped by SIGINT/SIGTERM after draining replies in flight
  1    anything else went wrong (store, bind, network setup)
  2    bad configuration, credentials, token or arguments: nothing was sent";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); see config/dialer.toml.
    #[arg(long, env = "CCC_DIALER_CONFIG")]
    pub config: PathBuf,
    /// State store, created if missing; every campaign lives in it: a SQLite file, or a
    /// PostgreSQL database URL (postgres://USER@HOST/DB?sslmode=…; keep a password out of the
    /// command line: CCC_DIALER_STATE, or PGPASSWORD).
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// Address for the HTTP API and probes (port 0 picks a free port and prints it).
    #[arg(long, env = "CCC_DIALER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder watched for contact files (`NAME.csv`, optional `NAME.toml` settings).
    #[arg(long, env = "CCC_DIALER_INBOX")]
    pub inbox: Option<PathBuf>,
    /// Largest request body accepted, in MiB (CSV uploads).
    #[arg(long, env = "CCC_DIALER_MAX_BODY_MIB", default_value_t = 64)]
    pub max_body_mib: usize,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// URL to ask (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see config/dialer.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Contacts CSV: a header row with a `callee` column; optional `callers`, `ai_agent_id`,
    /// `id` and `var:NAME` columns.
    #[arg(long)]
    pub contacts: PathBuf,
    /// Results CSV, one row per contact (rewritten on every run). Never the --state or
    /// --contacts file (refused, exit 2).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// State store, created if missing: a SQLite file, or a PostgreSQL database URL
    /// (postgres://…). Rerun with the same store to resume.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: Option<PathBuf>,
    /// Make every check the real run makes before sending (config, do-not-call lists,
    /// credentials, fault script, --state/--results), print the intake report and list what would
    /// be dialled; send nothing, write nothing, exit as the real run would (2 where it refuses).
    #[arg(long)]
    pub dry_run: bool,
    /// RISKY: put every contact whose reply was lost (`unknown`) back in the queue for this run.
    /// Someone may be called twice. Same as retry.redial_unknown = true.
    #[arg(long)]
    pub redial_unknown: bool,
    /// Dial `not_placed` contacts again for this run (their reply was lost and the call records
    /// showed no call). Same as retry.redial_not_placed = true.
    #[arg(long)]
    pub redial_not_placed: bool,
    /// Show no progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

pub const OUTCOMES_HELP: &str = "\
Asks the service's call records (DescribeTelCdr, at outcomes.requests_per_second) about every
placed call of the store whose outcome is not known yet and whose first check is due, and about
every `unknown` contact (a lost reply), then prints the counts by outcome. Works whether or not
[outcomes] enabled is set; another process must not hold the store (a live `run` or `serve`
tracks outcomes itself when enabled).

Exit codes:
  0    every placed call has an outcome and no lost reply is left to resolve
  1    anything else went wrong (store, network setup)
  2    bad configuration, credentials or arguments, or another process holds the store
  3    outcome tracking stopped on an account-level error (AuthFailure…): fix and run again
  4    some outcomes are not known yet (calls still going on, records not out yet): run again
       later (cron), or pass --wait
  130  interrupted (SIGINT/SIGTERM): what was fetched is kept";

#[derive(Debug, Args)]
pub struct OutcomesArgs {
    /// Configuration file (TOML): the endpoint, campaign.sdk_app_id and [outcomes].
    #[arg(long)]
    pub config: PathBuf,
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// Keep asking (every outcomes.check_every) until every outcome is known or given up on
    /// (outcomes.give_up_after, outcomes.reconcile_after).
    #[arg(long)]
    pub wait: bool,
    /// Rewrite this results CSV afterwards (the campaign named `run`), with the outcome columns.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// Show one contact instead: its status, what holds it and until when, every attempt.
    #[arg(long, value_name = "NUMBER")]
    pub callee: Option<String>,
    /// Config whose campaign.default_country and callee_format read --callee (default: CN),
    /// and whose calling.timezone shows times locally as well as in UTC (default: the zone
    /// the last run or serve on the store was configured with).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub const EXPORT_HELP: &str = "\
A store written by `serve` holds several campaigns: name the one to export with --campaign
(its name or id; `run`'s campaign is named `run`). Without it, a store of several campaigns is
refused with their list.

Exit codes:
  0    the results file was written
  1    the store failed, or the file could not be written
  2    bad arguments, no such campaign, several campaigns and no --campaign, or a results path
       that would overwrite the store or the contacts file";

pub const CALL_HELP: &str = "\
The call honours the config's calling window (calling.hours, blackout_dates, not_before,
not_after) in the callee's time zone, like a campaign: outside it nothing is sent and the
command says when the window opens. --ignore-window places the call anyway.

Exit codes:
  0    placed (the SessionId is printed)
  1    the call was not placed, or its reply was lost (it MAY have been placed: do not retry)
  2    bad config, credentials or arguments, a number on a do-not-call list, or outside the
       calling window: nothing was sent";

pub const REQUEUE_HELP: &str = "\
A requeued contact is pending again with its attempts reset; it is dialled by the next `run`
with the same command (or at once by a `serve` started on the store), through every calling
rule (hours, do-not-call lists, per-person gap and daily cap). Its history records the requeue
(`status --callee`). Placed contacts are never requeued; unknown ones (the call may have been
placed) only with --allow-double-call.

Exit codes:
  0    done (the count says how many contacts were requeued, possibly none)
  1    the store failed
  2    bad arguments, no such campaign, or another process holds the store (use serve's API:
       POST /v1/campaigns/{id}/requeue)";

#[derive(Debug, Args)]
pub struct RequeueArgs {
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// Only this campaign (by name; `run`'s campaign is named `run`). Default: every campaign.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Contacts in this status: failed, expired, or unknown (with --allow-double-call).
    #[arg(long)]
    pub status: String,
    /// Only contacts whose last error code is this one (repeatable; default: any code).
    #[arg(long = "code", value_name = "CODE")]
    pub codes: Vec<String>,
    /// RISKY: allow --status unknown. Their call may have been placed; check the call records
    /// first: someone may be called twice.
    #[arg(long)]
    pub allow_double_call: bool,
}

pub const REPORT_HELP: &str = "\
Times are shown in UTC and in the campaign's zone (its own calling.timezone, else the config's
as `run`/`serve` last started with). The same report as JSON: GET /v1/campaigns/{id}/report.

Exit codes:
  0    printed
  1    the store failed
  2    no such state file or campaign, or several campaigns and no --campaign (they are listed)";

pub const PURGE_HELP: &str = "\
Deletes the campaign's contacts (numbers, ids, variables), its attempts, its per-person dial
history, its inbox records and the copy of its contacts file `serve` kept in uploads/, then
empties the store's WAL; deleted rows are overwritten in the file (SQLite secure_delete). The
campaign's name, state, counts of waiting time and the time of the purge stay (status, report).
Your own files (run's --contacts, the inbox's done/ folder, results CSVs) are yours to delete.

Only a finished campaign is purged: completed, cancelled, or with no contact pending or awaiting
a reply. While its calls are still in the dial history that calling.min_gap and max_per_day read
across campaigns (2 days, or min_gap if longer), purge refuses unless --forget-dial-history.
While a lost reply is still being looked up in the call records, purge refuses even with
--forget-dial-history (the lookup needs the attempt; a call it finds holds the person back).

Exit codes:
  0    purged (or purged before: nothing to do)
  1    the store failed
  2    bad arguments, no such campaign, a campaign not finished (cancel it first), its calls
       still in the dial history, or another process holds the store (use serve's API:
       POST /v1/campaigns/{id}/purge)";

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// The campaign, by name or id (`run`'s campaign is named `run`).
    #[arg(long, value_name = "NAME|ID")]
    pub campaign: String,
    /// Purge even while the campaign's calls are in the per-person dial history: another
    /// campaign may then call these people sooner than calling.min_gap / max_per_day allow.
    #[arg(long)]
    pub forget_dial_history: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// The campaign, by name or id (`run`'s campaign is named `run`). Needed when the store
    /// holds several.
    #[arg(long, value_name = "NAME|ID")]
    pub campaign: Option<String>,
    /// text for people, json for machines.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// State store written by `run` or `serve`: a SQLite file or a PostgreSQL URL.
    #[arg(long, env = "CCC_DIALER_STATE", hide_env_values = true)]
    pub state: PathBuf,
    /// Where to write the results CSV (never the store's own files or the campaign's contacts).
    #[arg(long)]
    pub results: PathBuf,
    /// The campaign to export, by name or id (needed when the store holds several).
    #[arg(long, value_name = "NAME|ID")]
    pub campaign: Option<String>,
}

pub const DNC_HELP: &str = "\
Numbers join the list when a call's post-call tag matches [dnc] opt_out_tag (with the
campaign, session and time as the reason); every campaign's next gate check honours it (a
pending contact or redial of the number ends `skipped` with code Dnc), beside the
[calling] dnc_files lists. The CSV's first column is `number`, so an export can also be given
as a dnc_files list. serve's API: GET /v1/dnc (CSV), POST /v1/dnc/remove.

Exit codes:
  0    written / removed
  1    the store failed
  2    bad arguments, no such state file, a number not on the list, or (remove) another
       process holds the store (use serve's API)";

#[derive(Debug, Subcommand)]
pub enum DncCommand {
    /// Write the list as CSV (number, added_at, source, campaign_id, campaign, session_id,
    /// reason); read-only: works beside a live run or serve.
    Export(DncExportArgs),
    /// Take a number off the list (logged with the reason); it may be called again.
    Remove(DncRemoveArgs),
}

#[derive(Debug, Args)]
pub struct DncExportArgs {
    /// State store (SQLite) written by `run` or `serve`.
    #[arg(long)]
    pub state: PathBuf,
    /// Where to write the CSV (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DncRemoveArgs {
    /// The number, as `dnc export` shows it (or as written in contacts, with --config).
    pub number: String,
    /// Why it comes off the list (kept in the store's log).
    #[arg(long)]
    pub reason: String,
    /// State store (SQLite) written by `run` or `serve`.
    #[arg(long)]
    pub state: PathBuf,
    /// Configuration file: its campaign.default_country and callee_format read NUMBER as a
    /// contacts file would.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Number to call (+CC…, 00CC…, or national with campaign.default_country).
    #[arg(long)]
    pub callee: String,
    /// A Variable for this call, as KEY=VALUE (repeatable; over the config's defaults).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Call even outside the config's calling window (an operator who means it).
    #[arg(long)]
    pub ignore_window: bool,
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port and prints it.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Strict limit of requests in any sliding 1-second window (0 = off).
    #[arg(long, default_value_t = 20)]
    pub rate_limit: u32,
    /// Median reply latency in milliseconds, with a long tail (0 = none).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Hold each new connection's first request this many milliseconds (what a TLS handshake
    /// to the real endpoint costs; 0 = none). Later requests on the connection are not held.
    #[arg(long, default_value_t = 0)]
    pub new_connection_delay_ms: u64,
    /// Fault script (TOML): per callee pattern, the outcomes of its successive requests.
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// More keys to accept: a file of `SECRET_ID SECRET_KEY` lines (`#` comments). A file, not
    /// the keys themselves, so they never show in `ps`. The demo key and the environment's
    /// TENCENTCLOUD_SECRET_ID/KEY are always accepted.
    #[arg(long, value_name = "FILE")]
    pub accept_credentials: Option<PathBuf>,
    /// Calls each AI agent takes at once; past it requests are refused with
    /// FailedOperation.AcquireQuota (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub agent_lines: u32,
    /// How long a call rings before it is answered: "5s", or "lognormal:MEDIAN[:SIGMA]".
    #[arg(long, default_value = "0s", value_parser = parse_length)]
    pub ring: crate::mock::Length,
    /// How long an answered call talks: "90s", or "lognormal:MEDIAN[:SIGMA]" (sigma 0.5 when
    /// left out).
    #[arg(long, default_value = "lognormal:5s", value_parser = parse_length)]
    pub talk: crate::mock::Length,
    /// A call's record is returned by DescribeTelCdr this long after the call ended (e.g.
    /// "2s", "0s").
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub cdr_delay: std::time::Duration,
    /// Share of the calls no fault script names that are answered, 0.0 to 1.0 (the rest are
    /// not answered, busy, rejected or dead numbers).
    #[arg(long, default_value_t = 1.0, value_parser = parse_ratio)]
    pub answer_ratio: f64,
    /// Push every call record to this receiver, as the service's data push does (POST
    /// URL?action=cdr&version=1, X-TCCC-PUSH-UUID, three retries). HTTP Basic credentials
    /// come from CCC_DIALER_PUSH_USER and CCC_DIALER_PUSH_PASSWORD (or the same names with
    /// _FILE), never from the command line.
    #[arg(long, value_name = "URL")]
    pub push_url: Option<reqwest::Url>,
    /// A push is due this long after its call ended.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub push_delay: std::time::Duration,
    /// Share of the pushes sent late (by --push-late-by), so they arrive out of order.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub push_late_ratio: f64,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub push_late_by: std::time::Duration,
    /// Share of the pushes delivered twice with the same X-TCCC-PUSH-UUID.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub push_duplicate_ratio: f64,
    /// Wait between a push the receiver did not acknowledge and its retry.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub push_retry_interval: std::time::Duration,
    /// How long the receiver has to answer one push.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub push_timeout: std::time::Duration,
    /// Also push EndStatus, AIAgentId and SysHangupReason (not in the documented push fields).
    #[arg(long)]
    pub push_extra_fields: bool,
}

fn parse_length(text: &str) -> Result<crate::mock::Length, String> {
    crate::mock::Length::parse(text)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text).map_err(|e| format!("expected {e}"))
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("{text:?}: expected a number from 0.0 to 1.0"))
}
