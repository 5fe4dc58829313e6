//! API credentials, read only from the environment or from files named by it.
//!
//! Names follow Tencent Cloud's own tools: `TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY`,
//! optional `TENCENTCLOUD_SESSION_TOKEN`; each also as `NAME_FILE` (a path, for container
//! secrets). Never from the config file or the command line. The environment is read through
//! [`Env`] so tests can supply their own without touching the process environment.

use std::path::PathBuf;

use crate::secret::Secret;
use crate::sign::Credentials;

pub const SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
pub const SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
pub const SESSION_TOKEN: &str = "TENCENTCLOUD_SESSION_TOKEN";

/// Read access to environment variables.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables (tests, and the built-in demo).
impl Env for std::collections::BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("{name} is not set\nhint: export {name}=… or point {name}_FILE at a file holding it")]
    Missing { name: String },
    #[error("both {name} and {name}_FILE are set: expected only one")]
    Both { name: String },
    #[error("{name}_FILE = {path}: cannot read the file: {reason}")]
    Unreadable {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{name} is empty: expected a non-empty value")]
    Empty { name: String },
}

/// Read one secret value from `NAME` or `NAME_FILE`. `Ok(None)` if neither is set.
pub fn read_secret(env: &dyn Env, name: &str) -> Result<Option<Secret>, CredentialsError> {
    let file_var = format!("{name}_FILE");
    let direct = env.var(name).filter(|v| !v.is_empty());
    let file = env.var(&file_var).filter(|v| !v.is_empty());
    let value = match (direct, file) {
        (Some(_), Some(_)) => {
            return Err(CredentialsError::Both {
                name: name.to_string(),
            })
        }
        (Some(v), None) => v,
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            std::fs::read_to_string(&path).map_err(|e| CredentialsError::Unreadable {
                name: name.to_string(),
                path: path.clone(),
                reason: e.to_string(),
            })?
        }
        (None, None) => return Ok(None),
    };
    // Files written by `echo` or secret managers end with a newline; keys never contain
    // surrounding whitespace.
    let value = value.trim();
    if value.is_empty() {
        return Err(CredentialsError::Empty {
            name: name.to_string(),
        });
    }
    Ok(Some(Secret::new(value)))
}

/// The credentials for signing, or an error naming the missing variable.
pub fn from_env(env: &dyn Env) -> Result<Credentials, CredentialsError> {
    let missing = |name: &str| CredentialsError::Missing {
        name: name.to_string(),
    };
    let secret_id = read_secret(env, SECRET_ID)?.ok_or_else(|| missing(SECRET_ID))?;
    let secret_key = read_secret(env, SECRET_KEY)?.ok_or_else(|| missing(SECRET_KEY))?;
    let session_token = read_secret(env, SESSION_TOKEN)?;
    Ok(Credentials {
        // The SecretId is an identifier, not a secret: it appears in every Authorization header.
        secret_id: secret_id.expose().to_string(),
        secret_key,
        session_token,
    })
}

/// Credentials of the built-in stand-in: used by `endpoint = "builtin"` and `ccc-dialer mock`
/// when no credentials are in the environment. They open nothing but the stand-in.
pub fn demo() -> Credentials {
    Credentials {
        secret_id: "AKIDdemoDEMOdemoDEMOdemoDEMOdemo0000".into(),
        secret_key: Secret::new("demo-secret-key-for-the-built-in-stand-in"),
        session_token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_id_key_and_optional_token_from_the_environment() {
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            (SECRET_KEY, "k"),
            (SESSION_TOKEN, "t"),
        ]);
        let c = from_env(&e).unwrap();
        assert_eq!(c.secret_id, "AKIDx");
        assert_eq!(c.secret_key.expose(), "k");
        assert_eq!(c.session_token.unwrap().expose(), "t");
    }

    #[test]
    fn reads_the_key_from_a_file_and_trims_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "file-key\n").unwrap();
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", path.to_str().unwrap()),
        ]);
        let c = from_env(&e).unwrap();
        assert_eq!(c.secret_key.expose(), "file-key");
        assert!(c.session_token.is_none());
    }

    #[test]
    fn missing_both_or_unreadable_secrets_are_named() {
        let e = env(&[(SECRET_ID, "AKIDx")]);
        assert_eq!(
            from_env(&e).unwrap_err().to_string(),
            "TENCENTCLOUD_SECRET_KEY is not set\nhint: export TENCENTCLOUD_SECRET_KEY=… or point TENCENTCLOUD_SECRET_KEY_FILE at a file holding it"
        );
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            (SECRET_KEY, "k"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", "/x"),
        ]);
        assert!(matches!(from_env(&e), Err(CredentialsError::Both { .. })));
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", "/nonexistent/key"),
        ]);
        let msg = from_env(&e).unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "TENCENTCLOUD_SECRET_KEY_FILE = /nonexistent/key: cannot read the file"
            ),
            "{msg}"
        );
    }

    #[test]
    fn debug_output_of_credentials_hides_key_and_token() {
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            (SECRET_KEY, "very-secret"),
            (SESSION_TOKEN, "tok-secret"),
        ]);
        let c = from_env(&e).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
}
