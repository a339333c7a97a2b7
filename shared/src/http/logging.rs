//! One log line per request: method, route, status and latency. Never headers or bodies, so no
//! token, password or e-mail address reaches the logs. Every line logged while a request is
//! served carries its request ids (the `request` span).

use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

/// The layer serving each request inside a `request` span holding API Gateway's request id
/// (`requestId` of the API's access log) and the Lambda invocation's, so that every line logged
/// on its behalf (by any layer, handler or the domain) joins the access log. Outside Lambda both
/// are absent.
///
/// A tower layer rather than `middleware::from_fn`, which boxes and clones the service inside
/// it and boxes its future on every request (issue 17, bench/README.md: the reads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestSpanLayer;

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan(inner)
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RequestSpan<S>(S);

impl<S: Service<Request>> Service<Request> for RequestSpan<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let span = request_span(&req);
        self.0.call(req).instrument(span)
    }
}

fn request_span(req: &Request) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        api_request_id = tracing::field::Empty,
        lambda_request_id = tracing::field::Empty
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        if let Some(id) = &ctx.request_id {
            span.record("api_request_id", id.as_str());
        }
    }
    if let Some(ctx) = req.lambda_context_ref() {
        span.record("lambda_request_id", ctx.request_id.as_str());
    }
    span
}

/// Middleware: the request's log line, for the static pages (the API's routes take theirs in
/// `auth::AuthenticationLayer`, around authentication).
pub async fn log_request(req: Request, next: Next) -> Response {
    let line = RequestLine::of(&req);
    let response = next.run(req).await;
    line.log(&response);
    response
}

/// What the log line of a request says of it, taken before it is served.
pub(crate) struct RequestLine {
    started: Instant,
    method: Method,
    /// A shared string (`Arc<str>`), not a copy: this runs for every request.
    matched: Option<MatchedPath>,
}

impl RequestLine {
    pub(crate) fn of(req: &Request) -> Self {
        RequestLine {
            started: Instant::now(),
            method: req.method().clone(),
            matched: req.extensions().get::<MatchedPath>().cloned(),
        }
    }

    pub(crate) fn log(self, response: &Response) {
        let RequestLine { started, method, matched } = self;
        let route = matched.as_ref().map_or("<unmatched>", MatchedPath::as_str);
        let status = response.status().as_u16();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::error!(%method, %route, status, latency_ms, "request");
        } else {
            tracing::info!(%method, %route, status, latency_ms, "request");
        }
    }
}
