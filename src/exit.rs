//! The fixed exit codes, and the one place that turns a command's result into one.

use std::process::ExitCode;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const HALTED: u8 = 3;
pub const INTERRUPTED: u8 = 130;
/// `outcomes`: some placed calls have no outcome yet (ask again later).
pub const PENDING: u8 = 4;

/// How a command ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Ok,
    Halted,
    Interrupted,
    /// Done for now, but not everything is known yet (`outcomes`: exit 4).
    Pending,
}

/// A failure, with the class that picks the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad config, credentials, arguments or input: exit 2, nothing was sent.
    Input(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl Failure {
    pub fn input(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Input(e.into())
    }
    pub fn other(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Other(e.into())
    }
}

/// Print the error (if any) and pick the exit code. The only place that does either.
pub fn finish(result: Result<Done, Failure>) -> ExitCode {
    let code = match result {
        Ok(Done::Ok) => OK,
        Ok(Done::Halted) => HALTED,
        Ok(Done::Interrupted) => INTERRUPTED,
        Ok(Done::Pending) => PENDING,
        Err(Failure::Input(e)) => {
            crate::tell!("error: {}", chain(&e));
            BAD_INPUT
        }
        Err(Failure::Other(e)) => {
            crate::tell!("error: {}", chain(&e));
            FAILURE
        }
    };
    ExitCode::from(code)
}

/// The error and its causes, outermost first, as one message.
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
