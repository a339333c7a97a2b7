//! Password reset and change end to end over real HTTP: the local server binary on its embedded
//! store, the reset e-mail read from its outbox folder (`<DATA_DIR>/outbox/*.eml`), the link in
//! it followed, the password replaced, and the sessions of before refused.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::Server;

const STRONG: &str = "xk29!pLm#q";
const NEW: &str = "Harbor-Lantern-58";
const NEWER: &str = "Copper-Meadow-71";

async fn call(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>, bearer: Option<&str>) -> (u16, Value) {
    let mut request = c.request(method.parse().unwrap(), url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The messages in the outbox, oldest first: (recipient, subject, text).
fn outbox(data_dir: &Path) -> Vec<(String, String, String)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("outbox")) else { return Vec::new() };
    let mut files: Vec<_> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "eml")).collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let raw = std::fs::read(path).unwrap();
            let message = mail_parser::MessageParser::default().parse(&raw[..]).expect("an RFC 5322 message");
            let to = message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
            (
                to,
                message.subject().unwrap_or_default().to_string(),
                message.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
            )
        })
        .collect()
}

#[tokio::test]
async fn reset_by_email_and_change_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with(dir.path(), &[("PASSWORD_RESET_URL", "{base}/password-reset/confirm/{uid}/{token}/")]);
    let c = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);

    // Two devices signed in.
    let (status, registered) = call(
        &c,
        "POST",
        &url("/api/auth/registration/"),
        Some(json!({"username": "15500000003", "email": "u2@example.com", "password1": STRONG, "password2": STRONG})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let (_, phone) =
        call(&c, "POST", &url("/api/auth/login/"), Some(json!({"username": "15500000003", "password": STRONG})), None)
            .await;
    let old_tokens = [&registered, &phone]
        .map(|b| (b["access"].as_str().unwrap().to_string(), b["refresh"].as_str().unwrap().to_string()));

    // An unknown address: 200 and no mail; the known one (any case): 200 and one mail.
    let (status, body) =
        call(&c, "POST", &url("/api/auth/password/reset/"), Some(json!({"email": "stranger@example.com"})), None).await;
    assert_eq!((status, body), (200, json!({"detail": "Password reset e-mail has been sent."})));
    assert!(outbox(dir.path()).is_empty());
    let (status, _) =
        call(&c, "POST", &url("/api/auth/password/reset"), Some(json!({"email": "U2@Example.com"})), None).await;
    assert_eq!(status, 200);
    let mail = outbox(dir.path());
    assert_eq!(mail.len(), 1);
    let (to, subject, text) = &mail[0];
    assert_eq!((to.as_str(), subject.as_str()), ("u2@example.com", "Password Reset Email"));
    assert!(text.contains("In case you forgot, your username is 15500000003."), "{text}");
    let link =
        text.lines().find(|l| l.starts_with(&server.base)).unwrap_or_else(|| panic!("a link to the server in {text}"));

    // The link answers with uid and token, which confirm the new password.
    let (status, parts) = call(&c, "GET", link, None, None).await;
    assert_eq!(status, 200, "{parts}");
    let (uid, token) = (parts["uid"].as_str().unwrap().to_string(), parts["token"].as_str().unwrap().to_string());
    assert_eq!(uid, "1");
    let confirm = |p1: &str, p2: &str| json!({"uid": uid, "token": token, "new_password1": p1, "new_password2": p2});
    let (status, body) =
        call(&c, "POST", &url("/api/auth/password/reset/confirm/"), Some(confirm(NEW, "typo")), None).await;
    assert_eq!((status, body), (400, json!({"new_password2": ["The two password fields didn\u{2019}t match."]})));
    let (status, body) =
        call(&c, "POST", &url("/api/auth/password/reset/confirm/"), Some(confirm(NEW, NEW)), None).await;
    assert_eq!((status, body), (200, json!({"detail": "Password has been reset with the new password."})));
    let (status, body) =
        call(&c, "POST", &url("/api/auth/password/reset/confirm/"), Some(confirm(NEWER, NEWER)), None).await;
    assert_eq!((status, body), (400, json!({"token": ["Invalid value"]})), "the token is spent");

    // Every session of before is over.
    for (access, refresh) in &old_tokens {
        let (status, body) = call(&c, "GET", &url("/api/accounts/profile/"), None, Some(access)).await;
        assert_eq!((status, body["code"].clone()), (401, json!("token_not_valid")));
        let (status, _) = call(&c, "POST", &url("/api/auth/refresh/"), Some(json!({"refresh": refresh})), None).await;
        assert_eq!(status, 401);
    }
    let (status, _) =
        call(&c, "POST", &url("/api/auth/login/"), Some(json!({"username": "15500000003", "password": STRONG})), None)
            .await;
    assert_eq!(status, 400, "the old password is refused");

    // Change: from a new session, the other new session ends, this one continues.
    let (status, laptop) =
        call(&c, "POST", &url("/api/auth/login/"), Some(json!({"username": "15500000003", "password": NEW})), None)
            .await;
    assert_eq!(status, 200);
    let (_, tablet) =
        call(&c, "POST", &url("/api/auth/login/"), Some(json!({"username": "15500000003", "password": NEW})), None)
            .await;
    let laptop_access = laptop["access"].as_str().unwrap();
    let change = json!({"old_password": NEW, "new_password1": NEWER, "new_password2": NEWER});
    let (status, body) = call(&c, "POST", &url("/api/auth/password/change"), Some(change), Some(laptop_access)).await;
    assert_eq!((status, body), (200, json!({"detail": "New password has been saved."})));
    assert_eq!(call(&c, "GET", &url("/api/auth/user/"), None, Some(laptop_access)).await.0, 200);
    assert_eq!(call(&c, "GET", &url("/api/auth/user/"), None, tablet["access"].as_str()).await.0, 401);
    assert_eq!(
        call(&c, "POST", &url("/api/auth/refresh/"), Some(json!({"refresh": tablet["refresh"]})), None).await.0,
        401
    );
    let (status, _) =
        call(&c, "POST", &url("/api/auth/login/"), Some(json!({"username": "15500000003", "password": NEWER})), None)
            .await;
    assert_eq!(status, 200);
}
