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

impl StorageConfig {
    /// The `accounts` feature that builds this backend in.
    pub const fn feature(&self) -> &'static str {
        match self {
            StorageConfig::Embedded { .. } => "sqlite",
            StorageConfig::DynamoDb { .. } => "dynamodb",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTables {
    pub users: String,
    pub sessions: String,
    pub blacklist: String,
    pub throttle: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub storage: StorageConfig,
    /// HS256 signing key (bytes of `JWT_SECRET`, or the current key of the key set in Secrets
    /// Manager); also the key reset links and local upload URLs are derived from, so it is needed
    /// with EdDSA too.
    pub jwt_secret: Secret,
    /// The `kid` of `jwt_secret` that HS256 tokens carry: the key set's current key (none with
    /// `JWT_SECRET`, whose tokens carry no kid, as before).
    pub jwt_key_id: Option<String>,
    /// Retired secrets of the key set, by kid: their tokens and reset links still verify.
    pub previous_secrets: Vec<(String, Secret)>,
    /// Where the keys come from when `JWT_SECRET_ID` names a secret: read by [`Config::load_key_set`]
    /// once per process (a Lambda's cold start).
    pub key_set: Option<KeySetSource>,
    /// HS256 (default) or EdDSA with published public keys.
    pub signing: crate::domain::tokens::Signing,
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    /// How long a rotated refresh token still answers with the session's current pair
    /// (concurrent refreshes of mobile apps); 0 turns the grace off.
    pub refresh_reuse_grace: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub limits: crate::domain::throttle::Limits,
    /// Take the client address from the right-most `X-Forwarded-For` entry (only behind a proxy
    /// you run; API Gateway's own source IP is used otherwise).
    pub trust_x_forwarded_for: bool,
    /// Where avatars go and how they are bounded.
    pub media: MediaConfig,
    /// How e-mail goes out.
    pub mail: MailConfig,
    /// The password-reset e-mail and tokens.
    pub password_reset: PasswordResetConfig,
    /// The environment (`STAGE`: sandbox, dev, prod; `local` by default): the `Stage` dimension
    /// of the business metrics.
    pub stage: String,
    /// The old service's tokens during the cutover (`domain::legacy`); `None`: refused as ever.
    pub legacy_tokens: Option<LegacyTokensConfig>,
}

/// `LEGACY_JWT_SECRET` (locally) or the Secrets Manager secret `LEGACY_JWT_SECRET_ID` names (in
/// AWS, read at start like the key set), and `LEGACY_TOKENS_UNTIL`: one needs the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTokensConfig {
    /// The old service's Django `SECRET_KEY`; empty until read from `secret_id`.
    pub secret: Secret,
    /// Name or ARN of the secret whose `SecretString` is that key.
    pub secret_id: Option<String>,
    /// Endpoint URL of a Secrets Manager emulator (moto); unset in AWS.
    pub endpoint: Option<String>,
    /// Unix seconds: from then on legacy tokens are refused.
    pub until: i64,
}

/// Key material: compared and dereferenced like bytes, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
}

impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The Secrets Manager secret that holds the signing keys (`JWT_SECRET_ID`), as a key set:
///
/// ```json
/// {"current": "2026-02",
///  "keys": {"2026-02": {"secret": "<at least 32 bytes>", "ed25519": "<PKCS#8 PEM, with EdDSA>"},
///           "2026-01": {"secret": "..."}}}
/// ```
///
/// A key may also be just its secret string (`"2026-01": "..."`). The current key signs (its
/// name is the tokens' `kid`); the others only verify, until they are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetSource {
    /// Name or ARN of the secret.
    pub secret_id: String,
    /// Endpoint URL of a Secrets Manager emulator (moto); unset in AWS.
    pub endpoint: Option<String>,
    /// `JWT_KEYS_REVISION`: read by nothing but the start-up log. Changing it (the template's
    /// `JwtKeysRevision`) changes every function's configuration, so each starts afresh and
    /// reads the key set again: the step of a key rotation that makes every instance know a key.
    pub revision: Option<String>,
    /// Whether [`Config::load_key_set`] has read it.
    pub loaded: bool,
}

/// Outgoing e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub backend: MailBackend,
    /// The sender (`MAIL_FROM`): an address, or `Name <address>`; in SES a verified identity.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailBackend {
    /// One `.eml` file per message in `folder` (the local default: `<DATA_DIR>/outbox`).
    Outbox { folder: PathBuf },
    /// Amazon SES v2; `endpoint` points the SDK at an emulator (moto).
    Ses { endpoint: Option<String> },
}

/// The password-reset e-mail and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordResetConfig {
    /// The link in the e-mail, with `{uid}` and `{token}` placeholders. Absolute and configured,
    /// never derived from the request's Host header (a forged Host would send the token elsewhere).
    pub url: String,
    pub subject: String,
    /// The message, with `{link}` and `{username}` placeholders.
    pub text: String,
    /// How long a reset token stays valid.
    pub timeout: Duration,
    /// Every reset request answers after at least this long, so an address that has an account
    /// (an e-mail is sent) cannot be told by timing from one that has none.
    pub min_response: Duration,
}

pub const DEFAULT_MAIL_FROM: &str = "noreply@example.com";
pub const DEFAULT_RESET_URL: &str = "http://127.0.0.1:8000/password-reset/confirm/{uid}/{token}/";
pub const DEFAULT_RESET_SUBJECT: &str = "Password Reset Email";
/// The old service's message (allauth's template), with our placeholders.
pub const DEFAULT_RESET_TEXT: &str = "Hello!

You're receiving this email because you or someone else has requested a password reset for your user account.
It can be safely ignored if you did not request a password reset. Click the link below to reset your password.

{link}

In case you forgot, your username is {username}.

Thank you!
";

/// Media (avatar) storage and bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// The local media folder (`MEDIA_DIR`, default `<DATA_DIR>/media`): used when no bucket is set.
    pub folder: PathBuf,
    /// The S3 bucket (`MEDIA_BUCKET`); when set, media go there instead of the folder.
    pub bucket: Option<String>,
    /// Endpoint URL of an S3 emulator (moto); path-style addressing is used with it.
    pub s3_endpoint: Option<String>,
    /// The URL media keys are appended to (ends with `/`), e.g. `https://cdn.example.com/media/`;
    /// `None`: `<scheme>://<Host of the request>/media/`, as the old service did.
    pub base_url: Option<String>,
    /// Largest avatar file accepted, in bytes.
    pub avatar_max_bytes: usize,
    /// Longest side of a stored avatar, in pixels (larger images are scaled down).
    pub avatar_max_side: u32,
}

/// The largest request (and response) of a synchronous Lambda invocation: 6 MB (AWS Lambda
/// quotas), the whole event included. API Gateway's HTTP API takes bodies up to 10 MB, so in the
/// cloud this is the binding limit.
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// What the event holds besides the file: API Gateway's request context and headers (at most
/// 10 KB of headers on an HTTP API), the multipart boundaries, part headers and text fields.
pub const LAMBDA_EVENT_ALLOWANCE: usize = 32 * 1024;
/// The largest avatar a multipart upload can carry through API Gateway into a Lambda: API
/// Gateway base64-encodes a binary body (4 bytes for every 3), and the event must stay within
/// [`LAMBDA_PAYLOAD_LIMIT`]. 4 694 016 bytes; larger files only fit the direct upload's PUT to S3,
/// so `AVATAR_MAX_BYTES` above this is refused in Lambda (the template's `AvatarMaxBytes` has it
/// as its MaxValue).
pub const LAMBDA_AVATAR_MAX_BYTES: usize = (LAMBDA_PAYLOAD_LIMIT - LAMBDA_EVENT_ALLOWANCE) / 4 * 3;
/// `AVATAR_MAX_BYTES` when unset: 5 MiB (the old service's bound), in Lambda 4 MiB (under
/// [`LAMBDA_AVATAR_MAX_BYTES`]; the template's default too).
pub const DEFAULT_AVATAR_MAX_BYTES: usize = 5 * 1024 * 1024;
pub const DEFAULT_LAMBDA_AVATAR_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Shorter keys than this are refused outside local mode (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// The variables, with their defaults. `docs/operations.md` (Configuration) documents the same list.
pub mod vars {
    pub const STORAGE: &str = "STORAGE";
    pub const DATA_DIR: &str = "DATA_DIR";
    pub const DYNAMODB_ENDPOINT: &str = "DYNAMODB_ENDPOINT";
    pub const USERS_TABLE: &str = "USERS_TABLE";
    pub const SESSIONS_TABLE: &str = "SESSIONS_TABLE";
    pub const BLACKLIST_TABLE: &str = "BLACKLIST_TABLE";
    pub const THROTTLE_TABLE: &str = "THROTTLE_TABLE";
    pub const JWT_SECRET: &str = "JWT_SECRET";
    pub const JWT_SECRET_ID: &str = "JWT_SECRET_ID";
    pub const JWT_KEYS_REVISION: &str = "JWT_KEYS_REVISION";
    pub const SECRETS_MANAGER_ENDPOINT: &str = "SECRETS_MANAGER_ENDPOINT";
    pub const JWT_ALGORITHM: &str = "JWT_ALGORITHM";
    pub const JWT_PRIVATE_KEY: &str = "JWT_PRIVATE_KEY";
    pub const JWT_KEY_ID: &str = "JWT_KEY_ID";
    pub const JWT_PREVIOUS_KEYS: &str = "JWT_PREVIOUS_KEYS";
    pub const LEGACY_JWT_SECRET: &str = "LEGACY_JWT_SECRET";
    pub const LEGACY_JWT_SECRET_ID: &str = "LEGACY_JWT_SECRET_ID";
    pub const LEGACY_TOKENS_UNTIL: &str = "LEGACY_TOKENS_UNTIL";
    pub const ACCESS_TOKEN_LIFETIME: &str = "ACCESS_TOKEN_LIFETIME";
    pub const REFRESH_TOKEN_LIFETIME: &str = "REFRESH_TOKEN_LIFETIME";
    pub const REFRESH_REUSE_GRACE: &str = "REFRESH_REUSE_GRACE";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const THROTTLE_LOGIN_ACCOUNT: &str = "THROTTLE_LOGIN_ACCOUNT";
    pub const THROTTLE_LOGIN_IP: &str = "THROTTLE_LOGIN_IP";
    pub const THROTTLE_REGISTRATION_IP: &str = "THROTTLE_REGISTRATION_IP";
    pub const THROTTLE_RESET_IP: &str = "THROTTLE_RESET_IP";
    pub const THROTTLE_RESET_ADDRESS: &str = "THROTTLE_RESET_ADDRESS";
    pub const TRUST_X_FORWARDED_FOR: &str = "TRUST_X_FORWARDED_FOR";
    pub const MEDIA_DIR: &str = "MEDIA_DIR";
    pub const MEDIA_BUCKET: &str = "MEDIA_BUCKET";
    pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
    pub const MEDIA_BASE_URL: &str = "MEDIA_BASE_URL";
    pub const AVATAR_MAX_BYTES: &str = "AVATAR_MAX_BYTES";
    pub const AVATAR_MAX_SIDE: &str = "AVATAR_MAX_SIDE";
    pub const MAIL_BACKEND: &str = "MAIL_BACKEND";
    pub const OUTBOX_DIR: &str = "OUTBOX_DIR";
    pub const SES_ENDPOINT: &str = "SES_ENDPOINT";
    pub const MAIL_FROM: &str = "MAIL_FROM";
    pub const PASSWORD_RESET_URL: &str = "PASSWORD_RESET_URL";
    pub const PASSWORD_RESET_SUBJECT: &str = "PASSWORD_RESET_SUBJECT";
    pub const PASSWORD_RESET_TEXT: &str = "PASSWORD_RESET_TEXT";
    pub const PASSWORD_RESET_TIMEOUT: &str = "PASSWORD_RESET_TIMEOUT";
    pub const PASSWORD_RESET_MIN_RESPONSE_MS: &str = "PASSWORD_RESET_MIN_RESPONSE_MS";
    pub const STAGE: &str = "STAGE";
    /// Set by the Lambda runtime (never by us): the process runs in Lambda, under its payload limit.
    pub const AWS_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

    /// Every variable above (the template checks read this list).
    pub const ALL: &[&str] = &[
        STORAGE,
        DATA_DIR,
        DYNAMODB_ENDPOINT,
        USERS_TABLE,
        SESSIONS_TABLE,
        BLACKLIST_TABLE,
        THROTTLE_TABLE,
        JWT_SECRET,
        JWT_SECRET_ID,
        JWT_KEYS_REVISION,
        SECRETS_MANAGER_ENDPOINT,
        JWT_ALGORITHM,
        JWT_PRIVATE_KEY,
        JWT_KEY_ID,
        JWT_PREVIOUS_KEYS,
        LEGACY_JWT_SECRET,
        LEGACY_JWT_SECRET_ID,
        LEGACY_TOKENS_UNTIL,
        ACCESS_TOKEN_LIFETIME,
        REFRESH_TOKEN_LIFETIME,
        REFRESH_REUSE_GRACE,
        MAX_BODY_BYTES,
        THROTTLE_LOGIN_ACCOUNT,
        THROTTLE_LOGIN_IP,
        THROTTLE_REGISTRATION_IP,
        THROTTLE_RESET_IP,
        THROTTLE_RESET_ADDRESS,
        TRUST_X_FORWARDED_FOR,
        MEDIA_DIR,
        MEDIA_BUCKET,
        S3_ENDPOINT,
        MEDIA_BASE_URL,
        AVATAR_MAX_BYTES,
        AVATAR_MAX_SIDE,
        MAIL_BACKEND,
        OUTBOX_DIR,
        SES_ENDPOINT,
        MAIL_FROM,
        PASSWORD_RESET_URL,
        PASSWORD_RESET_SUBJECT,
        PASSWORD_RESET_TEXT,
        PASSWORD_RESET_TIMEOUT,
        PASSWORD_RESET_MIN_RESPONSE_MS,
        STAGE,
        AWS_LAMBDA_FUNCTION_NAME,
    ];
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
                    blacklist: get(vars::BLACKLIST_TABLE).unwrap_or_else(|| "accounts-blacklist".into()),
                    throttle: get(vars::THROTTLE_TABLE).unwrap_or_else(|| "accounts-throttle".into()),
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
        let key_set = get(vars::JWT_SECRET_ID).map(|secret_id| KeySetSource {
            secret_id: secret_id.trim().to_string(),
            endpoint: get(vars::SECRETS_MANAGER_ENDPOINT),
            revision: get(vars::JWT_KEYS_REVISION),
            loaded: false,
        });
        if key_set.is_some() {
            // One source of keys: the key set carries the secret, the kid and the Ed25519 keys.
            for name in [vars::JWT_SECRET, vars::JWT_PRIVATE_KEY, vars::JWT_KEY_ID, vars::JWT_PREVIOUS_KEYS] {
                if get(name).is_some() {
                    return Err(ConfigError::Invalid {
                        name,
                        why: format!("the keys come from {} (unset it)", vars::JWT_SECRET_ID),
                    });
                }
            }
        }
        let jwt_secret = match (get(vars::JWT_SECRET), &storage) {
            // Filled in by `load_key_set`.
            _ if key_set.is_some() => Vec::new(),
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
        let mail = mail_config(&get, &storage)?;
        let signing = signing(&get, key_set.is_some())?;
        let config = Config {
            storage,
            jwt_secret: Secret(jwt_secret),
            jwt_key_id: None,
            previous_secrets: Vec::new(),
            key_set,
            signing,
            access_lifetime: seconds(&get, vars::ACCESS_TOKEN_LIFETIME, 15 * 60)?,
            refresh_lifetime: seconds(&get, vars::REFRESH_TOKEN_LIFETIME, 7 * 24 * 3600)?,
            refresh_reuse_grace: Duration::from_secs(whole_number(&get, vars::REFRESH_REUSE_GRACE, 10, true)?),
            max_body_bytes: number(&get, vars::MAX_BODY_BYTES, 6 * 1024 * 1024)? as usize,
            limits: limits(&get)?,
            trust_x_forwarded_for: matches!(get(vars::TRUST_X_FORWARDED_FOR).as_deref(), Some("1" | "true" | "yes")),
            media: media_config(&get)?,
            mail,
            password_reset: password_reset_config(&get)?,
            stage: get(vars::STAGE).unwrap_or_else(|| "local".into()),
            legacy_tokens: legacy_tokens(&get)?,
        };
        config.check_legacy_secret()?;
        Ok(config)
    }

    /// A legacy secret equal to a signing key would let one key speak for both kinds of token.
    fn check_legacy_secret(&self) -> Result<(), ConfigError> {
        let Some(legacy) = self.legacy_tokens.as_ref().filter(|l| !l.secret.is_empty()) else { return Ok(()) };
        let ours = std::iter::once(&self.jwt_secret).chain(self.previous_secrets.iter().map(|(_, s)| s));
        if ours.into_iter().any(|s| **s == *legacy.secret) {
            return Err(ConfigError::Invalid {
                name: vars::LEGACY_JWT_SECRET,
                why: "it is a signing key of this service (the old service's key must stay apart)".into(),
            });
        }
        Ok(())
    }

    /// Takes the legacy secret read from `LEGACY_JWT_SECRET_ID` (its `SecretString`, the old
    /// service's Django `SECRET_KEY`, without surrounding white space).
    pub fn apply_legacy_secret(&mut self, text: &str) -> Result<(), ConfigError> {
        let Some(legacy) = self.legacy_tokens.as_mut() else { return Ok(()) };
        let secret = text.trim();
        if secret.is_empty() {
            return Err(ConfigError::Invalid { name: vars::LEGACY_JWT_SECRET_ID, why: "the secret is empty".into() });
        }
        legacy.secret = Secret(secret.as_bytes().to_vec());
        self.check_legacy_secret()
    }

    /// Reads the legacy secret of `LEGACY_JWT_SECRET_ID`, once (nothing to do without one).
    async fn load_legacy_secret(&mut self) -> Result<(), ConfigError> {
        let Some((secret_id, endpoint)) = self
            .legacy_tokens
            .as_ref()
            .filter(|l| l.secret.is_empty())
            .and_then(|l| Some((l.secret_id.clone()?, l.endpoint.clone())))
        else {
            return Ok(());
        };
        #[cfg(feature = "secrets-manager")]
        {
            let text = crate::secrets::secret_string(&secret_id, endpoint.as_deref())
                .await
                .map_err(|why| ConfigError::Invalid { name: vars::LEGACY_JWT_SECRET_ID, why })?;
            self.apply_legacy_secret(&text)
        }
        #[cfg(not(feature = "secrets-manager"))]
        {
            let _ = (secret_id, endpoint);
            Err(ConfigError::Invalid {
                name: vars::LEGACY_JWT_SECRET_ID,
                why: "this binary was built without the `secrets-manager` feature".into(),
            })
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.storage, StorageConfig::Embedded { .. })
    }

    /// Reads the key set of `JWT_SECRET_ID` from Secrets Manager, once (nothing to do without
    /// one, or when it was read). A function calls this at its cold start and keeps the keys for
    /// its lifetime; a changed secret reaches it at its next start (docs/design.md, signing keys).
    /// The legacy secret of `LEGACY_JWT_SECRET_ID` is read the same way, after it.
    pub async fn load_key_set(&mut self) -> Result<(), ConfigError> {
        self.load_signing_keys().await?;
        self.load_legacy_secret().await
    }

    async fn load_signing_keys(&mut self) -> Result<(), ConfigError> {
        let Some(source) = self.key_set.as_ref().filter(|s| !s.loaded) else { return Ok(()) };
        #[cfg(feature = "secrets-manager")]
        {
            let text = crate::secrets::secret_string(&source.secret_id, source.endpoint.as_deref())
                .await
                .map_err(|why| ConfigError::Invalid { name: vars::JWT_SECRET_ID, why })?;
            self.apply_key_set(&text)
        }
        #[cfg(not(feature = "secrets-manager"))]
        {
            let _ = source;
            Err(ConfigError::Invalid {
                name: vars::JWT_SECRET_ID,
                why: "this binary was built without the `secrets-manager` feature".into(),
            })
        }
    }

    /// Takes the keys from a key set (the JSON of [`KeySetSource`]). Errors name the problem,
    /// never a key.
    pub fn apply_key_set(&mut self, text: &str) -> Result<(), ConfigError> {
        use crate::domain::tokens::Signing;
        let invalid = |why: String| ConfigError::Invalid { name: vars::JWT_SECRET_ID, why };
        let set = KeySet::parse(text).map_err(invalid)?;
        let current = &set.keys[&set.current];
        if let Signing::EdDsa { .. } = self.signing {
            let Some(pem) = current.ed25519.clone() else {
                return Err(invalid(format!(
                    "JWT_ALGORITHM is EdDSA and key {:?} has no \"ed25519\" private key",
                    set.current
                )));
            };
            let mut retired = Vec::new();
            for (kid, key) in set.keys.iter().filter(|(kid, _)| **kid != set.current) {
                let Some(pem) = &key.ed25519 else { continue };
                retired.push(public_jwk(kid, pem).map_err(|why| invalid(format!("key {kid:?}: {why}")))?);
            }
            let previous_keys = serde_json::json!({ "keys": retired }).to_string();
            let signing = Signing::EdDsa {
                private_key_pem: pem,
                key_id: Some(set.current.clone()),
                previous_keys: Some(previous_keys),
            };
            crate::domain::tokens::TokenService::with_signing(
                &signing,
                b"",
                Duration::from_secs(1),
                Duration::from_secs(1),
            )
            .map_err(|e| invalid(format!("key {:?}: {e}", set.current)))?;
            self.signing = signing;
        }
        self.jwt_secret = current.secret.clone();
        self.previous_secrets = set
            .keys
            .iter()
            .filter(|(kid, _)| **kid != set.current)
            .map(|(kid, k)| (kid.clone(), k.secret.clone()))
            .collect();
        self.jwt_key_id = Some(set.current);
        if let Some(source) = &mut self.key_set {
            source.loaded = true;
        }
        self.check_legacy_secret()
    }

    /// Refuses to build anything on keys that were never loaded.
    pub fn keys_ready(&self) -> bool {
        !self.jwt_secret.is_empty()
            && self.key_set.as_ref().is_none_or(|s| s.loaded)
            && self.legacy_tokens.as_ref().is_none_or(|l| !l.secret.is_empty())
    }
}

/// The parsed key set (see [`KeySetSource`]).
struct KeySet {
    current: String,
    keys: std::collections::BTreeMap<String, KeyEntry>,
}

struct KeyEntry {
    secret: Secret,
    ed25519: Option<String>,
}

impl KeySet {
    fn parse(text: &str) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            current: String,
            keys: std::collections::BTreeMap<String, Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Secret(String),
            Key {
                secret: String,
                #[serde(default)]
                ed25519: Option<String>,
            },
        }
        // serde's messages may quote the offending value, which could be a key: report where only.
        let file: File = serde_json::from_str(text).map_err(|e| {
            format!(
                "the secret is not a key set {{\"current\": kid, \"keys\": {{kid: {{\"secret\": ...}}}}}} (JSON {:?} at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        let mut keys = std::collections::BTreeMap::new();
        for (kid, entry) in file.keys {
            if kid.is_empty()
                || kid.len() > 64
                || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!("kid {kid:?} is not 1 to 64 of A-Z a-z 0-9 . _ -"));
            }
            let (secret, ed25519) = match entry {
                Entry::Secret(secret) => (secret, None),
                Entry::Key { secret, ed25519 } => (secret, ed25519),
            };
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!("the secret of key {kid:?} is shorter than {MIN_SECRET_BYTES} bytes"));
            }
            keys.insert(kid, KeyEntry { secret: Secret(secret.into_bytes()), ed25519 });
        }
        if !keys.contains_key(&file.current) {
            return Err(format!("the current key {:?} is not in \"keys\"", file.current));
        }
        Ok(KeySet { current: file.current, keys })
    }
}

/// The public JWK (with its kid) of an Ed25519 private key in PKCS#8 PEM.
fn public_jwk(kid: &str, pem: &str) -> Result<jsonwebtoken::jwk::Jwk, String> {
    use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
    crate::jwt_crypto::install();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::EdDSA).map_err(|e| e.to_string())?;
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
    Ok(jwk)
}

/// `LEGACY_JWT_SECRET` or `LEGACY_JWT_SECRET_ID`, with `LEGACY_TOKENS_UNTIL` (RFC 3339).
fn legacy_tokens(get: &impl Fn(&str) -> Option<String>) -> Result<Option<LegacyTokensConfig>, ConfigError> {
    let (secret, secret_id) = (get(vars::LEGACY_JWT_SECRET), get(vars::LEGACY_JWT_SECRET_ID));
    let until = get(vars::LEGACY_TOKENS_UNTIL);
    let secret = match (secret, secret_id, until) {
        (None, None, None) => return Ok(None),
        (Some(_), Some(_), _) => {
            return Err(ConfigError::Invalid {
                name: vars::LEGACY_JWT_SECRET,
                why: format!("the secret comes from {} (unset it)", vars::LEGACY_JWT_SECRET_ID),
            })
        }
        (None, None, Some(_)) => return Err(ConfigError::Missing(vars::LEGACY_JWT_SECRET)),
        (_, _, None) => return Err(ConfigError::Missing(vars::LEGACY_TOKENS_UNTIL)),
        (secret, secret_id, Some(until)) => (secret, secret_id, until),
    };
    let (secret, secret_id, until) = secret;
    let until = chrono::DateTime::parse_from_rfc3339(until.trim()).map_err(|e| ConfigError::Invalid {
        name: vars::LEGACY_TOKENS_UNTIL,
        why: format!("{until:?} is not an RFC 3339 instant (2027-01-08T12:00:00Z): {e}"),
    })?;
    Ok(Some(LegacyTokensConfig {
        secret: Secret(secret.map(|s| s.trim().as_bytes().to_vec()).unwrap_or_default()),
        secret_id: secret_id.map(|s| s.trim().to_string()),
        endpoint: get(vars::SECRETS_MANAGER_ENDPOINT),
        until: until.timestamp(),
    }))
}

fn media_config(get: &impl Fn(&str) -> Option<String>) -> Result<MediaConfig, ConfigError> {
    let data_dir = PathBuf::from(get(vars::DATA_DIR).unwrap_or_else(|| "data".into()));
    let base_url = match get(vars::MEDIA_BASE_URL) {
        None => None,
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Some(format!("{}/", url.trim().trim_end_matches('/')))
        }
        Some(url) => {
            return Err(ConfigError::Invalid {
                name: vars::MEDIA_BASE_URL,
                why: format!("{url:?} is not an http(s) URL"),
            })
        }
    };
    let avatar_max_side = number(get, vars::AVATAR_MAX_SIDE, 1024)?;
    Ok(MediaConfig {
        folder: get(vars::MEDIA_DIR).map(PathBuf::from).unwrap_or_else(|| data_dir.join("media")),
        bucket: get(vars::MEDIA_BUCKET),
        s3_endpoint: get(vars::S3_ENDPOINT),
        base_url,
        avatar_max_bytes: avatar_max_bytes(get)?,
        avatar_max_side: u32::try_from(avatar_max_side).map_err(|_| ConfigError::Invalid {
            name: vars::AVATAR_MAX_SIDE,
            why: format!("{avatar_max_side} is too large"),
        })?,
    })
}

/// `AVATAR_MAX_BYTES`, bounded in Lambda by what a multipart upload can carry there.
fn avatar_max_bytes(get: &impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    let in_lambda = get(vars::AWS_LAMBDA_FUNCTION_NAME).is_some();
    let default = if in_lambda { DEFAULT_LAMBDA_AVATAR_MAX_BYTES } else { DEFAULT_AVATAR_MAX_BYTES };
    let bytes = number(get, vars::AVATAR_MAX_BYTES, default as u64)? as usize;
    if in_lambda && bytes > LAMBDA_AVATAR_MAX_BYTES {
        return Err(ConfigError::Invalid {
            name: vars::AVATAR_MAX_BYTES,
            why: format!(
                "{bytes} bytes: in Lambda a multipart upload of that file is about {} bytes base64-encoded, over the \
                 {LAMBDA_PAYLOAD_LIMIT}-byte invocation limit; at most {LAMBDA_AVATAR_MAX_BYTES}",
                bytes.div_ceil(3) * 4
            ),
        });
    }
    Ok(bytes)
}

fn mail_config(get: &impl Fn(&str) -> Option<String>, storage: &StorageConfig) -> Result<MailConfig, ConfigError> {
    let default_backend = match storage {
        StorageConfig::Embedded { .. } => "outbox",
        StorageConfig::DynamoDb { .. } => "ses",
    };
    let backend = match get(vars::MAIL_BACKEND).as_deref().unwrap_or(default_backend) {
        "outbox" => {
            let data_dir = PathBuf::from(get(vars::DATA_DIR).unwrap_or_else(|| "data".into()));
            MailBackend::Outbox {
                folder: get(vars::OUTBOX_DIR).map(PathBuf::from).unwrap_or_else(|| data_dir.join("outbox")),
            }
        }
        "ses" => MailBackend::Ses { endpoint: get(vars::SES_ENDPOINT) },
        other => {
            return Err(ConfigError::Invalid {
                name: vars::MAIL_BACKEND,
                why: format!("{other:?} is neither \"outbox\" nor \"ses\""),
            })
        }
    };
    let from = get(vars::MAIL_FROM).unwrap_or_else(|| DEFAULT_MAIL_FROM.into()).trim().to_string();
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::Invalid { name: vars::MAIL_FROM, why: format!("{from:?} is not an e-mail address") });
    }
    Ok(MailConfig { backend, from })
}

fn password_reset_config(get: &impl Fn(&str) -> Option<String>) -> Result<PasswordResetConfig, ConfigError> {
    let url = get(vars::PASSWORD_RESET_URL).unwrap_or_else(|| DEFAULT_RESET_URL.into()).trim().to_string();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || !url.contains("{uid}")
        || !url.contains("{token}")
    {
        return Err(ConfigError::Invalid {
            name: vars::PASSWORD_RESET_URL,
            why: format!("{url:?} is not an http(s) URL with {{uid}} and {{token}}"),
        });
    }
    let text = get(vars::PASSWORD_RESET_TEXT).unwrap_or_else(|| DEFAULT_RESET_TEXT.into());
    if !text.contains("{link}") {
        return Err(ConfigError::Invalid { name: vars::PASSWORD_RESET_TEXT, why: "it has no {link}".into() });
    }
    Ok(PasswordResetConfig {
        url,
        subject: get(vars::PASSWORD_RESET_SUBJECT).unwrap_or_else(|| DEFAULT_RESET_SUBJECT.into()),
        text,
        timeout: seconds(get, vars::PASSWORD_RESET_TIMEOUT, 3 * 24 * 3600)?,
        min_response: Duration::from_millis(whole_number(get, vars::PASSWORD_RESET_MIN_RESPONSE_MS, 800, true)?),
    })
}

fn signing(
    get: &impl Fn(&str) -> Option<String>,
    from_key_set: bool,
) -> Result<crate::domain::tokens::Signing, ConfigError> {
    use crate::domain::tokens::{Signing, TokenService};
    let signing = match get(vars::JWT_ALGORITHM).as_deref().unwrap_or("HS256") {
        "HS256" => return Ok(Signing::Hs256),
        // The key comes with the key set (`Config::apply_key_set`).
        "EdDSA" if from_key_set => {
            return Ok(Signing::EdDsa { private_key_pem: String::new(), key_id: None, previous_keys: None })
        }
        "EdDSA" => Signing::EdDsa {
            private_key_pem: get(vars::JWT_PRIVATE_KEY).ok_or(ConfigError::Missing(vars::JWT_PRIVATE_KEY))?,
            key_id: get(vars::JWT_KEY_ID),
            previous_keys: get(vars::JWT_PREVIOUS_KEYS),
        },
        other => {
            return Err(ConfigError::Invalid {
                name: vars::JWT_ALGORITHM,
                why: format!("{other:?} is neither HS256 nor EdDSA"),
            })
        }
    };
    // Refuse to start with keys that can't sign or verify.
    TokenService::with_signing(&signing, b"", Duration::from_secs(1), Duration::from_secs(1))
        .map_err(|e| ConfigError::Invalid { name: vars::JWT_PRIVATE_KEY, why: e.to_string() })?;
    Ok(signing)
}

fn limits(get: &impl Fn(&str) -> Option<String>) -> Result<crate::domain::throttle::Limits, ConfigError> {
    use crate::domain::throttle::{Limit, Limits};
    let read = |name: &'static str, default: Limit| match get(name) {
        None => Ok(default),
        Some(text) => Limit::parse(&text)
            .ok_or_else(|| ConfigError::Invalid { name, why: format!("{text:?} is not COUNT/SECONDS, e.g. 5/300") }),
    };
    let d = Limits::default();
    Ok(Limits {
        login_failures_per_account: read(vars::THROTTLE_LOGIN_ACCOUNT, d.login_failures_per_account)?,
        login_failures_per_ip: read(vars::THROTTLE_LOGIN_IP, d.login_failures_per_ip)?,
        registrations_per_ip: read(vars::THROTTLE_REGISTRATION_IP, d.registrations_per_ip)?,
        reset_requests_per_ip: read(vars::THROTTLE_RESET_IP, d.reset_requests_per_ip)?,
        reset_requests_per_address: read(vars::THROTTLE_RESET_ADDRESS, d.reset_requests_per_address)?,
    })
}

fn number(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    whole_number(get, name, default, false)
}

fn whole_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    zero_allowed: bool,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 || zero_allowed => Ok(n),
            _ => Err(ConfigError::Invalid { name, why: format!("{v:?} is not a positive whole number") }),
        },
    }
}

fn seconds(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    number(get, name, default).map(Duration::from_secs)
}

/// The local-mode signing key: read from `<data_dir>/jwt-dev-secret`, created on first use.
fn local_dev_secret(data_dir: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Write;
    let invalid = |why: String| ConfigError::Invalid { name: vars::DATA_DIR, why };
    crate::private_files::create_dir(data_dir).map_err(|e| invalid(format!("{}: {e}", data_dir.display())))?;
    let path = data_dir.join("jwt-dev-secret");
    let fresh: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    // create_new: of two processes starting at once, one writes and both read the same key.
    match crate::private_files::create_new(&path) {
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
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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

    const KEY_A: &str = "aaaaaaaa-key-a-aaaaaaaa-aaaaaaaa-aaaa";
    const KEY_B: &str = "bbbbbbbb-key-b-bbbbbbbb-bbbbbbbb-bbbb";

    #[test]
    fn legacy_tokens_need_a_secret_and_a_deadline_and_stay_apart_from_the_signing_keys() {
        const OLD: &str = "django-insecure-old-service-key";
        let until = ("LEGACY_TOKENS_UNTIL", "2027-01-15T12:00:00Z");
        let local = ("JWT_SECRET", KEY_A);
        assert_eq!(config(&[local]).unwrap().legacy_tokens, None, "nothing changes without them");
        let c = config(&[local, ("LEGACY_JWT_SECRET", OLD), until]).unwrap();
        let legacy = c.legacy_tokens.as_ref().unwrap();
        assert_eq!((&*legacy.secret, legacy.until), (OLD.as_bytes(), 1_800_014_400));
        assert!(!format!("{c:?}").contains(OLD), "Debug prints no key");
        assert_eq!(
            config(&[local, ("LEGACY_JWT_SECRET", OLD)]).unwrap_err(),
            ConfigError::Missing("LEGACY_TOKENS_UNTIL")
        );
        assert_eq!(config(&[local, until]).unwrap_err(), ConfigError::Missing("LEGACY_JWT_SECRET"));
        let bad = config(&[local, ("LEGACY_JWT_SECRET", OLD), ("LEGACY_TOKENS_UNTIL", "next week")]).unwrap_err();
        assert!(matches!(bad, ConfigError::Invalid { name: "LEGACY_TOKENS_UNTIL", .. }), "{bad:?}");
        let same = config(&[local, ("LEGACY_JWT_SECRET", KEY_A), until]).unwrap_err();
        assert!(matches!(same, ConfigError::Invalid { name: "LEGACY_JWT_SECRET", .. }), "{same:?}");
        // In AWS: read from its secret after the key set, which it may not repeat either.
        let cloud = [("STORAGE", "dynamodb"), ("JWT_SECRET_ID", "k"), ("LEGACY_JWT_SECRET_ID", "old"), until];
        let mut c = config(&cloud).unwrap();
        c.apply_key_set(&serde_json::json!({"current": "1", "keys": {"1": KEY_A, "0": KEY_B}}).to_string()).unwrap();
        assert!(!c.keys_ready(), "not before the legacy secret is read");
        let retired = c.clone().apply_legacy_secret(KEY_B).unwrap_err();
        assert!(matches!(retired, ConfigError::Invalid { name: "LEGACY_JWT_SECRET", .. }), "{retired:?}");
        c.apply_legacy_secret(&format!("{OLD}\n")).unwrap();
        assert!(c.keys_ready());
        assert_eq!(&*c.legacy_tokens.unwrap().secret, OLD.as_bytes());
    }

    #[test]
    fn key_set_from_the_secret_store() {
        let cloud = [("STORAGE", "dynamodb"), ("JWT_SECRET_ID", "accounts/dev/jwt-secret")];
        let mut c = config(&cloud).unwrap();
        assert!(!c.keys_ready(), "no keys until the secret is read");
        assert_eq!(c.key_set.as_ref().map(|k| k.secret_id.as_str()), Some("accounts/dev/jwt-secret"));
        let set = serde_json::json!({"current": "2026-02", "keys": {"2026-02": {"secret": KEY_B}, "2026-01": KEY_A}});
        c.apply_key_set(&set.to_string()).unwrap();
        assert!(c.keys_ready());
        assert_eq!(&*c.jwt_secret, KEY_B.as_bytes());
        assert_eq!(c.jwt_key_id.as_deref(), Some("2026-02"));
        assert_eq!(c.previous_secrets, vec![("2026-01".to_string(), Secret::new(KEY_A.into()))]);
        assert!(!format!("{c:?}").contains(KEY_B), "Debug prints no key");
        // JWT_SECRET and the key set together: which one signs? Refused.
        let both = config(&[cloud[0], cloud[1], ("JWT_SECRET", KEY_A)]).unwrap_err();
        assert!(matches!(both, ConfigError::Invalid { name: "JWT_SECRET", .. }), "{both:?}");
    }

    #[test]
    fn bad_key_sets_are_refused_without_showing_a_key() {
        let mut c = config(&[("STORAGE", "dynamodb"), ("JWT_SECRET_ID", "s")]).unwrap();
        for (bad, why) in [
            (KEY_A.to_string(), "not a key set"),
            (r#"{"current": "k1", "keys": {"k1": "short"}}"#.to_string(), "shorter than 32"),
            (format!(r#"{{"current": "k2", "keys": {{"k1": "{KEY_A}"}}}}"#), "\"k2\" is not in"),
            (format!(r#"{{"current": "k 1", "keys": {{"k 1": "{KEY_A}"}}}}"#), "is not 1 to 64"),
            (format!(r#"{{"current": "k1", "keys": {{"k1": {{"secret": 5, "x": "{KEY_A}"}}}}}}"#), "not a key set"),
            (format!(r#"{{"current": "k1", "keys": {{"k1": "{KEY_A}"}}, "extra": "{KEY_B}"}}"#), "not a key set"),
        ] {
            let e = c.apply_key_set(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains(KEY_A) && !e.contains(KEY_B), "{e}");
            assert!(!c.keys_ready());
        }
    }

    #[test]
    fn eddsa_keys_from_the_key_set() {
        use crate::domain::tokens::Signing;
        let cloud = [("STORAGE", "dynamodb"), ("JWT_SECRET_ID", "s"), ("JWT_ALGORITHM", "EdDSA")];
        let mut c = config(&cloud).unwrap();
        let (pem_1, pem_2) = (crate::domain::tokens::tests::ED_KEY_1, crate::domain::tokens::tests::ED_KEY_2);
        // Without an Ed25519 key for the current kid: refused.
        let hs_only = serde_json::json!({"current": "k1", "keys": {"k1": KEY_A}});
        assert!(c.apply_key_set(&hs_only.to_string()).unwrap_err().to_string().contains("no \"ed25519\""));
        let set = serde_json::json!({"current": "k2", "keys": {
            "k2": {"secret": KEY_B, "ed25519": pem_2},
            "k1": {"secret": KEY_A, "ed25519": pem_1},
        }});
        c.apply_key_set(&set.to_string()).unwrap();
        let Signing::EdDsa { private_key_pem, key_id, previous_keys } = &c.signing else { panic!("{:?}", c.signing) };
        assert_eq!((private_key_pem.as_str(), key_id.as_deref()), (pem_2, Some("k2")));
        let retired: serde_json::Value = serde_json::from_str(previous_keys.as_deref().unwrap()).unwrap();
        assert_eq!(retired["keys"][0]["kid"], "k1");
        assert!(retired["keys"][0].get("d").is_none(), "only the public half");
        assert!(!format!("{:?}", c.signing).contains("PRIVATE"), "Debug prints no key");
        // Both keys verify, the current one signs: rotation works the same as with HS256.
        let state_tokens = |c: &Config| {
            crate::domain::tokens::TokenService::with_signing(
                &c.signing,
                &c.jwt_secret,
                Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .unwrap()
        };
        let tokens = state_tokens(&c);
        assert_eq!(tokens.public_keys().keys.len(), 2);
        assert_eq!(tokens.key_id(), Some("k2"));
        // JWT_PRIVATE_KEY beside the key set is refused.
        assert!(config(&[cloud[0], cloud[1], cloud[2], ("JWT_PRIVATE_KEY", pem_1)]).is_err());
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
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt-dev-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is readable by this user only");
    }

    #[test]
    fn lifetimes_are_configurable_and_validated() {
        let c =
            config(&[("JWT_SECRET", "x"), ("ACCESS_TOKEN_LIFETIME", "60"), ("REFRESH_TOKEN_LIFETIME", "120")]).unwrap();
        assert_eq!(c.access_lifetime, Duration::from_secs(60));
        assert_eq!(c.refresh_lifetime, Duration::from_secs(120));
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
        let no_grace = config(&[("JWT_SECRET", "x"), ("REFRESH_REUSE_GRACE", "0")]).unwrap();
        assert_eq!(no_grace.refresh_reuse_grace, Duration::ZERO);
        assert!(config(&[("JWT_SECRET", "x"), ("ACCESS_TOKEN_LIFETIME", "soon")]).is_err());
        assert!(config(&[("STORAGE", "postgres")]).is_err());
    }

    #[test]
    fn mail_and_password_reset_defaults_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let c = config(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(c.mail.backend, MailBackend::Outbox { folder: dir.path().join("outbox") });
        assert_eq!(c.mail.from, DEFAULT_MAIL_FROM);
        assert_eq!(c.password_reset.url, DEFAULT_RESET_URL);
        assert_eq!(c.password_reset.timeout, Duration::from_secs(259_200));
        assert_eq!(c.password_reset.min_response, Duration::from_millis(800));
        let cloud = config(&[("STORAGE", "dynamodb"), ("JWT_SECRET", &"k".repeat(32))]).unwrap();
        assert_eq!(cloud.mail.backend, MailBackend::Ses { endpoint: None });
        let c = config(&[
            ("DATA_DIR", d),
            ("MAIL_BACKEND", "ses"),
            ("SES_ENDPOINT", "http://127.0.0.1:5000"),
            ("MAIL_FROM", "Accounts <accounts@example.org>"),
            ("PASSWORD_RESET_URL", "https://app.example.org/reset?u={uid}&t={token}"),
            ("PASSWORD_RESET_SUBJECT", "Reset"),
            ("PASSWORD_RESET_TEXT", "Hi {username}: {link}"),
            ("PASSWORD_RESET_TIMEOUT", "60"),
            ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
        ])
        .unwrap();
        assert_eq!(c.mail.backend, MailBackend::Ses { endpoint: Some("http://127.0.0.1:5000".into()) });
        assert_eq!(c.mail.from, "Accounts <accounts@example.org>");
        assert_eq!(c.password_reset.subject, "Reset");
        assert_eq!(c.password_reset.text, "Hi {username}: {link}");
        assert_eq!(c.password_reset.timeout, Duration::from_secs(60));
        assert_eq!(c.password_reset.min_response, Duration::ZERO);
        for bad in [
            ("MAIL_BACKEND", "smtp"),
            ("MAIL_FROM", "not an address"),
            ("PASSWORD_RESET_URL", "https://app.example.org/reset/{uid}/"),
            ("PASSWORD_RESET_URL", "/password-reset/confirm/{uid}/{token}/"),
            ("PASSWORD_RESET_TEXT", "no link here"),
            ("PASSWORD_RESET_TIMEOUT", "0"),
        ] {
            assert!(config(&[("DATA_DIR", d), bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn media_defaults_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let c = config(&[("DATA_DIR", d)]).unwrap();
        assert_eq!(c.media.folder, dir.path().join("media"));
        assert_eq!((c.media.bucket.as_deref(), c.media.base_url.as_deref()), (None, None));
        assert_eq!((c.media.avatar_max_bytes, c.media.avatar_max_side), (5 * 1024 * 1024, 1024));
        let c = config(&[
            ("DATA_DIR", d),
            ("MEDIA_BUCKET", "b"),
            ("MEDIA_BASE_URL", "https://cdn.example.com/media"),
            ("AVATAR_MAX_BYTES", "1000"),
            ("AVATAR_MAX_SIDE", "64"),
        ])
        .unwrap();
        assert_eq!(c.media.bucket.as_deref(), Some("b"));
        assert_eq!(c.media.base_url.as_deref(), Some("https://cdn.example.com/media/"));
        assert_eq!((c.media.avatar_max_bytes, c.media.avatar_max_side), (1000, 64));
        assert!(config(&[("DATA_DIR", d), ("MEDIA_BASE_URL", "cdn.example.com")]).is_err());
        assert!(config(&[("DATA_DIR", d), ("AVATAR_MAX_SIDE", "0")]).is_err());
    }

    /// In Lambda an avatar must fit a multipart upload through API Gateway (base64, 4/3) into the
    /// 6 MB invocation payload: a larger AVATAR_MAX_BYTES is refused at start, not met by 413s.
    #[test]
    fn avatar_bound_fits_the_lambda_payload_limit() {
        let lambda = |bytes: Option<&str>| {
            let mut pairs = vec![
                ("STORAGE", "dynamodb"),
                ("JWT_SECRET", "k".repeat(32).leak() as &str),
                ("AWS_LAMBDA_FUNCTION_NAME", "profile"),
            ];
            pairs.extend(bytes.map(|b| ("AVATAR_MAX_BYTES", b)));
            config(&pairs).map(|c| c.media.avatar_max_bytes)
        };
        assert_eq!(LAMBDA_AVATAR_MAX_BYTES, 4_694_016);
        // The whole event: the base64 of the largest file and the allowance, within 6 MB.
        assert!(LAMBDA_AVATAR_MAX_BYTES.div_ceil(3) * 4 + LAMBDA_EVENT_ALLOWANCE <= LAMBDA_PAYLOAD_LIMIT);
        assert_eq!(lambda(None), Ok(4 * 1024 * 1024));
        assert_eq!(lambda(Some("4694016")), Ok(4_694_016));
        let over = lambda(Some("5242880")).unwrap_err();
        assert!(
            matches!(&over, ConfigError::Invalid { name: "AVATAR_MAX_BYTES", why } if why.contains("at most 4694016")),
            "{over}"
        );
        assert!(lambda(Some("4694017")).is_err());
        // Outside Lambda (the local server) there is no such limit.
        let dir = tempfile::tempdir().unwrap();
        let local = config(&[("DATA_DIR", dir.path().to_str().unwrap()), ("AVATAR_MAX_BYTES", "20000000")]).unwrap();
        assert_eq!(local.media.avatar_max_bytes, 20_000_000);
    }
}
