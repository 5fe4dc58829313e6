//! `ccc-dialer mock`: the built-in CCC stand-in as a server of its own.

use anyhow::anyhow;

use crate::cli::MockArgs;
use crate::credentials::{self, ProcessEnv};
use crate::exit::{Done, Failure};
use crate::mock::{Faults, MockOptions, MockServer};

pub async fn run(args: MockArgs) -> Result<Done, Failure> {
    // The stand-in accepts the environment's key when one is set, and the demo key always.
    let mut accepted = vec![credentials::demo()];
    if let Ok(c) = credentials::from_env(&ProcessEnv) {
        accepted.push(c);
    }
    if let Some(path) = &args.accept_credentials {
        accepted.extend(read_key_file(path).map_err(Failure::input)?);
    }
    let faults = match &args.faults {
        Some(p) => Faults::load(p).map_err(Failure::input)?,
        None => Faults::default(),
    };
    let opts = MockOptions {
        credentials: accepted
            .into_iter()
            .map(|c| (c.secret_id, c.secret_key))
            .collect(),
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        faults,
        new_connection_delay: std::time::Duration::from_millis(args.new_connection_delay_ms),
        agent_lines: args.agent_lines,
        call_length: crate::mock::CallLength {
            ring: args.ring,
            talk: args.talk,
        },
        cdr_delay: args.cdr_delay,
        answer_ratio: args.answer_ratio,
        push: push_options(&args, &ProcessEnv).map_err(Failure::input)?,
        ..Default::default()
    };
    let (listener, addr) = super::bind(args.listen).await?;
    crate::say!("listening on http://{addr}");
    crate::tell!("admin figures: http://{addr}/__admin/stats");
    if let Some(p) = &opts.push {
        crate::tell!("pushing call records to {}", p.target());
    }
    MockServer::serve(listener, opts, super::stop_signal())
        .await
        .map_err(|e| Failure::other(anyhow!("stand-in stopped: {e}")))?;
    Ok(Done::Ok)
}

/// Names of the push receiver's Basic credentials (each also as `NAME_FILE`).
pub const PUSH_USER_VAR: &str = "CCC_DIALER_PUSH_USER";
pub const PUSH_PASSWORD_VAR: &str = "CCC_DIALER_PUSH_PASSWORD";

/// The push settings from the flags and the environment; `None` without `--push-url`.
fn push_options(
    args: &MockArgs,
    env: &dyn credentials::Env,
) -> anyhow::Result<Option<crate::mock::PushOptions>> {
    let Some(url) = &args.push_url else {
        return Ok(None);
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(anyhow!(
            "--push-url {url}: expected an http:// or https:// URL"
        ));
    }
    let user = credentials::read_secret(env, PUSH_USER_VAR)?;
    let password = credentials::read_secret(env, PUSH_PASSWORD_VAR)?;
    let basic_auth = match (user, password) {
        (Some(u), Some(p)) => Some((u.expose().to_string(), p)),
        (None, None) => None,
        _ => {
            return Err(anyhow!(
                "set both {PUSH_USER_VAR} and {PUSH_PASSWORD_VAR} (or their _FILE forms) for the push's Basic auth, or neither"
            ))
        }
    };
    Ok(Some(crate::mock::PushOptions {
        basic_auth,
        delay: args.push_delay,
        late_ratio: args.push_late_ratio,
        late_by: args.push_late_by,
        duplicate_ratio: args.push_duplicate_ratio,
        retry_interval: args.push_retry_interval,
        timeout: args.push_timeout,
        extra_fields: args.push_extra_fields,
        ..crate::mock::PushOptions::to(url.clone())
    }))
}

/// `SECRET_ID SECRET_KEY` per line; blank lines and `#` comments ignored. Errors name the file
/// and line, never the key.
fn read_key_file(path: &std::path::Path) -> anyhow::Result<Vec<crate::sign::Credentials>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read the credentials file: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(key), None) => out.push(crate::sign::Credentials {
                secret_id: id.to_string(),
                secret_key: crate::secret::Secret::new(key),
                session_token: None,
            }),
            _ => {
                return Err(anyhow!(
                    "{}: line {}: expected `SECRET_ID SECRET_KEY`",
                    path.display(),
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}
