//! What each function's `main` runs: configuration, state, then the Lambda runtime.

use crate::config::{Config, MailBackend};
use crate::http::Endpoint;
use crate::state::AppState;
use crate::telemetry;

pub use lambda_http::Error;

/// Logs for CloudWatch: JSON lines (plain text when `LOG_FORMAT=text`), level from `RUST_LOG`.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let result = if std::env::var("LOG_FORMAT").as_deref() == Ok("text") {
        let layer = tracing_subscriber::fmt::layer().with_target(false);
        tracing_subscriber::registry().with(layer.with_filter(filter)).try_init()
    } else {
        tracing_subscriber::registry().with(json_layer(std::io::stdout).with_filter(filter)).try_init()
    };
    let _ = result; // already initialised (tests): keep the first subscriber
}

/// The JSON log format, writing to `writer`. Every line carries the fields of its innermost span
/// under `span`: inside a request that is the `request` span of `http::logging::RequestSpanLayer`
/// (API Gateway's and Lambda's request ids), so each line joins the API's access log. The list
/// of all spans is left out: the runtime's own span only repeats the Lambda request id.
pub fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_target(false)
        .json()
        .without_time()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
}

/// `RUST_LOG` as `level` or `target=level` directives separated by commas (`info`,
/// `accounts=debug,warn`): `Targets` rather than `EnvFilter`, whose regex engine would add a
/// few hundred KB to every function. Unset or unreadable: `info`.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Serves one endpoint as a Lambda function. Always inlined into the function's `main`, where
/// `endpoint` is a constant, so only that endpoint's handlers are linked (`routes::handlers`).
///
/// Every `main` runs it on tokio's current-thread runtime: Lambda hands an instance one event
/// at a time, so worker threads would only be started at each cold start and then sit idle
/// (password hashes and image work still run on the blocking pool, `domain::password::blocking`).
#[inline(always)]
pub fn serve(endpoint: Endpoint) -> impl std::future::Future<Output = Result<(), Error>> {
    serve_methods(endpoint, crate::http::routes::handlers(endpoint))
}

async fn serve_methods(endpoint: Endpoint, methods: axum::routing::MethodRouter<AppState>) -> Result<(), Error> {
    init_tracing();
    if endpoint.needs().static_page {
        // HTML from the binary: no configuration, store or keys to read, no AWS call to make.
        tracing::info!(function = endpoint.function(), "starting");
        let router = crate::http::page_router(&[endpoint]).fallback(|| async { crate::error::Error::NotFound });
        return lambda_http::run(router).await;
    }
    let config = Config::from_env()?;
    if let Some(missing) = missing_feature(endpoint, &config) {
        return Err(format!("{} cannot serve {}: {missing}", endpoint.function(), endpoint.path()).into());
    }
    run(endpoint.function(), config, |state| crate::http::routes::endpoint_router(endpoint, methods, state)).await
}

/// Serves the API's catch-all route (`$default`): the contract's JSON 404 and 405
/// (`crate::http::catch_all_router`).
pub async fn serve_catch_all() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    run(crate::http::CATCH_ALL_FUNCTION, config, crate::http::catch_all_router).await
}

async fn run(function: &str, mut config: Config, router: impl FnOnce(AppState) -> axum::Router) -> Result<(), Error> {
    // Once per cold start; the keys stay in memory for the life of this instance.
    config.load_key_set().await?;
    let local = config.is_local();
    let state = AppState::from_config(config).await?;
    if local {
        // No cron job on a laptop: an embedded store is tidied at every cold start.
        if let Err(e) = state.store.purge_expired(crate::domain::now()).await {
            tracing::warn!(error = %e, "purge of expired tokens failed");
        }
    }
    telemetry::init_emf(&state.config.stage, function)?;
    // The kid and the revision, never a key: which keys this instance signs with.
    let revision = state.config.key_set.as_ref().and_then(|k| k.revision.as_deref());
    // During a cutover, until when the old service's tokens are accepted (never its key).
    let legacy_tokens_until = state.config.legacy_tokens.as_ref().map(|l| l.until);
    tracing::info!(function, kid = state.tokens.key_id(), keys_revision = revision, legacy_tokens_until, "starting");
    lambda_http::run(router(state).layer(axum::middleware::from_fn(flush_metrics))).await
}

/// Writes the request's business metrics (EMF lines on stdout) once it is answered.
async fn flush_metrics(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let response = next.run(req).await;
    telemetry::flush(std::io::stdout());
    response
}

/// What this binary lacks to serve `endpoint` as configured: a backend its function crate did not
/// build in (each Lambda links only what its endpoint needs, see `Endpoint::needs`). The store and
/// the bucket are checked when they are opened.
pub fn missing_feature(endpoint: Endpoint, config: &Config) -> Option<String> {
    let needs = endpoint.needs();
    if needs.images && !cfg!(feature = "images") {
        return Some("it processes uploaded images, and this binary was built without the `images` feature".into());
    }
    if needs.openapi && !cfg!(feature = "openapi") {
        return Some("it serves the OpenAPI document, and this binary was built without the `openapi` feature".into());
    }
    if needs.mail && matches!(config.mail.backend, MailBackend::Ses { .. }) && !cfg!(feature = "ses") {
        return Some("it sends e-mail through SES, and this binary was built without the `ses` feature".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn rust_log_levels_and_targets() {
        let info = log_filter(None);
        assert!(info.would_enable("accounts", &Level::INFO));
        assert!(!info.would_enable("accounts", &Level::DEBUG));
        let f = log_filter(Some("accounts=debug,warn"));
        assert!(f.would_enable("accounts::http", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert!(f.would_enable("hyper", &Level::WARN));
        assert!(log_filter(Some("error")).would_enable("x", &Level::ERROR));
        assert!(!log_filter(Some("error")).would_enable("x", &Level::WARN));
        // Nonsense falls back to info instead of silencing the function.
        assert!(log_filter(Some("accounts=loud")).would_enable("x", &Level::INFO));
    }
}
