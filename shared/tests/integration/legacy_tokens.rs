//! Issue 14, the cutover: the old service's tokens (`accounts::domain::legacy`) with
//! `LEGACY_JWT_SECRET` and `LEGACY_TOKENS_UNTIL`, signed here exactly as simplejwt 5.5 signs them
//! (`testkit::legacy_token`: HS256, no `kid`, claims token_type, exp, iat, jti, user_id as a
//! string). Every bullet of the issue, on both stores; `scripts/cutover_rehearsal.py` does it
//! with tokens the real old service minted.

use std::collections::HashSet;
use std::sync::Arc;

use accounts::domain::model::{BlacklistEntry, User};
use axum::http::StatusCode;
use serde_json::{json, Value};
use testkit::{backends, claims, legacy_token, legacy_token_with, Backend, TestApp, LEGACY_SECRET, STRONG};

const UNTIL: &str = "2999-01-01T00:00:00Z";

/// The API on `backend` during a cutover, with `extra` configuration.
async fn cutover_app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("LEGACY_JWT_SECRET", LEGACY_SECRET), ("LEGACY_TOKENS_UNTIL", UNTIL)];
    env.extend_from_slice(extra);
    backend.app(&env).await
}

fn token_not_valid(message: &str) -> Value {
    json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
           "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]})
}

fn refused(message: &str) -> Value {
    json!({"detail": message, "code": "token_not_valid"})
}

/// A user as `import-users` writes one: id and hash of the old service, password version 0.
fn imported_user(id: u64, username: &str, is_active: bool) -> User {
    User {
        id,
        username: username.into(),
        email: String::new(),
        password_hash: "pbkdf2_sha256$1000000$salt$aGFzaA==".into(),
        password_version: 0,
        first_name: String::new(),
        last_name: String::new(),
        nickname: String::new(),
        signature: String::new(),
        avatar: None,
        is_active,
        date_joined: 1_700_000_000,
        last_login: None,
    }
}

conformance!([sqlite, dynamodb] {
    async fn a_legacy_access_token_is_accepted_on_bearer_endpoints(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("oldtimer").await;
        let (access, _) = legacy_token("access", id, 300);
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
        assert_eq!((r.status, r.body["username"].clone()), (StatusCode::OK, json!("oldtimer")), "{}", r.body);
        let r = app.call("PATCH", "/api/auth/user/", Some(json!({"first_name": "Old"})), Some(&access)).await;
        assert_eq!((r.status, r.body["first_name"].clone()), (StatusCode::OK, json!("Old")), "{}", r.body);
        // Ordinary tokens keep working beside them.
        let (ours, _, _) = app.register("newcomer").await;
        assert_eq!(app.call("GET", "/api/auth/user/", None, Some(&ours)).await.status, StatusCode::OK);
    }

    async fn a_legacy_refresh_token_starts_a_new_session_on_both_routes(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("mover").await;
        for path in ["/api/auth/refresh/", "/api/auth/token/refresh/"] {
            let login = app.post("/api/auth/login/", json!({"username": "mover", "password": STRONG})).await;
            let shape = app.post(path, json!({"refresh": login.body["refresh"]})).await.body;
            let (refresh, jti) = legacy_token("refresh", id, 7 * 24 * 3600);
            let r = app.post(path, json!({"refresh": refresh})).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&r.body), keys(&shape), "the contract's shape");
            let (access, next) = (r.body["access"].as_str().unwrap(), r.body["refresh"].as_str().unwrap());
            // New tokens are ordinary ones, of a session of their own.
            let (a, n) = (claims(access), claims(next));
            assert_eq!((a["sid"].clone(), a["user_id"].clone()), (n["sid"].clone(), json!(id.to_string())));
            assert_ne!(n["jti"], json!(jti));
            assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status, StatusCode::OK);
            // The old token is spent: its jti is on the blacklist until its own exp.
            let entry = app.state.store.blacklisted(&jti, accounts::domain::now()).await.unwrap().expect("blacklisted");
            assert_eq!(entry.expires_at, claims(&refresh)["exp"].as_i64().unwrap());
            // The new session rotates like any other.
            let rotated = app.post(path, json!({"refresh": next})).await;
            assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
        }
    }

    async fn a_repeat_inside_the_grace_window_gets_the_same_pair_and_after_it_401(backend: Backend) {
        let app = cutover_app(backend, &[("REFRESH_REUSE_GRACE", "1")]).await;
        let (_, _, id) = app.register("repeater").await;
        let (refresh, _) = legacy_token("refresh", id, 3600);
        let first = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(first.status, StatusCode::OK);
        let again = app.post("/api/auth/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body["refresh"], first.body["refresh"], "the very same refresh token");
        assert_eq!(claims(again.body["access"].as_str().unwrap())["sid"], claims(first.body["access"].as_str().unwrap())["sid"]);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let late = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((late.status, late.body), (StatusCode::UNAUTHORIZED, refused("Token is blacklisted")));
        // Reuse after the window ends the session it started, as for ordinary tokens.
        let access = first.body["access"].as_str().unwrap();
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn parallel_uses_of_one_legacy_refresh_token_start_one_session(backend: Backend) {
        let app = Arc::new(cutover_app(backend, &[]).await);
        let (_, _, id) = app.register("racer").await;
        let (refresh, _) = legacy_token("refresh", id, 3600);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (app, refresh) = (app.clone(), refresh.clone());
            let path = if i % 2 == 0 { "/api/auth/refresh/" } else { "/api/auth/token/refresh/" };
            tasks.push(tokio::spawn(async move { app.post(path, json!({"refresh": refresh})).await }));
        }
        let (mut sessions, mut tokens) = (HashSet::new(), HashSet::new());
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            sessions.insert(claims(reply.body["access"].as_str().unwrap())["sid"].to_string());
            tokens.insert(reply.body["refresh"].as_str().unwrap().to_string());
        }
        assert_eq!((sessions.len(), tokens.len()), (1, 1), "one session, one pair");
    }

    async fn logout_blacklists_a_legacy_refresh_token(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("leaver").await;
        let (refresh, _) = legacy_token("refresh", id, 3600);
        let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, json!({"detail": "Token is blacklisted"})));
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is blacklisted")));
        let r = app.post("/api/auth/token/verify/", json!({"token": refresh})).await;
        assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Token is blacklisted"]})));
    }

    async fn token_verify_takes_legacy_tokens_as_the_contract_says(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("verifier").await;
        for kind in ["access", "refresh"] {
            let (token, _) = legacy_token(kind, id, 300);
            let r = app.post("/api/auth/token/verify/", json!({"token": token})).await;
            assert_eq!((r.status, r.body), (StatusCode::OK, json!({})), "{kind}");
            let (expired, _) = legacy_token(kind, id, -1);
            let r = app.post("/api/auth/token/verify/", json!({"token": expired})).await;
            assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is expired")), "{kind}");
        }
        let (stranger, _) = legacy_token("access", 9_999, 300);
        let r = app.post("/api/auth/token/verify/", json!({"token": stranger})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is invalid")));
    }

    async fn expired_and_wrong_type_legacy_tokens_are_refused_as_the_contract_says(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("stale").await;
        let (expired, _) = legacy_token("access", id, -1);
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&expired)).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token is expired")));
        let (expired, _) = legacy_token("refresh", id, -1);
        let r = app.post("/api/auth/refresh/", json!({"refresh": expired})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is expired")));
        let (refresh, _) = legacy_token("refresh", id, 300);
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&refresh)).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token has wrong type")));
        let (access, _) = legacy_token("access", id, 300);
        for path in ["/api/auth/refresh/", "/api/auth/token/refresh/"] {
            let r = app.post(path, json!({"refresh": access})).await;
            assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token has wrong type")), "{path}");
        }
        let r = app.post("/api/auth/logout/", json!({"refresh": access})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, json!({"detail": "Token has wrong type"})));
    }

    async fn legacy_tokens_are_refused_after_the_deadline_and_without_the_secret(backend: Backend) {
        for env in [
            vec![("LEGACY_JWT_SECRET", LEGACY_SECRET), ("LEGACY_TOKENS_UNTIL", "2020-01-01T00:00:00Z")],
            vec![],
        ] {
            let app = backend.app(&env).await;
            let (_, _, id) = app.register("late").await;
            let (access, _) = legacy_token("access", id, 300);
            let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
            assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token is invalid")), "{env:?}");
            let (refresh, _) = legacy_token("refresh", id, 300);
            let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
            assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is invalid")), "{env:?}");
        }
        // Signed with another secret, or carrying a sid (ours always do): never a legacy token.
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("forger").await;
        let (other, _) = legacy_token_with("not-the-old-service-secret-0123456789abcdef", "access", id, 300);
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&other)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let now = accounts::domain::now();
        let with_sid = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "f00d", "user_id": id.to_string(), "sid": "whatever"});
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &with_sid,
            &jsonwebtoken::EncodingKey::from_secret(LEGACY_SECRET.as_bytes()),
        )
        .unwrap();
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&forged)).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token is invalid")));
    }

    async fn blacklisted_legacy_jtis_are_refused(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (_, _, id) = app.register("listed").await;
        let now = accounts::domain::now();
        let (access, access_jti) = legacy_token("access", id, 300);
        let (refresh, refresh_jti) = legacy_token("refresh", id, 3600);
        for (jti, exp) in [(access_jti, now + 300), (refresh_jti, now + 3600)] {
            let entry = BlacklistEntry { jti, user_id: id, session_id: String::new(), expires_at: exp, blacklisted_at: now };
            assert!(app.state.store.blacklist(entry.clone(), now).await.unwrap());
            assert!(!app.state.store.blacklist(entry, now).await.unwrap(), "idempotent");
        }
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token is blacklisted")));
        // A token logged out on the old service (its blacklist imported) stays dead.
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is blacklisted")));
    }

    async fn legacy_tokens_of_missing_or_inactive_users_are_refused(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        app.state.store.insert_user(imported_user(41, "dormant", false)).await.unwrap();
        for (id, access_refusal) in [
            (41, json!({"detail": "User is inactive", "code": "user_inactive"})),
            (42, json!({"detail": "User not found", "code": "user_not_found"})),
        ] {
            let (access, _) = legacy_token("access", id, 300);
            let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
            assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, access_refusal), "user {id}");
            let (refresh, _) = legacy_token("refresh", id, 300);
            let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
            assert_eq!(
                (r.status, r.body),
                (StatusCode::UNAUTHORIZED, json!({"detail": "No active account found for the given token."})),
                "user {id}"
            );
        }
    }

    async fn a_password_change_here_ends_the_legacy_tokens(backend: Backend) {
        let app = cutover_app(backend, &[]).await;
        let (ours, _, id) = app.register("changer").await;
        let (access, _) = legacy_token("access", id, 300);
        let (refresh, _) = legacy_token("refresh", id, 3600);
        let new = "Harbor-Lantern-58";
        let r = app
            .call("POST", "/api/auth/password/change/", Some(json!({"old_password": STRONG, "new_password1": new, "new_password2": new})), Some(&ours))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, token_not_valid("Token is invalid")));
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, refused("Token is invalid")));
    }
});

/// The secret is never logged, nor the token, on a request with a legacy token (the request
/// lines of `logs.rs` hold no secrets either).
#[tokio::test(flavor = "current_thread")]
async fn a_request_with_a_legacy_token_logs_no_secret() {
    let captured = crate::logs::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = cutover_app(Backend::Sqlite, &[("REFRESH_REUSE_GRACE", "0")]).await;
    tracing::info!(config = ?app.state.config, "configuration");
    let (_, _, id) = app.register("quiet").await;
    let (access, _) = legacy_token("access", id, 300);
    let (refresh, _) = legacy_token("refresh", id, 300);
    assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&access)).await.status, StatusCode::OK);
    assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status, StatusCode::OK);
    // Reused after the (zero) window: the warning of reuse detection is logged too.
    assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status, StatusCode::UNAUTHORIZED);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("\"request\""), "request lines were captured: {text}");
    for secret in [LEGACY_SECRET, &access, &refresh] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret:.20}…");
    }
}
