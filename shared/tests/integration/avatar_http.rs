//! Avatars in process: a multipart upload arriving as API Gateway delivers it (base64-encoded
//! body) through `lambda_http`, the media base URL, and the whole avatar flow on S3 (moto):
//! multipart replace and clear, and the direct upload through a real presigned PUT.

use std::io::Cursor;
use std::sync::Arc;

use accounts::config::Config;
use accounts::http::Endpoint;
use accounts::media::s3::S3Media;
use accounts::media::{MediaStore, SharedMedia};
use accounts::state::AppState;
use accounts::store::sqlite::SqliteStore;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use image::{DynamicImage, ImageFormat};
use serde_json::{json, Value};
use testkit::TestApp;
use tower::ServiceExt;

const BOUNDARY: &str = "----avatar-boundary-7MA4YWxkTrZu0gW";

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::new_rgb8(w, h).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
    out
}

/// A multipart body: text fields, then an `avatar` file part.
fn multipart(fields: &[(&str, &str)], avatar: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some(bytes) = avatar {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// An HTTP API v2.0 event of `PATCH /api/accounts/profile/` with a base64-encoded multipart body,
/// as API Gateway sends binary bodies.
fn base64_multipart_event(access: &str, body: &[u8]) -> String {
    json!({
        "version": "2.0",
        "routeKey": "PATCH /api/accounts/profile/",
        "rawPath": "/api/accounts/profile/",
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {access}"),
            "content-type": format!("multipart/form-data; boundary={BOUNDARY}"),
            "host": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com", "domainPrefix": "abcdef1234",
            "http": {"method": "PATCH", "path": "/api/accounts/profile/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "okhttp/4.12.0"},
            "requestId": "avatar-1", "routeKey": "PATCH /api/accounts/profile/", "stage": "$default",
            "time": "03/Feb/2025:12:00:00 +0000", "timeEpoch": 1738584000007u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
    .to_string()
}

async fn invoke_event(state: &AppState, event: &str) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(event).expect("a Lambda HTTP event");
    let response = accounts::http::router(&[Endpoint::Profile], state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_base64_encoded_multipart_event_uploads_the_avatar() {
    let app = TestApp::new();
    let (access, _, id) = app.register("lambda-avatar").await;
    let event = base64_multipart_event(&access, &multipart(&[("nickname", "小明")], Some(&png(1500, 300))));
    let (status, body) = invoke_event(&app.state, &event).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["nickname"], "小明");
    let url = body["avatar"].as_str().unwrap();
    let prefix = format!("https://abcdef1234.execute-api.eu-west-1.amazonaws.com/media/avatar/{id}/");
    assert!(url.starts_with(&prefix), "{url}");
    let object = app
        .state
        .media
        .get(url.strip_prefix("https://abcdef1234.execute-api.eu-west-1.amazonaws.com/media/").unwrap())
        .await
        .unwrap()
        .unwrap();
    let stored = image::load_from_memory(&object.bytes).unwrap();
    assert_eq!((stored.width(), stored.height()), (1024, 205));

    // The same body not decoded would be garbage: the 400 proves the flag is honoured both ways.
    let (status, body) =
        invoke_event(&app.state, &event.replace("\"isBase64Encoded\":true", "\"isBase64Encoded\":false")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn the_media_base_url_replaces_the_request_origin() {
    let app = TestApp::with_env(&[("MEDIA_BASE_URL", "https://d111111abcdef8.cloudfront.net/media")]);
    let (access, _, id) = app.register("cdn-avatar").await;
    let request = Request::patch("/api/accounts/profile/")
        .header("authorization", format!("Bearer {access}"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("host", "api.example.com")
        .body(Body::from(multipart(&[], Some(&png(4, 4)))))
        .unwrap();
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = r.body["avatar"].as_str().unwrap();
    assert!(url.starts_with(&format!("https://d111111abcdef8.cloudfront.net/media/avatar/{id}/")), "{url}");
}

/// The API on SQLite with its media in a fresh bucket of the emulator.
async fn s3_app() -> (axum::Router, AppState, S3Media, tempfile::TempDir) {
    let media = testkit::s3::fresh_s3().await;
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("DATA_DIR", dir.path().to_str().unwrap().to_string()),
        ("JWT_SECRET", testkit::SECRET.to_string()),
        ("MEDIA_BUCKET", media.bucket().to_string()),
    ];
    let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let shared: SharedMedia = Arc::new(media.clone());
    let state = AppState::with_media(store, shared, config);
    (accounts::http::app(state.clone()), state, media, dir)
}

async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, if bytes.is_empty() { Value::Null } else { body })
}

fn register_request(username: &str) -> Request<Body> {
    let body = json!({"username": username, "password1": testkit::STRONG, "password2": testkit::STRONG});
    Request::post("/api/auth/registration/")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn key_of(url: &str) -> &str {
    &url[url.find("/media/").unwrap() + "/media/".len()..]
}

#[tokio::test]
async fn on_s3_avatars_are_replaced_cleared_and_uploaded_directly() {
    let (router, _state, media, _dir) = s3_app().await;
    let (status, registered) = send(&router, register_request("s3-avatar")).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let access = registered["access"].as_str().unwrap().to_string();
    let id = registered["user"]["pk"].as_u64().unwrap();
    let patch = |body: Vec<u8>| {
        Request::patch("/api/accounts/profile/")
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .header("host", "localhost:8000")
            .body(Body::from(body))
            .unwrap()
    };

    let (status, first) = send(&router, patch(multipart(&[], Some(&png(20, 10))))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first_key = key_of(first["avatar"].as_str().unwrap()).to_string();
    let object = media.get(&first_key).await.unwrap().expect("in the bucket");
    assert_eq!(object.content_type, "image/png");
    // The local server serves it from the bucket too.
    let (status, _) = send(&router, Request::get(format!("/media/{first_key}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    let (status, second) = send(&router, patch(multipart(&[], Some(&png(30, 10))))).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_key = key_of(second["avatar"].as_str().unwrap()).to_string();
    assert_eq!(media.get(&first_key).await.unwrap(), None, "the replaced object is deleted");
    let (status, refused) = send(&router, patch(multipart(&[], Some(b"GIF89a but not really")))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let keys: Vec<String> = media.list(&format!("avatar/{id}/")).await.unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, std::slice::from_ref(&second_key));

    // Direct upload: a real presigned PUT to the emulator, then the confirmation.
    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let file = png(2048, 2048);
    let (status, grant) =
        send(&router, post("/api/accounts/profile/avatar/upload/", json!({"size": file.len()}))).await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let mut put = reqwest::Client::new().put(grant["upload_url"].as_str().unwrap()).body(file);
    for (name, value) in grant["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let response = put.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (status, confirmed) =
        send(&router, post("/api/accounts/profile/avatar/confirm/", json!({"upload_id": grant["upload_id"]}))).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let third_key = key_of(confirmed["avatar"].as_str().unwrap()).to_string();
    let stored = image::load_from_memory(&media.get(&third_key).await.unwrap().unwrap().bytes).unwrap();
    assert_eq!((stored.width(), stored.height()), (1024, 1024));
    assert_eq!(media.get(&second_key).await.unwrap(), None);
    assert!(media.list(&format!("avatar-uploads/{id}/")).await.unwrap().is_empty(), "the pending upload is dropped");

    // Clearing deletes the object.
    let clear = Request::patch("/api/accounts/profile/")
        .header("authorization", format!("Bearer {access}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"avatar": null}).to_string()))
        .unwrap();
    let (status, cleared) = send(&router, clear).await;
    assert_eq!((status, &cleared["avatar"]), (StatusCode::OK, &Value::Null));
    assert!(media.list(&format!("avatar/{id}/")).await.unwrap().is_empty());
}

/// Whether a presigned S3 URL's signature holds for a request with `headers` (besides `host`),
/// checked as S3 checks it (SigV4 query authentication, secret `test`). moto stores whatever a
/// presigned URL receives, so the check that S3 makes is made here.
fn presigned_signature_holds(url: &str, method: &str, headers: &[(&str, String)]) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};
    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    let url = reqwest::Url::parse(url).unwrap();
    let raw_query = url.query().unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = raw_query.split('&').map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    let signature = pairs.iter().find(|(k, _)| *k == "X-Amz-Signature").unwrap().1.to_string();
    pairs.retain(|(k, _)| *k != "X-Amz-Signature");
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let find = |name: &str| pairs.iter().find(|(k, _)| *k == name).unwrap().1.replace("%3B", ";").replace("%2F", "/");
    let signed_headers = find("X-Amz-SignedHeaders");
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|name| {
            let value = if name == "host" {
                host.clone()
            } else {
                headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default()
            };
            format!("{name}:{}\n", value.trim())
        })
        .collect();
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        url.path(),
        query.join("&")
    );
    let credential = find("X-Amz-Credential");
    let scope = credential.split_once('/').unwrap().1;
    let date = find("X-Amz-Date");
    let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut key = b"AWS4test".to_vec();
    for part in scope.split('/') {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &to_sign)) == signature
}

/// Six direct-upload grants at once on S3: each presigned PUT signs the declared length, so S3
/// refuses a longer body (the signature no longer holds), and the genuine upload goes through.
/// Then six over-long objects written straight into the bucket are confirmed at once: each is
/// refused as too large, with one ranged read of at most the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_s3_parallel_direct_uploads_are_bound_to_the_declared_length() {
    const PARALLEL: usize = 6;
    let (router, state, media, _dir) = s3_app().await;
    let max = state.config.media.avatar_max_bytes;
    let (status, registered) = send(&router, register_request("s3-bound")).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let access = registered["access"].as_str().unwrap().to_string();
    let id = registered["user"]["pk"].as_u64().unwrap();
    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("authorization", format!("Bearer {access}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let file = png(64, 64);
    let grants: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (router, request) =
                (router.clone(), post("/api/accounts/profile/avatar/upload/", json!({"size": file.len()})));
            tokio::spawn(async move { send(&router, request).await })
        })
        .collect();
    for grant in grants {
        let (status, grant) = grant.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{grant}");
        let url = grant["upload_url"].as_str().unwrap();
        let headers: Vec<(&str, String)> = grant["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_string()))
            .collect();
        assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bhost"), "the length is signed: {url}");
        assert_eq!(grant["size"].as_u64(), Some(file.len() as u64));
        assert!(presigned_signature_holds(url, "PUT", &headers), "the genuine request is signed");
        for longer in [file.len() + 1, max, 5 * 1024 * 1024 * 1024] {
            let tampered: Vec<(&str, String)> = headers
                .iter()
                .map(|(k, v)| {
                    (*k, if k.eq_ignore_ascii_case("content-length") { longer.to_string() } else { v.clone() })
                })
                .collect();
            assert!(!presigned_signature_holds(url, "PUT", &tampered), "a body of {longer} bytes is refused");
        }
        assert!(!presigned_signature_holds(url, "PUT", &[]), "a body of unannounced length is refused");
    }

    // Over-long objects that got into the bucket anyway, confirmed in parallel.
    let confirms: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (router, media) = (router.clone(), media.clone());
            let upload_id = uuid::Uuid::new_v4().simple().to_string();
            let request = post("/api/accounts/profile/avatar/confirm/", json!({"upload_id": upload_id}));
            tokio::spawn(async move {
                let key = accounts::media::upload_key(id, &upload_id);
                media.put(&key, vec![0u8; 2 * max].into(), "image/png").await.unwrap();
                send(&router, request).await
            })
        })
        .collect();
    let too_large = format!("Ensure this file has no more than {max} bytes (it has {}).", 2 * max);
    for confirm in confirms {
        assert_eq!(confirm.await.unwrap(), (StatusCode::BAD_REQUEST, json!({"avatar": [too_large.clone()]})));
    }
    assert!(media.list(&format!("avatar-uploads/{id}/")).await.unwrap().is_empty(), "refused uploads are dropped");
}
