//! Web pages: static HTML served from the binary (no store, no keys, no AWS call), under a strict
//! Content-Security-Policy: the page's own inline script and style by their SHA-256 hashes, and
//! requests to its own origin only. No third-party script, font or image.
//!
//! `GET /account/delete/`: the account deletion page (app stores ask for a way to delete an
//! account outside the app). It signs in with the username and password
//! (`POST /api/auth/login/`), then deletes with the same password (`DELETE /api/auth/user/`),
//! and shows the result or the API's error message.

use std::sync::LazyLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::http::endpoints::Endpoint;

const ACCOUNT_DELETE_HTML: &str = include_str!("account_delete.html");
const ACCOUNT_DELETE_SCRIPT: &str = include_str!("account_delete.js");
const ACCOUNT_DELETE_STYLE: &str = include_str!("account_delete.css");

/// A page and its headers, made once per process.
struct Page {
    html: String,
    content_security_policy: HeaderValue,
}

/// `'sha256-<base64>'` of an inline script or style, as CSP names it.
fn csp_hash(source: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(source.as_bytes())))
}

fn page(template: &str, script: &str, style: &str) -> Page {
    let html = template.replace("{style}", style).replace("{script}", script);
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'none'; \
         form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(script),
        csp_hash(style)
    );
    Page { html, content_security_policy: HeaderValue::from_str(&policy).expect("an ASCII policy") }
}

static ACCOUNT_DELETE: LazyLock<Page> =
    LazyLock::new(|| page(ACCOUNT_DELETE_HTML, ACCOUNT_DELETE_SCRIPT, ACCOUNT_DELETE_STYLE));

fn serve(page: &Page) -> Response {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, page.content_security_policy.clone()),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
    ];
    (headers, Html(page.html.clone())).into_response()
}

/// The handlers of a page endpoint, by method (`None` for an endpoint of the API).
pub(crate) fn handlers(endpoint: Endpoint) -> Option<MethodRouter> {
    match endpoint {
        Endpoint::AccountDeletePage => Some(get(|| async { serve(&ACCOUNT_DELETE) })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_exactly_the_inline_script_and_style() {
        let page = &*ACCOUNT_DELETE;
        let policy = page.content_security_policy.to_str().unwrap();
        assert!(policy.contains(&csp_hash(ACCOUNT_DELETE_SCRIPT)), "{policy}");
        assert!(page.html.contains(&format!("<script>{ACCOUNT_DELETE_SCRIPT}</script>")));
        assert!(page.html.contains(&format!("<style>{ACCOUNT_DELETE_STYLE}</style>")));
        assert!(!page.html.contains("{script}") && !page.html.contains("{style}"));
        // Nothing from another origin.
        assert!(!page.html.contains("http://") && !page.html.contains("https://") && !page.html.contains("src="));
        assert!(policy.starts_with("default-src 'none';") && policy.contains("connect-src 'self'"));
    }
}
