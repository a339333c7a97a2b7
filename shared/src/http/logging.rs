//! One log line per request: method, route, status and latency. Never headers or bodies, so no
//! token, password or e-mail address reaches the logs.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "<unmatched>".to_string(), |p| p.as_str().to_string());
    // In Lambda: the invocation's request id, to find the line from an API Gateway access log.
    let request_id = req.extensions().get::<lambda_http::Context>().map(|c| c.request_id.clone()).unwrap_or_default();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(%request_id, %method, %route, status, latency_ms, "request");
    } else {
        tracing::info!(%request_id, %method, %route, status, latency_ms, "request");
    }
    response
}
