//! End to end over real HTTP: the local server binary, started as a user would start it.

use serde_json::{json, Value};

use crate::support::Server;

const STRONG: &str = "xk29!pLm#q";

/// A token's claims, unverified.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: String,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_whole_journey_over_http() {
    let dir = tempfile::tempdir().unwrap();
    // No grace window: a spent refresh token is refused at once (the grace has its own test).
    let server = Server::start_with(dir.path(), &[("REFRESH_REUSE_GRACE", "0")]);
    let c = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);

    let (status, body) = call(
        &c,
        "POST",
        url("/api/auth/registration/"),
        Some(json!({"username": "15313988692", "password1": STRONG, "password2": STRONG})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, login) =
        call(&c, "POST", url("/api/auth/login/"), Some(json!({"username": "15313988692", "password": STRONG})), None)
            .await;
    assert_eq!(status, 200);
    let access = login["access"].as_str().unwrap().to_string();
    let refresh = login["refresh"].as_str().unwrap().to_string();
    assert_eq!(login["user"]["pk"], body["user"]["pk"]);

    let (status, profile) = call(&c, "GET", url("/api/accounts/profile/"), None, Some(&access)).await;
    assert_eq!((status, profile["avatar"].clone()), (200, Value::Null));
    let patch = json!({"nickname": "小明同学", "signature": "你好，世界！🌏 签名"});
    let (status, profile) = call(&c, "PATCH", url("/api/accounts/profile/"), Some(patch), Some(&access)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (profile["nickname"].as_str(), profile["signature"].as_str()),
        (Some("小明同学"), Some("你好，世界！🌏 签名"))
    );
    let (_, again) = call(&c, "GET", url("/api/accounts/profile"), None, Some(&access)).await;
    assert_eq!(again, profile);

    let (status, rotated) = call(&c, "POST", url("/api/auth/refresh/"), Some(json!({"refresh": refresh})), None).await;
    assert_eq!(status, 200);
    let new_access = rotated["access"].as_str().unwrap().to_string();
    assert_ne!(rotated["refresh"], login["refresh"]);
    let (status, _) = call(&c, "POST", url("/api/auth/token/verify/"), Some(json!({"token": new_access})), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&c, "GET", url("/api/accounts/profile/"), None, Some(&new_access)).await;
    assert_eq!(status, 200);
    // The spent token replayed while its successor is unused (the app lost the answer): the
    // session's current pair.
    let (status, replayed) = call(&c, "POST", url("/api/auth/refresh/"), Some(json!({"refresh": refresh})), None).await;
    assert_eq!((status, &replayed["refresh"]), (200, &rotated["refresh"]), "{replayed}");
    // Once the successor is used, the spent token is reuse: refused, and its session is over.
    let (status, next) =
        call(&c, "POST", url("/api/auth/refresh/"), Some(json!({"refresh": rotated["refresh"]})), None).await;
    assert_eq!(status, 200, "{next}");
    let (status, body) = call(&c, "POST", url("/api/auth/refresh/"), Some(json!({"refresh": refresh})), None).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Token is blacklisted")));
    let (status, _) =
        call(&c, "GET", url("/api/accounts/profile/"), None, Some(next["access"].as_str().unwrap())).await;
    assert_eq!(status, 401);

    // A new login, then logout.
    let (status, login) =
        call(&c, "POST", url("/api/auth/login/"), Some(json!({"username": "15313988692", "password": STRONG})), None)
            .await;
    assert_eq!(status, 200);
    let new_access = login["access"].as_str().unwrap().to_string();
    let new_refresh = login["refresh"].as_str().unwrap().to_string();
    assert_eq!(call(&c, "POST", url("/api/auth/token/verify/"), Some(json!({"token": new_access})), None).await.0, 200);

    // Sessions and devices: a second device, named by the app, seen from the first and ended.
    let phone: Value = c
        .post(url("/api/auth/login/"))
        .header("x-device-name", "Pixel 8\tPro")
        .header("user-agent", "okhttp/3.14")
        .json(&json!({"username": "15313988692", "password": STRONG}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let phone_access = phone["access"].as_str().unwrap().to_string();
    let (status, sessions) = call(&c, "GET", url("/api/auth/sessions"), None, Some(&new_access)).await;
    assert_eq!(status, 200, "{sessions}");
    let sessions = sessions.as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "the registration's, this login's and the phone's: {sessions:?}");
    let phone_sid = claims(&phone_access)["sid"].as_str().unwrap().to_string();
    let listed = sessions.iter().find(|s| s["id"] == phone_sid.as_str()).expect("the phone's session is listed");
    assert_eq!(
        (listed["device"].as_str(), listed["ip"].as_str(), &listed["current"]),
        (Some("Pixel 8Pro"), Some("127.0.0.1"), &json!(false))
    );
    assert!(sessions.iter().any(|s| s["current"] == true && s["id"] == claims(&new_access)["sid"]));
    let ended =
        c.delete(url(&format!("/api/auth/sessions/{phone_sid}/"))).bearer_auth(&new_access).send().await.unwrap();
    assert_eq!((ended.status().as_u16(), ended.content_length()), (204, Some(0)));
    let (status, _) = call(&c, "GET", url("/api/accounts/profile/"), None, Some(&phone_access)).await;
    assert_eq!(status, 401, "the ended session's access token is refused at once");

    let (status, body) = call(&c, "POST", url("/api/auth/logout/"), Some(json!({"refresh": new_refresh})), None).await;
    assert_eq!((status, body), (200, json!({"detail": "Successfully logged out."})));
    let (status, _) = call(&c, "POST", url("/api/auth/refresh/"), Some(json!({"refresh": new_refresh})), None).await;
    assert_eq!(status, 401);
    let (status, body) = call(&c, "GET", url("/api/accounts/profile/"), None, Some(&new_access)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_not_valid")));
    let (status, _) = call(&c, "POST", url("/api/auth/token/verify/"), Some(json!({"token": new_access})), None).await;
    assert_eq!(status, 401);
    let (status, body) = call(&c, "GET", url("/nowhere"), None, None).await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
}

/// Two server processes on one data folder (WAL): they share users, keys and the blacklist, and
/// of many simultaneous refreshes of one token across both, exactly one rotates and every one
/// gets the same usable refresh token (the grace window).
#[tokio::test]
async fn two_processes_share_one_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Server::start(dir.path()), Server::start(dir.path()));
    let c = reqwest::Client::new();
    let (status, reg) = call(
        &c,
        "POST",
        format!("{}/api/auth/registration/", a.base),
        Some(json!({"username": "shared", "password1": STRONG, "password2": STRONG})),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(&c, "GET", format!("{}/api/accounts/profile/", b.base), None, reg["access"].as_str()).await;
    assert_eq!(status, 200, "a token from one process is good at the other");

    let refresh = reg["refresh"].as_str().unwrap().to_string();
    let mut attempts = Vec::new();
    for i in 0..20 {
        let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
        let (c, refresh) = (c.clone(), refresh.clone());
        attempts.push(tokio::spawn(async move {
            call(&c, "POST", format!("{base}/api/auth/refresh/"), Some(json!({"refresh": refresh})), None).await
        }));
    }
    let mut new_refresh = std::collections::HashSet::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, 200, "{body}");
        new_refresh.insert(body["refresh"].as_str().unwrap().to_string());
    }
    assert_eq!(new_refresh.len(), 1, "one rotation: every answer carries the same new refresh token");
    let next = new_refresh.into_iter().next().unwrap();
    let (status, _) =
        call(&c, "POST", format!("{}/api/auth/refresh/", b.base), Some(json!({"refresh": next})), None).await;
    assert_eq!(status, 200, "the shared answer is usable");
}

/// 50 parallel registrations of one username over HTTP create exactly one user. (Those beyond
/// the password-hashing queue's bound are refused at once with 503; the others race in the store.)
#[tokio::test]
async fn fifty_parallel_registrations_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("THROTTLE_REGISTRATION_IP", "0/60")]);
    let c = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, url) = (c.clone(), format!("{}/api/auth/registration/", server.base));
        tasks.push(tokio::spawn(async move {
            call(&c, "POST", url, Some(json!({"username": "Popular", "password1": STRONG, "password2": STRONG})), None)
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => created += 1,
            400 => assert_eq!(body, json!({"username": ["A user with that username already exists."]})),
            503 => assert_eq!(body, json!({"detail": "Service temporarily unavailable, try again later."})),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 1);
}
