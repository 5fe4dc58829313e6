//! Printing for people. `println!`/`eprintln!` panic when the other end of the pipe is gone
//! (`ccc-dialer run … | head`); a dialer must never die mid-campaign for that, so every message
//! to stdout or stderr goes through these macros, which drop what cannot be written.

/// Like `println!`, ignoring write errors.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Like `eprintln!`, ignoring write errors; printed through the progress bar while one shows
/// ([`crate::telemetry::write_stderr`]).
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = $crate::telemetry::write_stderr(line.as_bytes());
    }};
}
