//! Configuration: every environment variable the service reads, in one place.

use std::path::PathBuf;
use std::time::Duration;

/// Where accounts are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// SQLite file under `data_dir` (the local default).
    Embedded { data_dir: PathBuf },
    /// DynamoDB tables; `endpoint` points the SDK at an emulator (moto) when set.
    DynamoDb { tables: DynamoTables, endpoint: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTables {
    pub users: String,
    pub sessions: String,
    pub blacklist: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub storage: StorageConfig,
    /// HS256 signing key (bytes of `JWT_SECRET`).
    pub jwt_secret: Vec<u8>,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// Shorter keys than this are refused outside local mode (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// The variables, with their defaults. `README.md` documents the same list.
pub mod vars {
    pub const STORAGE: &str = "STORAGE";
    pub const DATA_DIR: &str = "DATA_DIR";
    pub const DYNAMODB_ENDPOINT: &str = "DYNAMODB_ENDPOINT";
    pub const USERS_TABLE: &str = "USERS_TABLE";
    pub const SESSIONS_TABLE: &str = "SESSIONS_TABLE";
    pub const BLACKLIST_TABLE: &str = "BLACKLIST_TABLE";
    pub const JWT_SECRET: &str = "JWT_SECRET";
    pub const ACCESS_TOKEN_LIFETIME: &str = "ACCESS_TOKEN_LIFETIME";
    pub const REFRESH_TOKEN_LIFETIME: &str = "REFRESH_TOKEN_LIFETIME";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let storage = match get(vars::STORAGE).as_deref().unwrap_or("embedded") {
            "embedded" | "sqlite" => StorageConfig::Embedded {
                data_dir: PathBuf::from(get(vars::DATA_DIR).unwrap_or_else(|| "data".into())),
            },
            "dynamodb" => StorageConfig::DynamoDb {
                tables: DynamoTables {
                    users: get(vars::USERS_TABLE).unwrap_or_else(|| "accounts-users".into()),
                    sessions: get(vars::SESSIONS_TABLE).unwrap_or_else(|| "accounts-sessions".into()),
                    blacklist: get(vars::BLACKLIST_TABLE)
                        .unwrap_or_else(|| "accounts-blacklist".into()),
                },
                endpoint: get(vars::DYNAMODB_ENDPOINT),
            },
            other => {
                return Err(ConfigError::Invalid {
                    name: vars::STORAGE,
                    why: format!("{other:?} is neither \"embedded\" nor \"dynamodb\""),
                })
            }
        };
        let jwt_secret = match (get(vars::JWT_SECRET), &storage) {
            (Some(secret), _) if secret.len() >= MIN_SECRET_BYTES => secret.into_bytes(),
            (Some(_), StorageConfig::DynamoDb { .. }) => {
                return Err(ConfigError::Invalid {
                    name: vars::JWT_SECRET,
                    why: format!("shorter than {MIN_SECRET_BYTES} bytes"),
                })
            }
            (None, StorageConfig::DynamoDb { .. }) => return Err(ConfigError::Missing(vars::JWT_SECRET)),
            // Local mode: a short key is allowed for experiments; none at all means a random key
            // kept in the data folder, so every local process (server, `cargo lambda watch`) agrees.
            (Some(secret), StorageConfig::Embedded { .. }) => secret.into_bytes(),
            (None, StorageConfig::Embedded { data_dir }) => local_dev_secret(data_dir)?,
        };
        Ok(Config {
            storage,
            jwt_secret,
            access_lifetime: seconds(&get, vars::ACCESS_TOKEN_LIFETIME, 15 * 60)?,
            refresh_lifetime: seconds(&get, vars::REFRESH_TOKEN_LIFETIME, 7 * 24 * 3600)?,
            max_body_bytes: number(&get, vars::MAX_BODY_BYTES, 6 * 1024 * 1024)? as usize,
        })
    }

    pub fn is_local(&self) -> bool {
        matches!(self.storage, StorageConfig::Embedded { .. })
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid { name, why: format!("{v:?} is not a positive whole number") }),
        },
    }
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    number(get, name, default).map(Duration::from_secs)
}

/// The local-mode signing key: read from `<data_dir>/jwt-dev-secret`, created on first use.
fn local_dev_secret(data_dir: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Write;
    let invalid = |why: String| ConfigError::Invalid { name: vars::DATA_DIR, why };
    std::fs::create_dir_all(data_dir).map_err(|e| invalid(format!("{}: {e}", data_dir.display())))?;
    let path = data_dir.join("jwt-dev-secret");
    let fresh: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    // create_new: of two processes starting at once, one writes and both read the same key.
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(invalid(format!("{}: {e}", path.display()))),
    }
    for _ in 0..50 {
        let key = std::fs::read(&path).map_err(|e| invalid(e.to_string()))?;
        if key.len() >= MIN_SECRET_BYTES {
            return Ok(key);
        }
        // Another process created the file and is still writing it.
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(invalid(format!("{} holds no usable key", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn dynamodb_refuses_missing_or_short_secret() {
        assert_eq!(config(&[("STORAGE", "dynamodb")]).unwrap_err(), ConfigError::Missing("JWT_SECRET"));
        let short = config(&[("STORAGE", "dynamodb"), ("JWT_SECRET", "short")]).unwrap_err();
        assert!(matches!(short, ConfigError::Invalid { name: "JWT_SECRET", .. }));
        let ok = config(&[("STORAGE", "dynamodb"), ("JWT_SECRET", &"k".repeat(32))]).unwrap();
        assert_eq!(ok.access_lifetime, Duration::from_secs(900));
        assert_eq!(ok.refresh_lifetime, Duration::from_secs(604_800));
        assert!(!ok.is_local());
    }

    #[test]
    fn local_mode_keeps_one_generated_secret_per_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let a = config(&[("DATA_DIR", d)]).unwrap();
        let b = config(&[("DATA_DIR", d)]).unwrap();
        assert!(a.is_local());
        assert_eq!(a.jwt_secret, b.jwt_secret);
        assert_eq!(a.jwt_secret.len(), 64);
    }

    #[test]
    fn lifetimes_are_configurable_and_validated() {
        let c = config(&[("JWT_SECRET", "x"), ("ACCESS_TOKEN_LIFETIME", "60"), ("REFRESH_TOKEN_LIFETIME", "120")]).unwrap();
        assert_eq!(c.access_lifetime, Duration::from_secs(60));
        assert_eq!(c.refresh_lifetime, Duration::from_secs(120));
        assert!(config(&[("JWT_SECRET", "x"), ("ACCESS_TOKEN_LIFETIME", "soon")]).is_err());
        assert!(config(&[("STORAGE", "postgres")]).is_err());
    }
}
