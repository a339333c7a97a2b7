//! One log line per request: method, route, status and latency. Never headers or bodies, so no
//! token, password or e-mail address reaches the logs. Every line logged while a request is
//! served carries its request ids (the `request` span).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tracing::Instrument;

/// Serves the request inside a `request` span holding API Gateway's request id (`requestId` of
/// the API's access log) and the Lambda invocation's, so that every line logged on its behalf
/// (by any layer, handler or the domain) joins the access log. Outside Lambda both are absent.
pub async fn request_span(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        api_request_id = tracing::field::Empty,
        lambda_request_id = tracing::field::Empty
    );
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if let Some(id) = &ctx.request_id {
            span.record("api_request_id", id.as_str());
        }
    }
    if let Some(ctx) = req.lambda_context_ref() {
        span.record("lambda_request_id", ctx.request_id.as_str());
    }
    next.run(req).instrument(span).await
}

pub async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // A shared string (`Arc<str>`), not a copy: this runs for every request.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = matched.as_ref().map_or("<unmatched>", MatchedPath::as_str);
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%method, %route, status, latency_ms, "request");
    } else {
        tracing::info!(%method, %route, status, latency_ms, "request");
    }
    response
}
