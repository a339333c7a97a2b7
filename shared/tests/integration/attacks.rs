//! The security promises under parallel attack, as an attacker fires requests: all at once, not
//! one after another. Every test runs on both stores (the embedded SQLite store and DynamoDB on
//! moto) through the same in-process router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use testkit::outbox::letters;
use testkit::{backends, Backend, Reply, TestApp, STRONG};

async fn app(backend: Backend, env: &[(&str, &str)]) -> Arc<TestApp> {
    let mut env = env.to_vec();
    env.push(("PASSWORD_RESET_MIN_RESPONSE_MS", "0"));
    Arc::new(backend.app(&env).await)
}

const WRONG: &str = "wrong-password-1";

const NEW: &str = "Harbor-Lantern-58";

/// A JSON POST from the client address `ip` (the app trusts `X-Forwarded-For` in these tests).
async fn post_from(app: &TestApp, ip: &str, path: &str, body: Value, bearer: Option<&str>) -> Reply {
    let mut request = Request::post(path).header("content-type", "application/json").header("x-forwarded-for", ip);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    app.send(request.body(Body::from(body.to_string())).unwrap()).await
}

/// Fires `count` requests at once; their answers in order.
async fn burst<F, Fut>(count: usize, make: F) -> Vec<Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply> + Send + 'static,
{
    let tasks: Vec<_> = (0..count).map(|i| tokio::spawn(make(i))).collect();
    let mut replies = Vec::with_capacity(count);
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn count(replies: &[Reply], status: StatusCode) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

/// Every answer is a checked wrong password (400) or a refusal before any check (429).
fn checked_and_refused(replies: &[Reply]) -> (usize, usize) {
    for r in replies {
        assert!(matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::TOO_MANY_REQUESTS), "{} {}", r.status, r.body);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.contains_key("retry-after"));
        }
    }
    (count(replies, StatusCode::BAD_REQUEST), count(replies, StatusCode::TOO_MANY_REQUESTS))
}

async fn login(app: &TestApp, username: &str, password: &str) -> Result<(String, String), Reply> {
    let r = app.post("/api/auth/login/", json!({"username": username, "password": password})).await;
    match r.status {
        StatusCode::OK => Ok((r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into())),
        _ => Err(r),
    }
}

conformance!([sqlite, dynamodb] {
    /// 30 parallel wrong guesses at one account (limit 5): at most 5 are checked, the rest refused
    /// without hashing, and then the right password is refused too.
    async fn parallel_guesses_at_one_account_check_at_most_the_limit(backend: Backend) {
        let app = app(backend, &[("THROTTLE_LOGIN_ACCOUNT", "5/300"), ("THROTTLE_LOGIN_IP", "0/60")]).await;
        app.register("victim").await;
        let replies = burst(30, |_| {
            let app = app.clone();
            async move { app.post("/api/auth/login/", json!({"username": "victim", "password": WRONG})).await }
        })
        .await;
        let (checked, refused) = checked_and_refused(&replies);
        assert!(checked <= 5, "{checked} guesses were checked (limit 5), {refused} refused");
        assert_eq!(checked + refused, 30);
        // The right password among further parallel guesses: refused like them.
        let replies = burst(10, |i| {
            let app = app.clone();
            let password = if i == 5 { STRONG } else { WRONG };
            async move { app.post("/api/auth/login/", json!({"username": "VICTIM", "password": password})).await }
        })
        .await;
        assert_eq!(count(&replies, StatusCode::TOO_MANY_REQUESTS), 10, "the right password in the burst is refused");
    }

    /// 30 parallel wrong guesses from one address at 30 accounts (limit 10 per address).
    async fn parallel_guesses_from_one_address_check_at_most_the_limit(backend: Backend) {
        let app = app(
            backend,
            &[("THROTTLE_LOGIN_ACCOUNT", "0/300"), ("THROTTLE_LOGIN_IP", "10/60"), ("TRUST_X_FORWARDED_FOR", "1")],
        )
        .await;
        app.register("bystander").await;
        let replies = burst(30, |i| {
            let app = app.clone();
            async move {
                post_from(&app, "203.0.113.9", "/api/auth/login/", json!({"username": format!("user{i}"), "password": WRONG}), None)
                    .await
            }
        })
        .await;
        let (checked, _) = checked_and_refused(&replies);
        assert!(checked <= 10, "{checked} guesses from one address were checked (limit 10)");
        // The address is refused for every account now; another address is not.
        let r = post_from(&app, "203.0.113.9", "/api/auth/login/", json!({"username": "bystander", "password": STRONG}), None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let r = post_from(&app, "203.0.113.10", "/api/auth/login/", json!({"username": "bystander", "password": STRONG}), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }

    /// An IPv6 client takes a fresh address of its /64 for every guess: still one client.
    async fn ipv6_clients_cannot_rotate_addresses_inside_their_slash_64(backend: Backend) {
        let app = app(
            backend,
            &[("THROTTLE_LOGIN_ACCOUNT", "0/300"), ("THROTTLE_LOGIN_IP", "3/60"), ("TRUST_X_FORWARDED_FOR", "1")],
        )
        .await;
        let replies = burst(12, |i| {
            let app = app.clone();
            async move {
                let ip = format!("2001:db8:5:7:{:x}::{:x}", (i * 7919 + 1) % 0xffff, i + 1);
                post_from(&app, &ip, "/api/auth/login/", json!({"username": format!("user{i}"), "password": WRONG}), None).await
            }
        })
        .await;
        let (checked, _) = checked_and_refused(&replies);
        assert!(checked <= 3, "{checked} guesses from one /64 were checked (limit 3)");
        // Another /64 is another client.
        let r = post_from(&app, "2001:db8:5:8::1", "/api/auth/login/", json!({"username": "x", "password": WRONG}), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }

    /// A stolen access token is no password oracle: wrong old passwords count as failed logins of
    /// the account, so 30 parallel guesses check at most 5, and the takeover is refused.
    async fn password_change_is_no_unthrottled_oracle(backend: Backend) {
        let app = app(backend, &[("THROTTLE_LOGIN_ACCOUNT", "5/300"), ("THROTTLE_LOGIN_IP", "0/60")]).await;
        let (stolen, _, _) = app.register("owner").await;
        let (other_device, _) = login(&app, "owner", STRONG).await.unwrap();
        let replies = burst(30, |i| {
            let (app, stolen) = (app.clone(), stolen.clone());
            async move {
                let guess = format!("guess-{i}-x9");
                let body = json!({"old_password": guess, "new_password1": NEW, "new_password2": NEW});
                app.call("POST", "/api/auth/password/change/", Some(body), Some(&stolen)).await
            }
        })
        .await;
        let (checked, refused) = checked_and_refused(&replies);
        assert!(checked <= 5, "{checked} old-password guesses were checked (limit 5), {refused} refused");
        // Even the right old password is refused now: no takeover, the owner's other device lives.
        let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
        let r = app.call("POST", "/api/auth/password/change/", Some(body), Some(&stolen)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&other_device)).await.status, StatusCode::OK);
        // And logins of the account are throttled by the same counter.
        let r = app.post("/api/auth/login/", json!({"username": "owner", "password": STRONG})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }

    /// Logins with the old password fired all around a password change: none of their sessions
    /// outlives it (each either fails or is refused afterwards), while the changing device goes on.
    async fn logins_racing_a_password_change_do_not_survive_it(backend: Backend) {
        let app = app(backend, &[("THROTTLE_LOGIN_ACCOUNT", "0/300"), ("THROTTLE_LOGIN_IP", "0/60")]).await;
        let (changer, _, _) = app.register("racer").await;
        let logins = burst(24, |i| {
            let app = app.clone();
            async move {
                // Spread over the change: a login every 15 ms (about what two CPUs hash).
                tokio::time::sleep(std::time::Duration::from_millis(15 * i as u64)).await;
                app.post("/api/auth/login/", json!({"username": "racer", "password": STRONG})).await
            }
        });
        let change = {
            let (app, changer) = (app.clone(), changer.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
                // As an app would: again after a 503 (the hashing queue was full).
                for _ in 0..50 {
                    let r = app.call("POST", "/api/auth/password/change/", Some(body.clone()), Some(&changer)).await;
                    if r.status != StatusCode::SERVICE_UNAVAILABLE {
                        return r;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                panic!("the password change never got through");
            }
        };
        let (logins, change) = tokio::join!(logins, change);
        assert_eq!(change.status, StatusCode::OK, "{}", change.body);
        let mut opened = 0;
        for r in &logins {
            match r.status {
                StatusCode::OK => {
                    opened += 1;
                    let access = r.body["access"].as_str().unwrap();
                    let refresh = r.body["refresh"].as_str().unwrap();
                    let profile = app.call("GET", "/api/accounts/profile/", None, Some(access)).await;
                    assert_eq!(profile.status, StatusCode::UNAUTHORIZED, "a session of the old password survived the change");
                    let rotated = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
                    assert_eq!(rotated.status, StatusCode::UNAUTHORIZED, "a session of the old password still refreshes");
                    let verified = app.post("/api/auth/token/verify/", json!({"token": refresh})).await;
                    assert_eq!(verified.status, StatusCode::UNAUTHORIZED);
                    let verified = app.post("/api/auth/token/verify/", json!({"token": access})).await;
                    assert_eq!(verified.status, StatusCode::UNAUTHORIZED, "an access token of the old password verifies");
                }
                StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE => {}
                other => panic!("{other}: {}", r.body),
            }
        }
        assert!(opened > 0, "some logins finished before the change (the race was run)");
        // The device that changed the password goes on, refresh included; the new password works.
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&changer)).await.status, StatusCode::OK);
        assert!(login(&app, "racer", NEW).await.is_ok());
    }

    /// Five parallel confirms of one reset token: exactly one sets its password.
    async fn one_reset_token_confirmed_in_parallel_works_once(backend: Backend) {
        let app = app(backend, &[]).await;
        let r = app
            .post("/api/auth/registration/", json!({"username": "forgetful", "email": "f@example.com", "password1": STRONG, "password2": STRONG}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(app.post("/api/auth/password/reset/", json!({"email": "f@example.com"})).await.status, StatusCode::OK);
        let (uid, token) = letters(&app.state).last().unwrap().uid_and_token();
        let replies = burst(5, |i| {
            let (app, uid, token) = (app.clone(), uid.clone(), token.clone());
            async move {
                let password = format!("Harbor-Lantern-5{i}");
                let body = json!({"uid": uid, "token": token, "new_password1": password, "new_password2": password});
                app.post("/api/auth/password/reset/confirm/", body).await
            }
        })
        .await;
        let winners: Vec<usize> = (0..5).filter(|&i| replies[i].status == StatusCode::OK).collect();
        assert_eq!(winners.len(), 1, "one token, one new password: {:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
        for (i, r) in replies.iter().enumerate() {
            if i != winners[0] {
                assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &json!({"token": ["Invalid value"]})));
            }
        }
        // The winner's password is the one that works.
        assert!(login(&app, "forgetful", &format!("Harbor-Lantern-5{}", winners[0])).await.is_ok());
    }

    /// A thief rotated a stolen refresh token; the victim, whose copy is now spent, taps "log out":
    /// 401 as before, but the thief's session ends with it.
    async fn logout_with_a_spent_refresh_token_ends_the_thiefs_session(backend: Backend) {
        let app = app(backend, &[("REFRESH_REUSE_GRACE", "0")]).await;
        let (_, victims_refresh, _) = app.register("victim").await;
        let stolen = app.post("/api/auth/refresh/", json!({"refresh": victims_refresh})).await;
        assert_eq!(stolen.status, StatusCode::OK);
        let (thief_access, thief_refresh) =
            (stolen.body["access"].as_str().unwrap().to_string(), stolen.body["refresh"].as_str().unwrap().to_string());
        // The victim logs out (twice, in parallel, as an impatient user taps) while the thief keeps
        // using the session.
        let replies = burst(2, |_| {
            let (app, token) = (app.clone(), victims_refresh.clone());
            async move { app.post("/api/auth/logout/", json!({"refresh": token})).await }
        })
        .await;
        for r in &replies {
            assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &json!({"detail": "Token is blacklisted"})));
        }
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&thief_access)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": thief_refresh})).await.status, StatusCode::UNAUTHORIZED);
    }

    /// Verifications of a session's access token fired all around its logout: every one that
    /// starts after the logout has answered is refused (the session is read at each one; a
    /// verified token kept in memory only saves its signature check).
    async fn verifications_racing_a_logout_are_refused_once_it_answered(backend: Backend) {
        use std::sync::OnceLock;
        use std::time::{Duration, Instant};
        let app = app(backend, &[]).await;
        let (access, refresh, _) = app.register("leaver").await;
        let logged_out: Arc<OnceLock<Instant>> = Arc::default();
        // 8 clients verify over and over, until each has sent 3 verifications after the logout
        // answered (a time bound for an emulator that never answers it).
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (app, access, logged_out) = (app.clone(), access.clone(), logged_out.clone());
                tokio::spawn(async move {
                    let (mut replies, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(30));
                    let mut sent_after = 0;
                    while sent_after < 3 && Instant::now() < deadline {
                        let sent = Instant::now();
                        let r = app.post("/api/auth/token/verify/", json!({"token": access})).await;
                        let after = logged_out.get().is_some_and(|at| sent >= *at);
                        sent_after += usize::from(after);
                        replies.push((after, r));
                        // As a network client waits for its socket: the embedded store answers
                        // without ever waiting, and a loop that never yields holds its worker.
                        tokio::task::yield_now().await;
                    }
                    replies
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let logout = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
        logged_out.set(Instant::now()).unwrap();
        assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
        let (mut before, mut after) = (0, 0);
        for client in clients {
            for (sent_after, r) in client.await.unwrap() {
                if sent_after {
                    after += 1;
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a verification after the logout passed");
                } else if r.status == StatusCode::OK {
                    before += 1;
                } else {
                    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
                }
            }
        }
        assert!(before > 0 && after >= 24, "the race was run: {before} passed before, {after} sent after");
    }

    /// "paypal" and "pаypal" (Cyrillic а) registered at the same time: one user.
    async fn look_alike_usernames_registered_in_parallel_make_one_user(backend: Backend) {
        let app = app(backend, &[("THROTTLE_REGISTRATION_IP", "0/60")]).await;
        let names = ["paypal", "p\u{0430}ypal", "PAYPAL", "p\u{0430}yp\u{0430}l"];
        let replies = burst(names.len(), |i| {
            let app = app.clone();
            async move {
                let body = json!({"username": names[i], "password1": STRONG, "password2": STRONG});
                app.post("/api/auth/registration/", body).await
            }
        })
        .await;
        assert_eq!(count(&replies, StatusCode::CREATED), 1, "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
        for r in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
            assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &json!({"username": ["A user with that username already exists."]})));
        }
        // Later, one at a time, too.
        let r = app.post("/api/auth/registration/", json!({"username": "p\u{0430}ypal", "password1": STRONG, "password2": STRONG})).await;
        assert_eq!(r.body, json!({"username": ["A user with that username already exists."]}));
    }
});
