//! The contract (docs/api.md), endpoint by endpoint, against the in-process router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use testkit::{claims, forge, TestApp, STRONG};

const AUTH_HEADER: &str = "Bearer realm=\"api\"";

// ---------------------------------------------------------------- registration

#[tokio::test]
async fn registration_logs_the_user_in() {
    let app = TestApp::new();
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "18859943080", "password1": STRONG, "password2": STRONG, "email": "U2@Example.COM"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh", "user"]);
    assert_eq!(
        r.body["user"],
        json!({"pk": 1, "username": "18859943080", "email": "u2@example.com", "first_name": "", "last_name": ""})
    );
    assert!(r.headers.get("set-cookie").is_none(), "no cookies (docs/api.md#decision-1)");
    let access = claims(r.body["access"].as_str().unwrap());
    let refresh = claims(r.body["refresh"].as_str().unwrap());
    assert_eq!(access["token_type"], "access");
    assert_eq!(refresh["token_type"], "refresh");
    assert_eq!(access["user_id"], "1");
    assert_eq!(access["iat"], refresh["iat"]);
    assert_eq!(access["sid"], refresh["sid"]);
    // Ids increase.
    let (_, _, second) = app.register("second").await;
    assert_eq!(second, 2);
}

#[tokio::test]
async fn registration_field_errors() {
    let app = TestApp::new();
    app.register("CaseUser").await;
    let path = "/api/auth/registration/";
    let cases = [
        (
            json!({}),
            json!({"username": ["This field is required."], "password1": ["This field is required."], "password2": ["This field is required."]}),
        ),
        (
            json!({"username": "a", "password1": "xk29!pLm#q", "password2": "different!1"}),
            json!({"non_field_errors": ["The two password fields didn't match."]}),
        ),
        (
            json!({"username": "caseuser", "password1": STRONG, "password2": STRONG}),
            json!({"username": ["A user with that username already exists."]}),
        ),
        (
            json!({"username": "bad name!", "password1": STRONG, "password2": STRONG}),
            json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}),
        ),
        (
            json!({"username": "  ", "password1": STRONG, "password2": null}),
            json!({"username": ["This field may not be blank."], "password2": ["This field may not be null."]}),
        ),
        (
            json!({"username": "u1", "password1": STRONG, "password2": STRONG, "email": "bad"}),
            json!({"email": ["Enter a valid email address."]}),
        ),
        (
            json!({"username": "u1", "password1": STRONG, "password2": STRONG, "email": ""}),
            json!({"email": ["This field may not be blank."]}),
        ),
        (
            json!({"username": "u1", "password1": "short", "password2": "short"}),
            json!({"password1": ["This password is too short. It must contain at least 8 characters."]}),
        ),
        (
            json!({"username": "u1", "password1": "qwerty123", "password2": "qwerty123"}),
            json!({"password1": ["This password is too common."]}),
        ),
        (
            json!({"username": "u1", "password1": "48261937", "password2": "48261937"}),
            json!({"password1": ["This password is entirely numeric."]}),
        ),
        (
            json!({"username": "u1", "password1": "12345678", "password2": "12345678"}),
            json!({"password1": ["This password is too common.", "This password is entirely numeric."]}),
        ),
        (
            json!({"username": "probe3", "password1": "probe3xyz", "password2": "probe3xyz"}),
            json!({"non_field_errors": ["The password is too similar to the username."]}),
        ),
        (
            json!({"username": "a".repeat(151), "password1": STRONG, "password2": STRONG}),
            json!({"username": ["Ensure this field has no more than 150 characters."]}),
        ),
        (
            json!({"username": "u1", "password1": true, "password2": ["x"]}),
            json!({"password1": ["Not a valid string."], "password2": ["Not a valid string."]}),
        ),
        (
            json!({"username": "caseuser", "password1": "short", "password2": "x", "email": "bad"}),
            json!({"username": ["A user with that username already exists."], "email": ["Enter a valid email address."], "password1": ["This password is too short. It must contain at least 8 characters."]}),
        ),
    ];
    for (body, expected) in cases {
        let r = app.post(path, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body, expected, "{body}");
    }
    // Nothing was written by any of them.
    let r = app.post("/api/auth/login/", json!({"username": "u1", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let app = TestApp::new();
    let body = |u: &str, e: &str| json!({"username": u, "password1": STRONG, "password2": STRONG, "email": e});
    assert_eq!(app.post("/api/auth/registration/", body("one", "Same@Example.com")).await.status, StatusCode::CREATED);
    let r = app.post("/api/auth/registration/", body("two", "same@example.COM")).await;
    assert_eq!(r.body, json!({"email": ["A user is already registered with this e-mail address."]}));
}

#[tokio::test]
async fn unicode_usernames_and_numbers_as_text() {
    let app = TestApp::new();
    let (_, _, id) = app.register("小明同学").await;
    let r = app.post("/api/auth/login/", json!({"username": "小明同学", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["pk"], id);
    // A number is read as its text, like DRF's CharField.
    let r = app
        .post("/api/auth/registration/", json!({"username": 15313988692u64, "password1": STRONG, "password2": STRONG}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["user"]["username"], "15313988692");
}

// ---------------------------------------------------------------- login

#[tokio::test]
async fn login_matches_usernames_case_insensitively() {
    let app = TestApp::new();
    app.register("CaseUser").await;
    let r = app.post("/api/auth/login/", json!({"username": "caseuser", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh", "user"]);
    assert_eq!(r.body["user"]["username"], "CaseUser");
    // Passwords are trimmed like every DRF CharField.
    let r = app.post("/api/auth/login/", json!({"username": "CASEUSER", "password": format!("  {STRONG} ")})).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn login_errors() {
    let app = TestApp::new();
    app.register("known").await;
    let bad = json!({"non_field_errors": ["Unable to log in with provided credentials."]});
    let must = json!({"non_field_errors": ["Must include \"username\" and \"password\"."]});
    let cases = [
        (json!({"username": "known", "password": "wrong-password"}), bad.clone()),
        (json!({"username": "unknown", "password": STRONG}), bad),
        (json!({"username": "known"}), json!({"password": ["This field is required."]})),
        (json!({"username": "known", "password": ""}), json!({"password": ["This field may not be blank."]})),
        (json!({"password": "x"}), must.clone()),
        (json!({"username": "", "password": "x"}), must.clone()),
        (json!({"email": "a@b.co", "password": "x"}), must),
    ];
    for (body, expected) in cases {
        let r = app.post("/api/auth/login/", body.clone()).await;
        assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &expected), "{body}");
    }
}

#[tokio::test]
async fn inactive_users_cannot_log_in() {
    let app = TestApp::new();
    let hash = accounts::domain::password::hash(STRONG);
    app.state
        .store
        .insert_user(accounts::domain::model::User {
            id: 40,
            username: "sleeper".into(),
            email: String::new(),
            password_hash: hash,
            first_name: String::new(),
            last_name: String::new(),
            nickname: String::new(),
            signature: String::new(),
            avatar: None,
            is_active: false,
            date_joined: 0,
            last_login: None,
            password_version: 0,
        })
        .await
        .unwrap();
    let r = app.post("/api/auth/login/", json!({"username": "sleeper", "password": STRONG})).await;
    assert_eq!(r.body, json!({"non_field_errors": ["Unable to log in with provided credentials."]}));
}

// ---------------------------------------------------------------- bodies, methods, paths

#[tokio::test]
async fn form_and_multipart_bodies_work_like_json() {
    let app = TestApp::new();
    app.register("formuser").await;
    let form = Request::post("/api/auth/login/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("username=formuser&password={}", urlencode(STRONG))))
        .unwrap();
    assert_eq!(app.send(form).await.status, StatusCode::OK);
    let boundary = "XyZ";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nformuser\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{STRONG}\r\n--{boundary}--\r\n"
    );
    let request = Request::post("/api/auth/login/")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(multipart))
        .unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let app = TestApp::new();
    let raw = |ct: &str, body: &str| {
        Request::post("/api/auth/login/").header("content-type", ct).body(Body::from(body.to_string())).unwrap()
    };
    let r = app.send(raw("text/plain", "x")).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!({"detail": "Unsupported media type \"text/plain\" in request."}))
    );
    let r = app.send(raw("application/json", "{bad")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["detail"].as_str().unwrap().starts_with("JSON parse error - "), "{}", r.body);
    let r = app.send(raw("application/json", "[1]")).await;
    assert_eq!(r.body, json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}));
    let r = app.send(raw("application/json; charset=utf-8", "")).await;
    assert_eq!(r.body, json!({"password": ["This field is required."]}));
    let r = app.send(raw("multipart/form-data; boundary=zz", "garbage")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.send(raw("application/json", "\"just a string\"")).await;
    assert_eq!(r.body, json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}));
}

#[tokio::test]
async fn every_path_answers_with_and_without_slash() {
    let app = TestApp::new();
    for endpoint in accounts::http::Endpoint::ALL {
        for path in endpoint.paths() {
            let method = endpoint.methods()[0].as_str();
            // Path parameters (`{uid}`) get a sample value.
            let path =
                &path.split('/').map(|s| if s.starts_with('{') { "1z" } else { s }).collect::<Vec<_>>().join("/");
            let r = app.call(method, path, Some(json!({})), None).await;
            assert_ne!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_ne!(r.status, StatusCode::MOVED_PERMANENTLY, "{path}");
        }
    }
    let r = app.post("/api/auth/login", json!({"username": "x", "password": "y"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let app = TestApp::new();
    let r = app.call("GET", "/nope", None, None).await;
    assert_eq!((r.status, r.body), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
    let r = app.call("GET", "/api/auth/login/", None, None).await;
    assert_eq!((r.status, r.body), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"GET\" not allowed."})));
    let r = app.call("GET", "/api/auth/registration", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // A protected endpoint asks for credentials before it talks about methods.
    let r = app.call("DELETE", "/api/accounts/profile/", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (access, _, _) = app.register("methods").await;
    let r = app.call("DELETE", "/api/accounts/profile/", None, Some(&access)).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"DELETE\" not allowed."}))
    );
}

// ---------------------------------------------------------------- authentication layer

#[tokio::test]
async fn bearer_header_rules() {
    let app = TestApp::new();
    let (access, refresh, _) = app.register("bearer").await;
    let get = |header: Option<String>| {
        let mut b = Request::get("/api/accounts/profile/");
        if let Some(h) = header {
            b = b.header("authorization", h);
        }
        b.body(Body::empty()).unwrap()
    };
    let no_credentials = json!({"detail": "Authentication credentials were not provided."});
    for header in
        [None, Some(format!("bearer {access}")), Some(format!("Token {access}")), Some(format!("JWT {access}"))]
    {
        let r = app.send(get(header.clone())).await;
        assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &no_credentials), "{header:?}");
        assert_eq!(r.www_authenticate(), Some(AUTH_HEADER));
    }
    for header in ["Bearer".to_string(), "Bearer a b".to_string()] {
        let r = app.send(get(Some(header))).await;
        assert_eq!(
            r.body,
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"})
        );
    }
    let invalid = |message: &str| json!({"detail": "Given token not valid for any token type", "code": "token_not_valid", "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]});
    let r = app.send(get(Some("Bearer garbage".into()))).await;
    assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, invalid("Token is invalid")));
    // Bytes that are not UTF-8 (HTTP allows them in a header): read lossily, an invalid token.
    let latin1 = |bytes: &[u8]| {
        let value = axum::http::HeaderValue::from_bytes(bytes).unwrap();
        Request::get("/api/accounts/profile/").header("authorization", value).body(Body::empty()).unwrap()
    };
    let r = app.send(latin1(b"Bearer ab\xe9cd")).await;
    assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, invalid("Token is invalid")));
    let r = app.send(latin1(b"Bearer \xe9 x")).await;
    assert_eq!(r.body["code"], "bad_authorization_header");
    let r = app.send(latin1(format!("B\u{e9}arer {access}").as_bytes())).await;
    assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &no_credentials));
    let r = app.send(get(Some(format!("Bearer {refresh}")))).await;
    assert_eq!(r.body, invalid("Token has wrong type"));
    let mut expired = claims(&access);
    expired["exp"] = json!(1_000);
    let r = app.send(get(Some(format!("Bearer {}", forge(&expired))))).await;
    assert_eq!(r.body, invalid("Token is expired"));
    let mut no_id = claims(&access);
    no_id.as_object_mut().unwrap().remove("jti");
    let r = app.send(get(Some(format!("Bearer {}", forge(&no_id))))).await;
    assert_eq!(r.body, invalid("Token has no id"));
    // An integer user_id is accepted, as simplejwt does.
    let mut int_id = claims(&access);
    int_id["user_id"] = json!(1);
    assert_eq!(app.send(get(Some(format!("Bearer {}", forge(&int_id))))).await.status, StatusCode::OK);
    // A bad Bearer header is refused even where no login is needed.
    let r = app
        .call("POST", "/api/auth/login/", Some(json!({"username": "bearer", "password": STRONG})), Some("junk"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleted_and_inactive_users_behind_valid_tokens() {
    let app = TestApp::new();
    let (access, _, _) = app.register("ghost").await;
    let mut other = claims(&access);
    other["user_id"] = json!("999");
    let r = app.call("GET", "/api/auth/user/", None, Some(&forge(&other))).await;
    // The session belongs to user 1, so a token naming user 999 has no live session.
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "token_not_valid");
}

// ---------------------------------------------------------------- refresh

#[tokio::test]
async fn refresh_rotates_and_blacklists() {
    // Without the grace window a spent token is refused at once, as in the old service.
    let app = TestApp::with_env(&[("REFRESH_REUSE_GRACE", "0")]);
    let (_, refresh, _) = app.register("rotator").await;
    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh"]);
    let new_refresh = r.body["refresh"].as_str().unwrap().to_string();
    let (old, new) = (claims(&refresh), claims(&new_refresh));
    assert_ne!(old["jti"], new["jti"]);
    assert_eq!(old["sid"], new["sid"]);
    assert_eq!(new["exp"].as_i64().unwrap() - new["iat"].as_i64().unwrap(), 604_800);
    let new_access = r.body["access"].as_str().unwrap();
    assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(new_access)).await.status, StatusCode::OK);

    // The library route shares the rotation and adds the expirations.
    let r = app.post("/api/auth/token/refresh/", json!({"refresh": new_refresh})).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access", "refresh", "access_expiration", "refresh_expiration"]);
    let expiration = r.body["access_expiration"].as_str().unwrap();
    assert!(expiration.ends_with('Z') && expiration.len() == 27, "{expiration}");
    let newest = r.body["refresh"].as_str().unwrap().to_string();

    // Replaying a spent token is refused (and ends the session: docs/api.md#decision-3).
    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::UNAUTHORIZED, &json!({"detail": "Token is blacklisted", "code": "token_not_valid"}))
    );
    assert_eq!(r.www_authenticate(), Some(AUTH_HEADER));
    assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": newest})).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_errors() {
    let app = TestApp::new();
    let (access, refresh, _) = app.register("refresher").await;
    let rejected = |m: &str| json!({"detail": m, "code": "token_not_valid"});
    let r = app.post("/api/auth/refresh/", json!({"refresh": "garbage"})).await;
    assert_eq!((r.status, r.body), (StatusCode::UNAUTHORIZED, rejected("Token is invalid")));
    let r = app.post("/api/auth/refresh/", json!({"refresh": access})).await;
    assert_eq!(r.body, rejected("Token has wrong type"));
    let mut expired = claims(&refresh);
    expired["exp"] = json!(1_000);
    let r = app.post("/api/auth/refresh/", json!({"refresh": forge(&expired)})).await;
    assert_eq!(r.body, rejected("Token is expired"));
    let r = app.post("/api/auth/refresh/", json!({})).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"refresh": ["This field is required."]})));
    let r = app.post("/api/auth/token/refresh/", json!({})).await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::UNAUTHORIZED, &json!({"detail": "No valid refresh token found.", "code": "token_not_valid"}))
    );
    assert_eq!(r.www_authenticate(), Some(AUTH_HEADER));
    // A token signed for a user that does not exist: 401, not the old service's 500.
    let mut stranger = claims(&refresh);
    stranger["user_id"] = json!("4242");
    let r = app.post("/api/auth/refresh/", json!({"refresh": forge(&stranger)})).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::UNAUTHORIZED, json!({"detail": "No active account found for the given token."}))
    );
}

// ---------------------------------------------------------------- verify

#[tokio::test]
async fn verify_cases() {
    let app = TestApp::new();
    let (access, refresh, _) = app.register("verifier").await;
    for token in [&access, &refresh] {
        let r = app.post("/api/auth/token/verify/", json!({"token": token})).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({})));
    }
    let r = app.post("/api/auth/token/verify/", json!({"token": "garbage"})).await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::UNAUTHORIZED, json!({"detail": "Token is invalid", "code": "token_not_valid"}))
    );
    let mut expired = claims(&access);
    expired["exp"] = json!(1_000);
    let r = app.post("/api/auth/token/verify/", json!({"token": forge(&expired)})).await;
    assert_eq!(r.body, json!({"detail": "Token is expired", "code": "token_not_valid"}));
    let r = app.post("/api/auth/token/verify/", json!({})).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"token": ["This field is required."]})));
    app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    let r = app.post("/api/auth/token/verify/", json!({"token": refresh})).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"non_field_errors": ["Token is blacklisted"]})));
}

// ---------------------------------------------------------------- logout

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::new();
    let (access, refresh, _) = app.register("leaver").await;
    let (other_access, _, _) = {
        let r = app.post("/api/auth/login/", json!({"username": "leaver", "password": STRONG})).await;
        (r.body["access"].as_str().unwrap().to_string(), (), ())
    };
    let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({"detail": "Successfully logged out."})));
    // Decision 2: the access token of the ended session is refused at once, everywhere.
    for (method, path) in [("GET", "/api/accounts/profile/"), ("GET", "/api/auth/user/")] {
        let r = app.call(method, path, None, Some(&access)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["code"], "token_not_valid");
    }
    let r = app.post("/api/auth/token/verify/", json!({"token": access})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(r.body, json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
    // The other device's session goes on.
    assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&other_access)).await.status, StatusCode::OK);
    // A second logout: the view's own 401s have no code and no WWW-Authenticate.
    let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
    assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &json!({"detail": "Token is blacklisted"})));
    assert_eq!(r.www_authenticate(), None);
}

#[tokio::test]
async fn logout_errors() {
    let app = TestApp::new();
    let (access, refresh, _) = app.register("logouterrors").await;
    let cases = [
        (json!({}), "Refresh token was not included in request data."),
        (json!({"refresh": "garbage"}), "Token is invalid"),
        (json!({"refresh": access}), "Token has wrong type"),
    ];
    for (body, detail) in cases {
        let r = app.post("/api/auth/logout/", body.clone()).await;
        assert_eq!((r.status, &r.body), (StatusCode::UNAUTHORIZED, &json!({"detail": detail})), "{body}");
        assert_eq!(r.www_authenticate(), None);
    }
    let mut expired = claims(&refresh);
    expired["exp"] = json!(1_000);
    let r = app.post("/api/auth/logout/", json!({"refresh": forge(&expired)})).await;
    assert_eq!(r.body, json!({"detail": "Token is expired"}));
    // Nothing above spent the real token.
    assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status, StatusCode::OK);
    let r = app.call("GET", "/api/auth/logout/", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // With an invalid Bearer header the authentication layer answers first.
    let r = app.call("POST", "/api/auth/logout/", Some(json!({"refresh": "x"})), Some("garbage")).await;
    assert_eq!(r.body["detail"], "Given token not valid for any token type");
}

// ---------------------------------------------------------------- user details

#[tokio::test]
async fn user_details_read_and_update() {
    let app = TestApp::new();
    let (access, _, id) = app.register("details").await;
    app.register("taken").await;
    let r = app.call("GET", "/api/auth/user/", None, Some(&access)).await;
    assert_eq!(r.body, json!({"pk": id, "username": "details", "email": "", "first_name": "", "last_name": ""}));
    let r = app
        .call(
            "PATCH",
            "/api/auth/user/",
            Some(json!({"first_name": "Ada", "email": "ignored@x.io", "pk": 99})),
            Some(&access),
        )
        .await;
    assert_eq!(r.body, json!({"pk": id, "username": "details", "email": "", "first_name": "Ada", "last_name": ""}));
    // Decision 8: re-sending one's own username is accepted, so PUT works.
    let r =
        app.call("PUT", "/api/auth/user/", Some(json!({"username": "details", "last_name": "L"})), Some(&access)).await;
    assert_eq!((r.status, r.body["last_name"].clone()), (StatusCode::OK, json!("L")));
    let r = app.call("PUT", "/api/auth/user/", Some(json!({"last_name": "L"})), Some(&access)).await;
    assert_eq!(r.body, json!({"username": ["This field is required."]}));
    let r = app.call("PATCH", "/api/auth/user/", Some(json!({"username": "TAKEN"})), Some(&access)).await;
    assert_eq!(r.body, json!({"username": ["A user with that username already exists."]}));
    let r = app.call("PATCH", "/api/auth/user/", Some(json!({"username": "Renamed"})), Some(&access)).await;
    assert_eq!(r.body["username"], "Renamed");
    assert_eq!(
        app.post("/api/auth/login/", json!({"username": "renamed", "password": STRONG})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post("/api/auth/login/", json!({"username": "details", "password": STRONG})).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = app.call("GET", "/api/auth/user/", None, None).await;
    assert_eq!(r.body, json!({"detail": "Authentication credentials were not provided."}));
}

// ---------------------------------------------------------------- profile

#[tokio::test]
async fn profile_read_and_update() {
    let app = TestApp::new();
    let (access, _, id) = app.register("15313988692").await;
    let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    assert_eq!(
        r.body,
        json!({"id": id, "username": "15313988692", "email": "", "nickname": "", "signature": "", "avatar": null})
    );
    let patch = json!({"nickname": "小明同学", "signature": "你好，世界！🌏 签名", "username": "ignored", "id": 7, "email": "x@y.zz"});
    let r = app.call("PATCH", "/api/accounts/profile/", Some(patch), Some(&access)).await;
    assert_eq!(
        r.body,
        json!({"id": id, "username": "15313988692", "email": "", "nickname": "小明同学", "signature": "你好，世界！🌏 签名", "avatar": null})
    );
    // Partial: the other field stays.
    let r = app.call("PUT", "/api/accounts/profile/", Some(json!({"signature": "新"})), Some(&access)).await;
    assert_eq!((r.body["nickname"].clone(), r.body["signature"].clone()), (json!("小明同学"), json!("新")));
    let fifty = "字".repeat(50);
    let r = app.call("PATCH", "/api/accounts/profile/", Some(json!({"nickname": fifty})), Some(&access)).await;
    assert_eq!(r.status, StatusCode::OK);
    let cases = [
        (
            json!({"nickname": "字".repeat(51)}),
            json!({"nickname": ["Ensure this field has no more than 50 characters."]}),
        ),
        (
            json!({"signature": "s".repeat(256)}),
            json!({"signature": ["Ensure this field has no more than 255 characters."]}),
        ),
        (json!({"nickname": null}), json!({"nickname": ["This field may not be null."]})),
        (
            json!({"avatar": "http://x/a.png"}),
            json!({"avatar": ["The submitted data was not a file. Check the encoding type on the form."]}),
        ),
    ];
    for (body, expected) in cases {
        let r = app.call("PATCH", "/api/accounts/profile/", Some(body.clone()), Some(&access)).await;
        assert_eq!((r.status, &r.body), (StatusCode::BAD_REQUEST, &expected), "{body}");
    }
    let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    assert_eq!(r.body["nickname"], "字".repeat(50), "rejected updates changed nothing");
    let r = app.call("PATCH", "/api/accounts/profile/", Some(json!({"avatar": null})), Some(&access)).await;
    assert_eq!((r.status, r.body["avatar"].clone()), (StatusCode::OK, json!(null)));
}

#[tokio::test]
async fn profile_responses_carry_raw_utf8() {
    let app = TestApp::new();
    let (access, _, _) = app.register("utf8").await;
    let request = Request::patch("/api/accounts/profile/")
        .header("authorization", format!("Bearer {access}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"nickname": "小明"}).to_string()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("小明") && !text.contains("\\u"), "{text}");
}

#[tokio::test]
async fn form_profile_updates_read_empty_avatar_as_null() {
    let app = TestApp::new();
    let (access, _, _) = app.register("formprofile").await;
    let form = |body: &str| {
        Request::patch("/api/accounts/profile/")
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let r = app.send(form("avatar=&nickname=%E5%B0%8F")).await;
    assert_eq!(
        (r.status, r.body["avatar"].clone(), r.body["nickname"].clone()),
        (StatusCode::OK, json!(null), json!("小"))
    );
    let r = app.send(form("avatar=abc")).await;
    assert_eq!(r.body, json!({"avatar": ["The submitted data was not a file. Check the encoding type on the form."]}));
    // In JSON an empty string is not a file either.
    let r = app.call("PATCH", "/api/accounts/profile/", Some(json!({"avatar": ""})), Some(&access)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
