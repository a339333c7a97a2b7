//! Password change and reset on the DynamoDB backend (moto), with the real SDK clients: e-mail
//! through the outbox, and through SES (moto's SES v2, read back from moto's state).


use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use testkit::outbox::{letters, Letter};
use testkit::{dynamo::fresh_dynamo, TestApp, STRONG};

const NEW: &str = "Harbor-Lantern-58";

async fn app(extra: &[(&str, &str)]) -> TestApp {
    let (store, _) = fresh_dynamo().await;
    let mut env = vec![("PASSWORD_RESET_MIN_RESPONSE_MS", "0")];
    env.extend_from_slice(extra);
    TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), &env)
}

async fn register(app: &TestApp, username: &str, email: &str) -> (String, String) {
    let r = app.post("/api/auth/registration/", json!({"username": username, "email": email, "password1": STRONG, "password2": STRONG})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into())
}

async fn login(app: &TestApp, username: &str, password: &str) -> Option<(String, String)> {
    let r = app.post("/api/auth/login/", json!({"username": username, "password": password})).await;
    (r.status == StatusCode::OK).then(|| (r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into()))
}

async fn signed_in(app: &TestApp, (access, refresh): &(String, String)) -> (bool, bool) {
    let profile = app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status == StatusCode::OK;
    let refreshed = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status == StatusCode::OK;
    (profile, refreshed)
}

/// Confirms the reset the letter links to, after a refused attempt that must not use it up.
async fn confirm_from(app: &TestApp, letter: &Letter) {
    let (uid, token) = letter.uid_and_token();
    let r = app.post("/api/auth/password/reset/confirm/", json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": "other"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.post("/api/auth/password/reset/confirm/", json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": NEW})).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({"detail": "Password has been reset with the new password."})));
    let r = app.post("/api/auth/password/reset/confirm/", json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": NEW})).await;
    assert_eq!(r.body, json!({"token": ["Invalid value"]}));
}

#[tokio::test]
async fn change_and_reset_on_dynamodb() {
    let app = app(&[]).await;
    let first = register(&app, "小明", "xiaoming@example.com").await;
    let second = login(&app, "小明", STRONG).await.unwrap();
    let third = login(&app, "小明", STRONG).await.unwrap();

    // Change from the first session: the two others end (their sessions found on by_user).
    let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
    let r = app.call("POST", "/api/auth/password/change/", Some(body), Some(&first.0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(signed_in(&app, &second).await, (false, false));
    assert_eq!(signed_in(&app, &third).await, (false, false));
    let r = app.call("GET", "/api/accounts/profile/", None, Some(&first.0)).await;
    assert_eq!(r.status, StatusCode::OK, "the changing session continues");
    assert!(login(&app, "小明", STRONG).await.is_none());
    let after_change = login(&app, "小明", NEW).await.unwrap();

    // Reset by e-mail (outbox): every session ends.
    let r = app.post("/api/auth/password/reset/", json!({"email": "XIAOMING@example.com"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let mail = letters(&app.state);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].text.contains("your username is 小明."), "{}", mail[0].text);
    // A reset makes the new password NEW again: first set something else to see it change.
    let body = json!({"old_password": NEW, "new_password1": "Interim-Pass-404", "new_password2": "Interim-Pass-404"});
    assert_eq!(app.call("POST", "/api/auth/password/change/", Some(body), Some(&after_change.0)).await.status, StatusCode::OK);
    // The change altered the password hash: the e-mailed token is spent.
    let (uid, token) = mail[0].uid_and_token();
    let r = app.post("/api/auth/password/reset/confirm/", json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": NEW})).await;
    assert_eq!(r.body, json!({"token": ["Invalid value"]}));
    app.post("/api/auth/password/reset/", json!({"email": "xiaoming@example.com"})).await;
    let mail = letters(&app.state);
    assert_eq!(mail.len(), 2);
    confirm_from(&app, &mail[1]).await;
    assert_eq!(signed_in(&app, &after_change).await, (false, false));
    let r = app.call("GET", "/api/accounts/profile/", None, Some(&first.0)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a reset ends every session");
    assert!(login(&app, "小明", NEW).await.is_some());
    assert!(app.post("/api/auth/password/reset/", json!({"email": "nobody@example.com"})).await.status == StatusCode::OK);
    assert_eq!(letters(&app.state).len(), 2, "no mail for an unknown address");
}

/// The whole reset with SES as the mail backend (moto's SES v2): the message is read from what
/// moto accepted, for the address of this test only.
#[tokio::test]
async fn reset_by_ses_on_dynamodb() {
    let endpoint = testkit::dynamo::endpoint();
    testkit::dynamo::fake_aws_environment();
    let sender = format!("accounts-{}@example.com", uuid::Uuid::new_v4().simple());
    let ses = accounts::mail::ses::client(Some(&endpoint)).await;
    ses.create_email_identity().email_identity(&sender).send().await.unwrap();
    let app = app(&[("MAIL_BACKEND", "ses"), ("SES_ENDPOINT", &endpoint), ("MAIL_FROM", &sender)]).await;
    let address = format!("u{}@example.org", uuid::Uuid::new_v4().simple());
    let session = register(&app, "sesuser", &address).await;
    assert_eq!(app.post("/api/auth/password/reset/", json!({"email": address})).await.status, StatusCode::OK);

    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json")).await.unwrap().json().await.unwrap();
    let raw: Vec<&Value> = data["ses"]["RawMessage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destinations"].as_array().unwrap().iter().any(|d| d.as_str() == Some(address.as_str())))
        .collect();
    assert_eq!(raw.len(), 1, "one message to {address}");
    assert_eq!(raw[0]["source"], sender);
    let letter = Letter::parse(raw[0]["raw_data"].as_str().unwrap().as_bytes());
    assert_eq!(letter.to, address);
    assert!(letter.text.contains("your username is sesuser."), "{}", letter.text);
    confirm_from(&app, &letter).await;
    assert_eq!(signed_in(&app, &session).await, (false, false));
    assert!(login(&app, "sesuser", NEW).await.is_some());
}
