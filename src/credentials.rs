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
    #[error("{name} is empty: expected a non-empty value\nhint: unset it, or give it a value")]
    Empty { name: String },
    #[error("{name}_FILE = {path}: larger than {max} bytes: not a secret file")]
    TooLarge {
        name: String,
        path: PathBuf,
        max: u64,
    },
}

/// The largest secret file read (a key is tens of bytes; `/dev/zero` must not fill memory).
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Read one secret value from `NAME` or `NAME_FILE`. `Ok(None)` if neither is set; a variable
/// set to nothing (or only spaces) is an error, never "not set": `CCC_DIALER_API_TOKEN=""`
/// must not quietly mean "no token".
pub fn read_secret(env: &dyn Env, name: &str) -> Result<Option<Secret>, CredentialsError> {
    let file_var = format!("{name}_FILE");
    let set = |var: &str| -> Result<Option<String>, CredentialsError> {
        match env.var(var) {
            Some(v) if v.trim().is_empty() => Err(CredentialsError::Empty {
                name: var.to_string(),
            }),
            other => Ok(other),
        }
    };
    let direct = set(name)?;
    let file = set(&file_var)?;
    let value = match (direct, file) {
        (Some(_), Some(_)) => {
            return Err(CredentialsError::Both {
                name: name.to_string(),
            })
        }
        (Some(v), None) => v,
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            read_secret_file(name, &path)?
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

/// At most [`MAX_SECRET_FILE`] bytes of UTF-8 text from `path`.
fn read_secret_file(name: &str, path: &std::path::Path) -> Result<String, CredentialsError> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| CredentialsError::Unreadable {
        name: name.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(CredentialsError::TooLarge {
            name: name.to_string(),
            path: path.to_path_buf(),
            max: MAX_SECRET_FILE,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}

/// The credentials for signing, or an error naming the missing variable.
pub fn from_env(env: &dyn Env) -> Result<Credentials, CredentialsError> {
    let missing = |name: &str| CredentialsError::Missing {
        name: name.to_string(),
    };
    let secret_id = read_secret(env, SECRET_ID)?.ok_or_else(|| missing(SECRET_ID))?;
    let secret_key = read_secret(env, SECRET_KEY)?.ok_or_else(|| missing(SECRET_KEY))?;
    // The SDKs' convention: an empty session token is no token (long-lived keys need none).
    let session_token = match read_secret(env, SESSION_TOKEN) {
        Err(CredentialsError::Empty { name }) if name == SESSION_TOKEN => None,
        other => other?,
    };
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
    fn an_endless_secret_file_is_refused_without_reading_it_all() {
        let e = env(&[
            (SECRET_ID, "AKIDx"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", "/dev/zero"),
        ]);
        assert_eq!(
            from_env(&e).unwrap_err().to_string(),
            "TENCENTCLOUD_SECRET_KEY_FILE = /dev/zero: larger than 65536 bytes: not a secret file"
        );
    }

    #[test]
    fn a_variable_set_to_nothing_is_an_error_not_unset() {
        for (var, value) in [
            (SECRET_KEY, ""),
            (SECRET_KEY, "  \n"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", ""),
        ] {
            let e = env(&[(SECRET_ID, "AKIDx"), (var, value)]);
            assert_eq!(
                from_env(&e).unwrap_err(),
                CredentialsError::Empty { name: var.into() },
                "{var}={value:?}"
            );
        }
        // An empty session token is no token, as the SDKs read it.
        let e = env(&[(SECRET_ID, "AKIDx"), (SECRET_KEY, "k"), (SESSION_TOKEN, "")]);
        assert!(from_env(&e).unwrap().session_token.is_none());
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
