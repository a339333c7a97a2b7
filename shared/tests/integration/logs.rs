//! Logs: one JSON line per request (method, route, status, latency), and never a token, a
//! password or an e-mail address.


use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use testkit::{TestApp, STRONG};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn request_lines_carry_no_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::with_env(&[("PASSWORD_RESET_MIN_RESPONSE_MS", "0")]);
    let email = "secret.person@example.com";
    let r = app.post("/api/auth/registration/", json!({"username": "logged", "password1": STRONG, "password2": STRONG, "email": email})).await;
    let (access, refresh) = (r.body["access"].as_str().unwrap().to_string(), r.body["refresh"].as_str().unwrap().to_string());
    app.post("/api/auth/login/", json!({"username": "logged", "password": "wrong-password-123"})).await;
    app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    app.post("/api/auth/password/reset/", json!({"email": email})).await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in [STRONG, "wrong-password-123", &access, &refresh, email] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret:.20}…");
    }
    let requests: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 5, "{text}");
    let first = &requests[0]["fields"];
    assert_eq!((first["method"].as_str(), first["route"].as_str(), first["status"].as_u64()), (Some("POST"), Some("/api/auth/registration/"), Some(201)));
    assert!(first["latency_ms"].as_f64().is_some());
}
