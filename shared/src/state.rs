//! What every request handler shares, built once per process (once per Lambda cold start): the
//! one place where the configured backends are opened (store, media, mail) and wired together.

use std::sync::Arc;

#[cfg_attr(not(any(feature = "sqlite", feature = "dynamodb")), allow(unused_imports))]
use crate::config::{Config, StorageConfig};
use crate::domain::legacy::LegacyTokens;
use crate::domain::reset_token::ResetTokens;
use crate::domain::tokens::TokenService;
use crate::mail::SharedMailer;
use crate::media::folder::FolderMedia;
use crate::media::SharedMedia;
use crate::store::{SharedStore, StoreError};

/// Cloned for every request (axum's `State`, each middleware with state): one reference count
/// to move, not one per part (six atomic updates each way on a cache line both cores share were
/// 3 % of a profile GET's CPU, issue 17).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

#[derive(Clone)]
pub struct AppStateInner {
    pub store: SharedStore,
    pub tokens: Arc<TokenService>,
    pub config: Arc<Config>,
    /// Avatars: the S3 bucket or the local media folder.
    pub media: SharedMedia,
    /// E-mail: SES or the local outbox folder.
    pub mailer: SharedMailer,
    pub reset_tokens: Arc<ResetTokens>,
}

impl AppState {
    /// With the local media folder of `config` (`from_config` opens the bucket when one is set).
    pub fn new(store: SharedStore, config: Config) -> Self {
        let media = FolderMedia::new(&config.media.folder, &config.jwt_secret);
        Self::with_media(store, Arc::new(media), config)
    }

    pub fn with_media(store: SharedStore, media: SharedMedia, config: Config) -> Self {
        assert!(
            config.keys_ready(),
            "the key set of JWT_SECRET_ID (or the legacy secret) was not loaded (Config::load_key_set)"
        );
        let previous = || config.previous_secrets.iter().map(|(kid, secret)| (kid.as_str(), &**secret));
        let tokens = TokenService::with_signing(
            &config.signing,
            &config.jwt_secret,
            config.access_lifetime,
            config.refresh_lifetime,
        )
        .expect("Config::from_lookup checked the signing keys")
        .with_hs256_keys(&config.jwt_secret, config.jwt_key_id.as_deref(), previous())
        .with_legacy(config.legacy_tokens.as_ref().map(|l| LegacyTokens::new(&l.secret, l.until)));
        let mailer = open_mailer(&config.mail);
        let reset_tokens = ResetTokens::new(&config.jwt_secret, config.password_reset.timeout.as_secs())
            .with_previous(previous().map(|(_, secret)| secret));
        Self(Arc::new(AppStateInner {
            store,
            tokens: Arc::new(tokens),
            config: Arc::new(config),
            media,
            mailer,
            reset_tokens: Arc::new(reset_tokens),
        }))
    }

    /// A copy with some parts replaced (tests put doubles around the configured backends).
    pub fn changed(&self, change: impl FnOnce(&mut AppStateInner)) -> Self {
        let mut inner = (*self.0).clone();
        change(&mut inner);
        Self(Arc::new(inner))
    }

    /// Opens the configured store (the SDK client is built here, once). (Built with no store at
    /// all, as a static page's function is, it can only refuse.)
    #[cfg_attr(not(any(feature = "sqlite", feature = "dynamodb")), allow(unreachable_code, unused_variables))]
    pub async fn from_config(mut config: Config) -> Result<Self, StoreError> {
        // The signing keys first (Secrets Manager, when JWT_SECRET_ID names a secret).
        config.load_key_set().await.map_err(|e| StoreError::Backend(e.to_string()))?;
        let store: SharedStore = match &config.storage {
            #[cfg(feature = "sqlite")]
            StorageConfig::Embedded { data_dir } => Arc::new(crate::store::sqlite::SqliteStore::open(data_dir)?),
            #[cfg(feature = "dynamodb")]
            StorageConfig::DynamoDb { tables, endpoint } => {
                let client = crate::store::dynamodb::client(endpoint.as_deref()).await;
                Arc::new(crate::store::dynamodb::DynamoStore::new(client, tables.clone()))
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(StoreError::Backend(format!(
                    "this {} store needs the `{}` feature, which this binary was built without",
                    crate::config::vars::STORAGE,
                    config.storage.feature(),
                )))
            }
        };
        let media = open_media(&config).await.map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self::with_media(store, media, config))
    }
}

/// Opens the configured media store: the bucket when `MEDIA_BUCKET` is set, else the folder
/// (the import tool copies avatars into it too).
pub async fn open_media(config: &Config) -> crate::media::MediaResult<SharedMedia> {
    match &config.media.bucket {
        #[cfg(feature = "s3")]
        Some(bucket) => {
            let client = crate::media::s3::client(config.media.s3_endpoint.as_deref()).await;
            Ok(Arc::new(crate::media::s3::S3Media::new(client, bucket.clone())))
        }
        #[cfg(not(feature = "s3"))]
        Some(_) => Err(crate::media::MediaError::Backend(format!(
            "{} is set, but this binary was built without the `s3` feature",
            crate::config::vars::MEDIA_BUCKET
        ))),
        None => Ok(Arc::new(FolderMedia::new(&config.media.folder, &config.jwt_secret))),
    }
}

/// The configured backend.
fn open_mailer(config: &crate::config::MailConfig) -> SharedMailer {
    match &config.backend {
        crate::config::MailBackend::Outbox { folder } => Arc::new(crate::mail::outbox::OutboxMailer::new(folder)),
        #[cfg(feature = "ses")]
        crate::config::MailBackend::Ses { endpoint } => Arc::new(crate::mail::ses::SesMailer::new(endpoint.clone())),
        // Every function of a cloud deployment is configured for SES; only the one that sends
        // mail is built with it (and refuses to start without it: `lambda::missing_features`).
        #[cfg(not(feature = "ses"))]
        crate::config::MailBackend::Ses { .. } => Arc::new(crate::mail::NotBuiltIn),
    }
}
