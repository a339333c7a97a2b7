//! The AWS SDK configuration every client shares: credentials and region, bounded timeouts and
//! one retry, so a broken backend fails a request in seconds instead of hanging it; `endpoint`
//! points the client at an emulator (moto).
//!
//! HTTPS goes through rustls on `ring`, the same crypto as the JWTs, so a function links one
//! crypto library instead of two (aws-lc is the SDK's default).
//!
//! Credentials: a Lambda function reads the ones its runtime puts in the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, region `AWS_REGION`), and
//! links nothing else. With the `aws-credential-chain` feature (the local server and the tools)
//! the SDK's whole default chain applies: profiles, SSO, web identity, container, IMDS.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;

/// Where no region is configured (the emulator does not care).
const FALLBACK_REGION: &str = "us-east-1";

/// The time one attempt of a call may take, and the call with its retry.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub attempt: Duration,
    pub operation: Duration,
}

pub async fn sdk_config(endpoint: Option<&str>, timeouts: Timeouts) -> SdkConfig {
    let settings = Settings {
        endpoint: endpoint.map(str::to_string),
        http_client: https_client(),
        timeouts: TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(timeouts.attempt)
            .operation_timeout(timeouts.operation)
            .build(),
        retry: RetryConfig::standard().with_max_attempts(2),
    };
    configure(settings).await
}

/// One HTTPS client (connection pool, TLS configuration, root certificates) for every AWS client
/// of the process: a function that talks to DynamoDB and S3 sets it up once at its cold start.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    static CLIENT: std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).tls_context(tls_context()).build_https()
        })
        .clone()
}

/// The roots of Amazon Trust Services, compiled in (`shared/data/amazon-trust-roots.pem`): every
/// AWS endpoint's certificate chains to one of them.
pub(crate) const AMAZON_TRUST_ROOTS_PEM: &str = include_str!("../data/amazon-trust-roots.pem");

/// Which roots the HTTPS client trusts. In Lambda (`AWS_LAMBDA_FUNCTION_NAME` set, as config.rs
/// tells Lambda apart too), Amazon's roots only, compiled in: the SDK builds its connector when a
/// client is created, at the cold start, and loading the system's store there read some 150 files
/// and parsed every certificate, 4-9 ms of each cold start (docs/benchmarks.md). Elsewhere (the
/// local server, the tools) the system's store, which may hold a proxy's or a company's root.
fn tls_context() -> aws_smithy_http_client::tls::TlsContext {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    let trust_store = if std::env::var_os(crate::config::vars::AWS_LAMBDA_FUNCTION_NAME).is_some() {
        TrustStore::empty().with_pem_certificate(AMAZON_TRUST_ROOTS_PEM.as_bytes())
    } else {
        TrustStore::default()
    };
    TlsContext::builder().with_trust_store(trust_store).build().expect("a TLS context from valid roots")
}

/// What every client gets, whichever way its credentials come.
struct Settings {
    endpoint: Option<String>,
    http_client: aws_smithy_runtime_api::client::http::SharedHttpClient,
    timeouts: TimeoutConfig,
    retry: RetryConfig,
}

#[cfg(feature = "aws-credential-chain")]
async fn configure(settings: Settings) -> SdkConfig {
    // The loader's own region chain (a standalone one would build its IMDS client without
    // this HTTP client), then the fallback.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(settings.http_client)
        .timeout_config(settings.timeouts)
        .retry_config(settings.retry);
    if let Some(endpoint) = settings.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    if config.region().is_some() {
        config
    } else {
        config.into_builder().region(aws_config::Region::new(FALLBACK_REGION)).build()
    }
}

#[cfg(not(feature = "aws-credential-chain"))]
async fn configure(settings: Settings) -> SdkConfig {
    use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
    use aws_config::meta::region::ProvideRegion;
    use aws_credential_types::provider::SharedCredentialsProvider;
    let region = EnvironmentVariableRegionProvider::new()
        .region()
        .await
        .unwrap_or_else(|| aws_config::Region::new(FALLBACK_REGION));
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(settings.http_client)
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()))
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("the tokio sleep of rt-tokio"))
        .time_source(aws_smithy_async::time::SharedTimeSource::default())
        .timeout_config(settings.timeouts)
        .retry_config(settings.retry);
    if let Some(endpoint) = settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    /// The compiled-in roots parse as the SDK parses them (it panics on a bad one, at the cold
    /// start): five CA certificates, each accepted as a trust anchor.
    #[test]
    fn amazon_trust_roots_are_valid_anchors() {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(super::AMAZON_TRUST_ROOTS_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).expect("a trust anchor");
        }
        assert_eq!(roots.len(), 5);
    }
}
