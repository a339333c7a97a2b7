//! Decision 3: concurrent refresh is safe (grace window), and reuse of a spent refresh token
//! outside the window ends the whole session (RFC 9700 §4.14). On both stores.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use testkit::{backends, claims, Backend};

conformance!([sqlite, dynamodb] {
    async fn reuse_within_the_grace_window_gets_the_sessions_current_pair(backend: Backend) {
        let app = backend.app(&[]).await;
        let (_, refresh, _) = app.register("graceful").await;
        let first = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(first.status, StatusCode::OK);
        let again = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body["refresh"], first.body["refresh"], "the very same refresh token");
        let (a, b) = (claims(first.body["access"].as_str().unwrap()), claims(again.body["access"].as_str().unwrap()));
        assert_eq!((a["sid"].clone(), a["iat"].clone(), a["exp"].clone()), (b["sid"].clone(), b["iat"].clone(), b["exp"].clone()));
        let access = again.body["access"].as_str().unwrap();
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status, StatusCode::OK);
        // The shared refresh token rotates normally, once.
        let next = first.body["refresh"].as_str().unwrap();
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": next})).await.status, StatusCode::OK);
    }

    async fn twenty_parallel_refreshes_rotate_once_and_all_succeed(backend: Backend) {
        let app = Arc::new(backend.app(&[]).await);
        let (_, refresh, _) = app.register("parallel").await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (app, refresh) = (app.clone(), refresh.clone());
            tasks.push(tokio::spawn(async move { app.post("/api/auth/refresh/", json!({"refresh": refresh})).await }));
        }
        let mut tokens = std::collections::HashSet::new();
        for task in tasks {
            let reply = task.await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            tokens.insert(reply.body["refresh"].as_str().unwrap().to_string());
        }
        assert_eq!(tokens.len(), 1);
    }

    async fn reuse_after_the_window_ends_the_whole_session(backend: Backend) {
        let app = backend.app(&[("REFRESH_REUSE_GRACE", "1")]).await;
        let (_, stolen, _) = app.register("victim").await;
        let other_device = app.post("/api/auth/login/", json!({"username": "victim", "password": testkit::STRONG})).await;
        let victim = app.post("/api/auth/refresh/", json!({"refresh": stolen})).await;
        let (victim_access, victim_refresh) =
            (victim.body["access"].as_str().unwrap().to_string(), victim.body["refresh"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        // The thief replays the spent token: refused, and the session is over for everyone.
        let r = app.post("/api/auth/refresh/", json!({"refresh": stolen})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, json!({"detail": "Token is blacklisted", "code": "token_not_valid"})));
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&victim_access)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": victim_refresh})).await.status, StatusCode::UNAUTHORIZED);
        // Other sessions of the user are not touched.
        let other = other_device.body["access"].as_str().unwrap();
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(other)).await.status, StatusCode::OK);
    }

    async fn a_logged_out_token_gets_no_grace(backend: Backend) {
        let app = backend.app(&[]).await;
        let (_, refresh, _) = app.register("loggedout").await;
        assert_eq!(app.post("/api/auth/logout/", json!({"refresh": refresh})).await.status, StatusCode::OK);
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(r.body, json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
    }
});
