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
        // The victim's app uses its new token too: the stolen one's successor is spent.
        let victim = app.post("/api/auth/refresh/", json!({"refresh": victim.body["refresh"]})).await;
        assert_eq!(victim.status, StatusCode::OK);
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
    /// The app was killed after the server rotated its token but before it stored the answer:
    /// minutes later (after the grace window) the old token gets the session's current pair, as
    /// long as that pair's refresh token was never used.
    async fn a_lost_refresh_answer_is_recovered_after_the_grace_window(backend: Backend) {
        let app = backend.app(&[("REFRESH_REUSE_GRACE", "1"), ("ACCESS_TOKEN_LIFETIME", "2")]).await;
        let (_, old, _) = app.register("killed").await;
        let lost = app.post("/api/auth/refresh/", json!({"refresh": old})).await;
        assert_eq!(lost.status, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        for path in ["/api/auth/refresh/", "/api/auth/token/refresh/"] {
            let again = app.post(path, json!({"refresh": old})).await;
            assert_eq!(again.status, StatusCode::OK, "{path}: {}", again.body);
            assert_eq!(again.body["refresh"], lost.body["refresh"], "{path}: the very refresh token the rotation issued");
            // A fresh access token: the lost one has expired by now.
            let access = again.body["access"].as_str().unwrap();
            assert_eq!(claims(access)["sid"], claims(lost.body["access"].as_str().unwrap())["sid"]);
            assert!(claims(access)["exp"].as_i64() > claims(lost.body["access"].as_str().unwrap())["exp"].as_i64());
            assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status, StatusCode::OK, "{path}");
        }
        // The recovered token rotates as any; from then on the old one is reuse.
        let next = app.post("/api/auth/refresh/", json!({"refresh": lost.body["refresh"]})).await;
        assert_eq!(next.status, StatusCode::OK);
        let r = app.post("/api/auth/refresh/", json!({"refresh": old})).await;
        assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, json!({"detail": "Token is blacklisted", "code": "token_not_valid"})));
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": next.body["refresh"]})).await.status, StatusCode::UNAUTHORIZED, "the session ended");
    }

    /// Attackers (or a second device) present the old token while its successor is used, all
    /// at once, round after round: the old token never yields more than its successor, and
    /// whenever it was refused the whole session is over.
    async fn the_old_token_racing_its_successors_use(backend: Backend) {
        let app = Arc::new(backend.app(&[("REFRESH_REUSE_GRACE", "0")]).await);
        let (mut refused_rounds, mut recovered_rounds) = (0, 0);
        for round in 0..8 {
            let (_, old, _) = app.register(&format!("raced{round}")).await;
            let successor = app.post("/api/auth/refresh/", json!({"refresh": old})).await;
            let successor = successor.body["refresh"].as_str().unwrap().to_string();
            let mut tasks = Vec::new();
            for i in 0..6 {
                let (app, token) = (app.clone(), if i == 3 { successor.clone() } else { old.clone() });
                tasks.push(tokio::spawn(async move { app.post("/api/auth/refresh/", json!({"refresh": token})).await }));
            }
            let mut replies = Vec::new();
            for task in tasks {
                replies.push(task.await.unwrap());
            }
            let used = replies.remove(3);
            assert_eq!(used.status, StatusCode::OK, "round {round}: the successor's own use: {}", used.body);
            let newest = used.body["refresh"].as_str().unwrap().to_string();
            let mut refused = false;
            for r in &replies {
                match r.status {
                    StatusCode::OK => assert_eq!(r.body["refresh"], successor.as_str(), "round {round}: never a newer token"),
                    StatusCode::UNAUTHORIZED => {
                        assert_eq!(r.body, json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
                        refused = true;
                    }
                    other => panic!("round {round}: {other} {}", r.body),
                }
            }
            let newest_works = app.post("/api/auth/refresh/", json!({"refresh": newest})).await.status == StatusCode::OK;
            assert_eq!(newest_works, !refused, "round {round}: a refusal ends the session, else it goes on");
            if refused { refused_rounds += 1 } else { recovered_rounds += 1 }
            // Either way, the old token is reuse now.
            let r = app.post("/api/auth/refresh/", json!({"refresh": old})).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "round {round}");
        }
        println!("rounds where the old token was refused: {refused_rounds}, all recovered: {recovered_rounds}");
    }
});
