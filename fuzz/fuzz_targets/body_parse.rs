//! Request body parsing: an arbitrary content type and body through the `Payload` extractor
//! (JSON, form-encoded, multipart, anything else). The input is `content type \n body`.
//! Whatever comes in, the answer is data or a 4xx error: never a panic, never a 5xx.
#![no_main]

use accounts::http::body::Payload;
use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::Request;
use axum::response::IntoResponse;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    let mut request = Request::builder().method("POST").uri("/api/auth/login/");
    if let Some(content_type) = content_type {
        // Not every byte string is a header value; the server never sees those.
        let Ok(value) = axum::http::HeaderValue::from_bytes(content_type) else { return };
        request = request.header("content-type", value);
    }
    let request = request.body(Body::from(body.to_vec())).expect("a request");
    match runtime().block_on(Payload::from_request(request, &())) {
        // Files come only from multipart, which is a form.
        Ok(payload) => assert!(payload.files.is_empty() || payload.is_form, "files outside a form"),
        Err(error) => {
            let status = error.into_response().status();
            assert!(status.is_client_error(), "a body was answered {status}");
        }
    }
});
