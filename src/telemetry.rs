//! Logging setup: JSON lines for machines, text for people. Secrets never reach a log: they
//! live in `Secret`, which prints `***`, and phone numbers are masked by the engine.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// The phone-number library logs the raw number it parses at debug and trace ("Number
/// '13800138000' is a mobile number"): capped at info whatever `--log-level` asks, as the
/// engine masks numbers everywhere else. Added after the operator's filter, so it wins over
/// `--log-level trace` and over `rlibphonenumber=trace` alike.
pub const PHONE_LIBRARY_CAP: &str = "rlibphonenumber=info";

/// Install the global subscriber, writing to stderr. `quiet` lowers the default level to warn
/// (a progress bar is showing).
pub fn init(format: LogFormat, level: Option<&str>, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_new(level.unwrap_or(default))
        .unwrap_or_else(|_| EnvFilter::new(default))
        .add_directive(PHONE_LIBRARY_CAP.parse().unwrap_or_default());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        // Colours for a terminal only: into a pipe or a file they are escape codes.
        .with_ansi(std::io::stderr().is_terminal())
        // On a write error tracing-subscriber would report it with `eprintln!`, which panics
        // when stderr is a closed pipe: a log line is not worth a campaign.
        .log_internal_errors(false)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}

/// The progress bar on the terminal, while one shows.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Print log lines and messages through `bar` from now on (`None`: straight to stderr again).
pub fn show_bar(bar: Option<indicatif::ProgressBar>) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Write `bytes` to stderr; while a progress bar shows, its line is cleared first and drawn
/// again after, so no stale copy of the bar stays above the text.
pub fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write_all(bytes)),
        _ => std::io::stderr().write_all(bytes),
    }
}

/// The log's writer: stderr through [`write_stderr`] (tracing writes one event per call).
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_stderr(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
