//! Password change and reset (docs/api.md#password-change, #password-reset, #decision-4, #decision-10) against the in-process
//! router on both stores, with e-mail going to the outbox folder; and the reset by SES (moto).

use accounts::domain::model::User;
use axum::http::StatusCode;
use serde_json::{json, Value};
use testkit::outbox::{letters, Letter};
use testkit::{backends, Backend, TestApp, STRONG};

const CHANGE: &str = "/api/auth/password/change/";
const RESET: &str = "/api/auth/password/reset/";
const CONFIRM: &str = "/api/auth/password/reset/confirm/";
const NEW: &str = "Harbor-Lantern-58";
const MISMATCH: &str = "The two password fields didn\u{2019}t match.";
const INVALID: &str = "Invalid value";

async fn app(backend: Backend) -> TestApp {
    backend.app(&[("PASSWORD_RESET_MIN_RESPONSE_MS", "0")]).await
}

/// Registers `username` with an e-mail; returns (access, refresh, id).
async fn register(app: &TestApp, username: &str, email: &str) -> (String, String, u64) {
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": username, "email": email, "password1": STRONG, "password2": STRONG}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["access"].as_str().unwrap().into(),
        r.body["refresh"].as_str().unwrap().into(),
        r.body["user"]["pk"].as_u64().unwrap(),
    )
}

/// Signs in again (another device): (access, refresh).
async fn login(app: &TestApp, username: &str, password: &str) -> Result<(String, String), Value> {
    let r = app.post("/api/auth/login/", json!({"username": username, "password": password})).await;
    match r.status {
        StatusCode::OK => Ok((r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into())),
        _ => Err(r.body),
    }
}

async fn profile_status(app: &TestApp, access: &str) -> StatusCode {
    app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status
}

async fn refresh_status(app: &TestApp, refresh: &str) -> StatusCode {
    app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status
}

// ---------------------------------------------------------------- reset confirm

async fn reset_token_for(app: &TestApp, email: &str) -> (String, String) {
    let before = letters(&app.state).len();
    assert_eq!(app.post(RESET, json!({"email": email})).await.status, StatusCode::OK);
    let mail = letters(&app.state);
    assert_eq!(mail.len(), before + 1, "one new e-mail");
    mail.last().unwrap().uid_and_token()
}

fn confirm_body(uid: &str, token: &str, p1: &str, p2: &str) -> Value {
    json!({"uid": uid, "token": token, "new_password1": p1, "new_password2": p2})
}

// ---------------------------------------------------------------- imported Django hashes

/// Hashes made by the old service (Django 5.2): PBKDF2 (the default) and Argon2.
const DJANGO_PBKDF2: (&str, &str) =
    ("Tangerine-Kite-42", "pbkdf2_sha256$1000000$DERZjTEXjTHXlqim6hqGhw$hHBW4l5G5p0u2r64xrK4rmF7Lo18EoVQep89FDsxPn4=");
const DJANGO_ARGON2: (&str, &str) = (
    "Argon-Lantern-77",
    "argon2$argon2id$v=19$m=102400,t=2,p=8$VllhRE1mV2ZaMFg5RnBheEg2enV0Zg$+zT+QKeK90drCUuq7G1hGmtLDs1fqTEBy9gZQFrY1X4",
);

async fn register_pair(app: &TestApp, username: &str, email: &str) -> (String, String) {
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": username, "email": email, "password1": STRONG, "password2": STRONG}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into())
}

async fn login_pair(app: &TestApp, username: &str, password: &str) -> Option<(String, String)> {
    let r = app.post("/api/auth/login/", json!({"username": username, "password": password})).await;
    (r.status == StatusCode::OK)
        .then(|| (r.body["access"].as_str().unwrap().into(), r.body["refresh"].as_str().unwrap().into()))
}

async fn signed_in(app: &TestApp, (access, refresh): &(String, String)) -> (bool, bool) {
    let profile = app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status == StatusCode::OK;
    let refreshed = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status == StatusCode::OK;
    (profile, refreshed)
}

/// Confirms the reset the letter links to, after a refused attempt that must not use it up.
async fn confirm_from(app: &TestApp, letter: &Letter) {
    let (uid, token) = letter.uid_and_token();
    let r = app
        .post(
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": "other"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .post(
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": NEW}),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, json!({"detail": "Password has been reset with the new password."}))
    );
    let r = app
        .post(
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token, "new_password1": NEW, "new_password2": NEW}),
        )
        .await;
    assert_eq!(r.body, json!({"token": ["Invalid value"]}));
}

conformance!([sqlite, dynamodb] {
    // ---------------------------------------------------------------- change

    async fn change_keeps_this_session_and_ends_the_others(backend: Backend) {
        let app = app(backend).await;
        let (access, refresh, _) = register(&app, "changer", "changer@example.com").await;
        let (other_access, other_refresh) = login(&app, "changer", STRONG).await.unwrap();
        let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
        let r = app.call("POST", CHANGE, Some(body), Some(&access)).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({"detail": "New password has been saved."})));
        // This device goes on (its access and its refresh token)...
        assert_eq!(profile_status(&app, &access).await, StatusCode::OK);
        assert_eq!(refresh_status(&app, &refresh).await, StatusCode::OK);
        // ...the other one is signed out at once.
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&other_access)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["code"], "token_not_valid");
        assert_eq!(refresh_status(&app, &other_refresh).await, StatusCode::UNAUTHORIZED);
        // The old password is refused, the new one works.
        assert_eq!(login(&app, "changer", STRONG).await.unwrap_err(), json!({"non_field_errors": ["Unable to log in with provided credentials."]}));
        assert!(login(&app, "changer", NEW).await.is_ok());
    }

    async fn change_field_errors_like_the_old_service(backend: Backend) {
        let app = app(backend).await;
        let (access, _, _) = register(&app, "probe4", "probe4@example.com").await;
        let (other_access, _) = login(&app, "probe4", STRONG).await.unwrap();
        let long = "a".repeat(129);
        let cases = [
            (json!({}), json!({"old_password": ["This field is required."], "new_password1": ["This field is required."], "new_password2": ["This field is required."]})),
            (json!({"old_password": "wrong", "new_password1": "a", "new_password2": "b"}), json!({"old_password": ["Your old password was entered incorrectly. Please enter it again."]})),
            (json!({"old_password": STRONG, "new_password1": "a", "new_password2": "b"}), json!({"new_password2": [MISMATCH]})),
            (json!({"old_password": STRONG, "new_password1": "Password", "new_password2": "password"}), json!({"new_password2": [MISMATCH]})),
            (json!({"old_password": STRONG, "new_password1": "short", "new_password2": "short"}), json!({"new_password2": ["This password is too short. It must contain at least 8 characters."]})),
            (json!({"old_password": STRONG, "new_password1": "probe4xyz", "new_password2": "probe4xyz"}), json!({"new_password2": ["The password is too similar to the username."]})),
            (json!({"old_password": STRONG, "new_password1": "12345678", "new_password2": "12345678"}), json!({"new_password2": ["This password is too common.", "This password is entirely numeric."]})),
            (json!({"old_password": STRONG, "new_password1": "", "new_password2": ""}), json!({"new_password1": ["This field may not be blank."], "new_password2": ["This field may not be blank."]})),
            (json!({"old_password": "", "new_password1": "x", "new_password2": "x"}), json!({"old_password": ["This field may not be blank."]})),
            (json!({"old_password": "wrong", "new_password1": "", "new_password2": ""}), json!({"old_password": ["Your old password was entered incorrectly. Please enter it again."], "new_password1": ["This field may not be blank."], "new_password2": ["This field may not be blank."]})),
            (json!({"old_password": long, "new_password1": long, "new_password2": long}), json!({"old_password": ["Ensure this field has no more than 128 characters."], "new_password1": ["Ensure this field has no more than 128 characters."], "new_password2": ["Ensure this field has no more than 128 characters."]})),
            (json!({"old_password": null, "new_password1": 1234, "new_password2": ["x"]}), json!({"old_password": ["This field may not be null."], "new_password2": ["Not a valid string."]})),
        ];
        for (body, expected) in cases {
            let r = app.call("POST", CHANGE, Some(body.clone()), Some(&access)).await;
            assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &expected), "{body}");
        }
        // Nothing changed: the old password works, the other session lives.
        assert!(login(&app, "probe4", STRONG).await.is_ok());
        assert_eq!(profile_status(&app, &other_access).await, StatusCode::OK);
        // DRF trims password fields, as at login.
        let body = json!({"old_password": format!(" {STRONG} "), "new_password1": format!(" {NEW} "), "new_password2": NEW});
        assert_eq!(app.call("POST", CHANGE, Some(body), Some(&access)).await.status, StatusCode::OK);
        assert!(login(&app, "probe4", NEW).await.is_ok());
    }

    async fn change_needs_a_bearer_token_and_post(backend: Backend) {
        let app = app(backend).await;
        let (access, _, _) = register(&app, "anon", "anon@example.com").await;
        let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
        let r = app.post(CHANGE, body.clone()).await;
        assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &json!({"detail": "Authentication credentials were not provided."})));
        assert_eq!(r.www_authenticate(), Some("Bearer realm=\"api\""));
        let r = app.call("POST", CHANGE, Some(body.clone()), Some("garbage")).await;
        assert_eq!(r.body["code"], "token_not_valid");
        let r = app.call("GET", CHANGE, None, Some(&access)).await;
        assert_eq!((r.status, r.body), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"GET\" not allowed."})));
        assert_eq!(app.call("GET", CHANGE, None, None).await.status, StatusCode::UNAUTHORIZED);
        // Without the trailing slash too.
        let r = app.call("POST", CHANGE.trim_end_matches('/'), Some(body), Some(&access)).await;
        assert_eq!(r.status, StatusCode::OK);
    }

    // ---------------------------------------------------------------- reset request

    async fn reset_request_field_errors(backend: Backend) {
        let app = app(backend).await;
        let cases = [
            (json!({}), json!({"email": ["This field is required."]})),
            (json!({"email": ""}), json!({"email": ["This field may not be blank."]})),
            (json!({"email": "bad"}), json!({"email": ["Enter a valid email address."]})),
            (json!({"email": null}), json!({"email": ["This field may not be null."]})),
        ];
        for (body, expected) in cases {
            let r = app.post(RESET, body.clone()).await;
            assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &expected), "{body}");
        }
    }

    async fn reset_request_answers_the_same_for_known_and_unknown_addresses(backend: Backend) {
        let app = app(backend).await;
        let (_, _, id) = register(&app, "15500000003", "u2@example.com").await;
        let sent = json!({"detail": "Password reset e-mail has been sent."});
        let r = app.post(RESET, json!({"email": "nobody@example.com"})).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &sent));
        assert!(letters(&app.state).is_empty(), "no mail for an unknown address");
        // Matched case-insensitively and trimmed, as the old service did.
        let r = app.post(RESET, json!({"email": "  U2@EXAMPLE.COM "})).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &sent));
        let mail = letters(&app.state);
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].to, "u2@example.com");
        assert_eq!(mail[0].subject, "Password Reset Email");
        assert!(mail[0].text.contains("In case you forgot, your username is 15500000003."), "{}", mail[0].text);
        let (uid, token) = mail[0].uid_and_token();
        assert_eq!(uid, accounts::domain::reset_token::to_base36(id));
        assert!(mail[0].link().starts_with("http://127.0.0.1:8000/password-reset/confirm/"), "{}", mail[0].link());
        let (timestamp, tag) = token.split_once('-').unwrap();
        assert!(timestamp.bytes().all(|b| b.is_ascii_alphanumeric()) && tag.len() == 32, "{token}");
        // Form bodies work too.
        let r = app
            .send(
                axum::http::Request::post(RESET)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from("email=u2%40example.com"))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(letters(&app.state).len(), 2);
    }

    async fn reset_mail_is_configurable_and_carries_unicode_usernames(backend: Backend) {
        let app = backend.app(&[
            ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
            ("MAIL_FROM", "Accounts <accounts@example.org>"),
            ("PASSWORD_RESET_URL", "https://app.example.org/reset?uid={uid}&token={token}"),
            ("PASSWORD_RESET_SUBJECT", "重置密码"),
            ("PASSWORD_RESET_TEXT", "你好 {username}!\n{link}\n"),
        ]).await;
        register(&app, "小明", "xiaoming@example.com").await;
        assert_eq!(app.post(RESET, json!({"email": "xiaoming@example.com"})).await.status, StatusCode::OK);
        let mail = letters(&app.state);
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].subject, "重置密码");
        assert!(mail[0].text.starts_with("你好 小明!\nhttps://app.example.org/reset?uid=1&token="), "{}", mail[0].text);
        let raw = std::fs::read_dir(testkit::outbox::folder(&app.state)).unwrap().next().unwrap().unwrap().path();
        let raw = String::from_utf8(std::fs::read(raw).unwrap()).unwrap();
        assert!(raw.contains("From: Accounts <accounts@example.org>"), "{raw}");
    }

    async fn reset_request_sends_nothing_to_inactive_or_address_less_users(backend: Backend) {
        let app = app(backend).await;
        let dormant = User {
            id: 40,
            username: "dormant".into(),
            email: "dormant@example.com".into(),
            password_hash: accounts::domain::password::hash(STRONG),
            first_name: String::new(),
            last_name: String::new(),
            nickname: String::new(),
            signature: String::new(),
            avatar: None,
            is_active: false,
            date_joined: 0,
            last_login: None,
            password_version: 0,
        };
        app.state.store.insert_user(dormant).await.unwrap();
        assert_eq!(app.post(RESET, json!({"email": "dormant@example.com"})).await.status, StatusCode::OK);
        assert!(letters(&app.state).is_empty());
    }

    /// When the mail backend fails, the answer is still 200 (a failure only for existing addresses
    /// would tell them apart); the failure goes to the log.
    async fn reset_request_hides_delivery_failures(backend: Backend) {
        let app = backend.app(&[
            ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
            ("MAIL_BACKEND", "ses"),
            // Nothing listens on the discard port.
            ("SES_ENDPOINT", "http://127.0.0.1:9"),
        ]).await;
        testkit::dynamo::fake_aws_environment();
        register(&app, "unlucky", "unlucky@example.com").await;
        let r = app.post(RESET, json!({"email": "unlucky@example.com"})).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({"detail": "Password reset e-mail has been sent."})));
    }

    async fn reset_confirm_sets_the_password_and_ends_every_session(backend: Backend) {
        let app = app(backend).await;
        let (access, refresh, _) = register(&app, "forgetful", "forgetful@example.com").await;
        let (other_access, _) = login(&app, "forgetful", STRONG).await.unwrap();
        let (uid, token) = reset_token_for(&app, "forgetful@example.com").await;

        // The link in the e-mail answers with its two parts.
        let link = letters(&app.state)[0].link();
        let path = link.trim_start_matches("http://127.0.0.1:8000");
        let r = app.call("GET", path, None, None).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({"uid": uid, "token": token})));

        // Failed confirms do not use the token up.
        let r = app.post(CONFIRM, confirm_body(&uid, &token, NEW, "different-1")).await;
        assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"new_password2": [MISMATCH]})));
        let r = app.post(CONFIRM, confirm_body(&uid, &token, "short", "short")).await;
        assert_eq!(r.body, json!({"new_password2": ["This password is too short. It must contain at least 8 characters."]}));
        let r = app.post(CONFIRM, confirm_body(&uid, &token, "forgetful1", "forgetful1")).await;
        assert_eq!(r.body, json!({"new_password2": ["The password is too similar to the username."]}));
        assert_eq!(profile_status(&app, &access).await, StatusCode::OK, "nothing changed yet");

        let r = app.post(CONFIRM, confirm_body(&uid, &token, NEW, NEW)).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({"detail": "Password has been reset with the new password."})));
        // Every session is over (docs/api.md#decision-4), tokens are refused at once.
        for a in [&access, &other_access] {
            assert_eq!(profile_status(&app, a).await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(refresh_status(&app, &refresh).await, StatusCode::UNAUTHORIZED);
        assert!(login(&app, "forgetful", STRONG).await.is_err());
        assert!(login(&app, "forgetful", NEW).await.is_ok());
        // Single use: the token is spent.
        let r = app.post(CONFIRM, confirm_body(&uid, &token, "Another-Pass-99", "Another-Pass-99")).await;
        assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"token": [INVALID]})));
    }

    async fn reset_confirm_field_errors(backend: Backend) {
        let app = app(backend).await;
        let (_, _, id) = register(&app, "confirmer", "confirmer@example.com").await;
        let (uid, token) = reset_token_for(&app, "confirmer@example.com").await;
        let long = "a".repeat(129);
        let cases = [
            (json!({}), json!({"new_password1": ["This field is required."], "new_password2": ["This field is required."], "uid": ["This field is required."], "token": ["This field is required."]})),
            (confirm_body("zz", "x", "a", "b"), json!({"uid": [INVALID]})),
            (confirm_body("!!", "x", "a", "b"), json!({"uid": [INVALID]})),
            (confirm_body("zzzzzzzzzzzzzzzzzzzz", "x", "a", "b"), json!({"uid": [INVALID]})),
            (confirm_body(&uid, "x", "a", "b"), json!({"token": [INVALID]})),
            (confirm_body(&uid, &format!("{token}0"), NEW, NEW), json!({"token": [INVALID]})),
            (confirm_body("", "", "xk", "xk"), json!({"uid": ["This field may not be blank."], "token": ["This field may not be blank."]})),
            (confirm_body(&uid, "x", "", "b"), json!({"new_password1": ["This field may not be blank."]})),
            (confirm_body(&uid, &token, &long, &long), json!({"new_password1": ["Ensure this field has no more than 128 characters."], "new_password2": ["Ensure this field has no more than 128 characters."]})),
            (confirm_body(&uid, &token, "12345678", "12345678"), json!({"new_password2": ["This password is too common.", "This password is entirely numeric."]})),
        ];
        for (body, expected) in cases {
            let r = app.post(CONFIRM, body.clone()).await;
            assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &expected), "{body}");
        }
        // Another user's uid with this token.
        let (_, _, other) = register(&app, "bystander", "bystander@example.com").await;
        let other_uid = accounts::domain::reset_token::to_base36(other);
        let r = app.post(CONFIRM, confirm_body(&other_uid, &token, NEW, NEW)).await;
        assert_eq!(r.body, json!({"token": [INVALID]}));
        // The uid is read in base 36, either case.
        assert_eq!(uid, accounts::domain::reset_token::to_base36(id));
        let r = app.post(CONFIRM, confirm_body(&uid.to_uppercase(), &token, NEW, NEW)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    async fn reset_token_dies_with_a_login_and_with_time(backend: Backend) {
        let app = app(backend).await;
        let (_, _, id) = register(&app, "traveller", "traveller@example.com").await;
        let (uid, token) = reset_token_for(&app, "traveller@example.com").await;
        // A login changes last_login: outstanding tokens stop working (as in the old service).
        login(&app, "traveller", STRONG).await.unwrap();
        let r = app.post(CONFIRM, confirm_body(&uid, &token, NEW, NEW)).await;
        assert_eq!(r.body, json!({"token": [INVALID]}));
        // A token made longer ago than PASSWORD_RESET_TIMEOUT (3 days) is expired; just inside, fine.
        let user = app.state.store.get_user(id).await.unwrap().unwrap();
        let now = chrono::Utc::now().timestamp();
        let timeout = app.state.reset_tokens.timeout;
        assert_eq!(timeout, 3 * 24 * 3600);
        let expired = app.state.reset_tokens.make(&user, now - timeout - 5);
        let r = app.post(CONFIRM, confirm_body(&uid, &expired, NEW, NEW)).await;
        assert_eq!(r.body, json!({"token": [INVALID]}));
        let fresh = app.state.reset_tokens.make(&user, now - timeout + 60);
        let r = app.post(CONFIRM, confirm_body(&uid, &fresh, NEW, NEW)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    async fn reset_confirm_refuses_inactive_users(backend: Backend) {
        let app = app(backend).await;
        let (_, _, id) = register(&app, "leaver", "leaver@example.com").await;
        let user = app.state.store.get_user(id).await.unwrap().unwrap();
        let token = app.state.reset_tokens.make(&user, chrono::Utc::now().timestamp());
        // Deactivated after the token was made (re-inserted under another id, inactive).
        let inactive = User { id: 99, username: "leaver2".into(), email: String::new(), is_active: false, ..user.clone() };
        app.state.store.insert_user(inactive.clone()).await.unwrap();
        let token2 = app.state.reset_tokens.make(&inactive, chrono::Utc::now().timestamp());
        let r = app.post(CONFIRM, confirm_body("2r", &token2, NEW, NEW)).await;
        assert_eq!(r.body, json!({"uid": [INVALID]}));
        let r = app.post(CONFIRM, confirm_body(&accounts::domain::reset_token::to_base36(id), &token, NEW, NEW)).await;
        assert_eq!(r.status, StatusCode::OK);
    }

    // ---------------------------------------------------------------- the link

    async fn reset_link_echoes_uid_and_token(backend: Backend) {
        let app = app(backend).await;
        for path in ["/password-reset/confirm/3/dijafz-a875b62788f7a95c7e3d4db47030f940/", "/password-reset/confirm/3/dijafz-a875b62788f7a95c7e3d4db47030f940"] {
            let r = app.call("GET", path, None, None).await;
            assert_eq!((r.status, r.body), (StatusCode::OK, json!({"uid": "3", "token": "dijafz-a875b62788f7a95c7e3d4db47030f940"})), "{path}");
        }
        for path in ["/password-reset/confirm/3/a.b/", "/password-reset/confirm/%21/abc/", "/password-reset/confirm/3/", "/password-reset/confirm/3/a/b/"] {
            let r = app.call("GET", path, None, None).await;
            assert_eq!((r.status, r.body), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})), "{path}");
        }
        let r = app.call("POST", "/password-reset/confirm/3/abc/", Some(json!({})), None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    async fn django_hashes_log_in_and_are_upgraded_to_argon2id(backend: Backend) {
        let app = app(backend).await;
        for (id, (password, hash)) in [(1u64, DJANGO_PBKDF2), (2, DJANGO_ARGON2)] {
            let username = format!("imported{id}");
            let user = User {
                id,
                username: username.clone(),
                email: format!("{username}@example.com"),
                password_hash: hash.into(),
                first_name: String::new(),
                last_name: String::new(),
                nickname: String::new(),
                signature: String::new(),
                avatar: None,
                is_active: true,
                date_joined: 0,
                last_login: None,
                password_version: 0,
            };
            app.state.store.insert_user(user).await.unwrap();
            assert!(login(&app, &username, "wrong-password").await.is_err(), "{hash}");
            assert!(login(&app, &username, password).await.is_ok(), "{hash}");
            let stored = app.state.store.get_user(id).await.unwrap().unwrap().password_hash;
            assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "upgraded: {stored}");
            assert!(login(&app, &username, password).await.is_ok(), "the upgraded hash verifies");
            // Change from the imported password works too (old_password verified the same way).
            let (access, _) = login(&app, &username, password).await.unwrap();
            let body = json!({"old_password": password, "new_password1": NEW, "new_password2": NEW});
            assert_eq!(app.call("POST", CHANGE, Some(body), Some(&access)).await.status, StatusCode::OK);
        }
    }

    async fn change_then_reset_end_the_right_sessions(backend: Backend) {
        let app = app(backend).await;
        let first = register_pair(&app, "小明", "xiaoming@example.com").await;
        let second = login_pair(&app, "小明", STRONG).await.unwrap();
        let third = login_pair(&app, "小明", STRONG).await.unwrap();

        // Change from the first session: the two others end (on DynamoDB their sessions are found on by_user).
        let body = json!({"old_password": STRONG, "new_password1": NEW, "new_password2": NEW});
        let r = app.call("POST", "/api/auth/password/change/", Some(body), Some(&first.0)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(signed_in(&app, &second).await, (false, false));
        assert_eq!(signed_in(&app, &third).await, (false, false));
        let r = app.call("GET", "/api/accounts/profile/", None, Some(&first.0)).await;
        assert_eq!(r.status, StatusCode::OK, "the changing session continues");
        assert!(login_pair(&app, "小明", STRONG).await.is_none());
        let after_change = login_pair(&app, "小明", NEW).await.unwrap();

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
        assert!(login_pair(&app, "小明", NEW).await.is_some());
        assert!(app.post("/api/auth/password/reset/", json!({"email": "nobody@example.com"})).await.status == StatusCode::OK);
        assert_eq!(letters(&app.state).len(), 2, "no mail for an unknown address");
    }
});

/// The whole reset with SES as the mail backend (moto's SES v2): the message is read from what
/// moto accepted, for the address of this test only.
#[tokio::test]
async fn reset_by_ses() {
    let endpoint = testkit::dynamo::endpoint();
    testkit::dynamo::fake_aws_environment();
    let sender = format!("accounts-{}@example.com", uuid::Uuid::new_v4().simple());
    let ses = accounts::mail::ses::client(Some(&endpoint)).await;
    ses.create_email_identity().email_identity(&sender).send().await.unwrap();
    let env = [
        ("MAIL_BACKEND", "ses"),
        ("SES_ENDPOINT", endpoint.as_str()),
        ("MAIL_FROM", sender.as_str()),
        ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
    ];
    let app = Backend::Dynamo.app(&env).await;
    let address = format!("u{}@example.org", uuid::Uuid::new_v4().simple());
    let session = register_pair(&app, "sesuser", &address).await;
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
    assert!(login_pair(&app, "sesuser", NEW).await.is_some());
}
