//! Avatars end to end over real HTTP on the local server (embedded store, local media folder):
//! multipart uploads of PNG and JPEG (EXIF GPS stripped), the media URLs, replacement, clearing,
//! every rejection of the contract plus a decompression bomb and an oversized file, and the direct
//! upload (grant, PUT, confirm).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::support::Server;

const STRONG: &str = "xk29!pLm#q";
/// The server runs with a smaller file bound than the default 5 MB, to keep the oversized case cheap.
const MAX_BYTES: usize = 1_000_000;
const INVALID: &str = "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";

struct Client {
    http: reqwest::Client,
    base: String,
    access: String,
}

impl Client {
    async fn register(base: &str, username: &str) -> (Client, u64) {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base}/api/auth/registration/"))
            .json(&json!({"username": username, "password1": STRONG, "password2": STRONG}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let client = Client { http, base: base.to_string(), access: body["access"].as_str().unwrap().to_string() };
        (client, body["user"]["pk"].as_u64().unwrap())
    }

    async fn answer(response: reqwest::Response) -> (u16, Value) {
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], "application/json", "{status}");
        (status, response.json().await.unwrap())
    }

    async fn patch_multipart(&self, form: Form) -> (u16, Value) {
        let response = self
            .http
            .patch(format!("{}/api/accounts/profile/", self.base))
            .bearer_auth(&self.access)
            .multipart(form)
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }

    async fn upload(&self, file_name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let part = Part::bytes(bytes).file_name(file_name.to_string()).mime_str("image/png").unwrap();
        self.patch_multipart(Form::new().part("avatar", part)).await
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.access)
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::answer(response).await
    }

    async fn profile(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/api/accounts/profile/", self.base))
            .bearer_auth(&self.access)
            .send()
            .await
            .unwrap();
        let (status, body) = Self::answer(response).await;
        assert_eq!(status, 200);
        body
    }

    /// `(status, content type, bytes)` of a media URL.
    async fn fetch(&self, url: &str) -> (u16, String, Vec<u8>) {
        let response = self.http.get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, content_type, response.bytes().await.unwrap().to_vec())
    }
}

fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    }))
}

/// Flat 64-pixel tiles: a large image that compresses to a small PNG.
fn tiles(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([((x / 64) * 37 % 256) as u8, ((y / 64) * 53 % 256) as u8, 128])
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A big-endian TIFF/EXIF block whose GPS IFD holds a latitude of N 39° 54' 30" (Beijing).
fn exif_with_gps() -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a".to_vec();
    tiff.extend_from_slice(&8u32.to_be_bytes());
    // IFD0: one entry, GPSInfo (0x8825, LONG) pointing at the GPS IFD at offset 26.
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1]);
    tiff.extend_from_slice(&26u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD: GPSLatitudeRef "N", GPSLatitude (3 RATIONALs at offset 56).
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0x00, 0x02, 0x00, 0x05, 0, 0, 0, 3]);
    tiff.extend_from_slice(&56u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(tiff.len(), 56);
    for (numerator, denominator) in [(39u32, 1u32), (54, 1), (3000, 100)] {
        tiff.extend_from_slice(&numerator.to_be_bytes());
        tiff.extend_from_slice(&denominator.to_be_bytes());
    }
    tiff
}

/// A JPEG as a phone makes it: an APP1 `Exif` segment with GPS right after the start marker.
fn jpeg_with_gps(w: u32, h: u32) -> Vec<u8> {
    let plain = encode(&gradient(w, h), ImageFormat::Jpeg);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&exif_with_gps());
    let mut jpeg = plain[..2].to_vec(); // SOI
    jpeg.extend_from_slice(&[0xff, 0xe1]);
    jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    jpeg.extend_from_slice(&app1);
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

/// The EXIF block of a JPEG, as the `image` crate reads it.
fn exif_of(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(jpeg)).unwrap();
    decoder.exif_metadata().unwrap()
}

/// A PNG of a few dozen bytes whose header declares `w`×`h` pixels.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 0x05, 0x00, 0xfa, 0xff, 0, 0, 0, 0, 0, 0x00, 0x05, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn avatars_upload_serve_replace_reject_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("AVATAR_MAX_BYTES", &MAX_BYTES.to_string())]);
    let (me, id) = Client::register(&server.base, "avatar-user").await;
    let avatar_dir = dir.path().join(format!("media/avatar/{id}"));

    // PNG with a text field alongside: stored scaled to 1024 on the longer side.
    let png = encode(&tiles(2000, 1000), ImageFormat::Png);
    let form = Form::new()
        .text("nickname", "多部分")
        .part("avatar", Part::bytes(png).file_name("../../etc/passwd.png").mime_str("image/png").unwrap());
    let (status, profile) = me.patch_multipart(form).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["nickname"], "多部分");
    let png_url = profile["avatar"].as_str().unwrap().to_string();
    let prefix = format!("{}/media/avatar/{id}/", server.base);
    assert!(png_url.starts_with(&prefix) && png_url.ends_with(".png"), "{png_url}: a server-made key");
    assert!(!png_url.contains("passwd"), "never the client's file name");
    let (status, content_type, bytes) = me.fetch(&png_url).await;
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    let stored = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap();
    assert_eq!((stored.width(), stored.height()), (1024, 512));

    // JPEG with EXIF GPS replaces it: the metadata is gone, the old object too.
    let jpeg = jpeg_with_gps(1600, 1200);
    assert!(exif_of(&jpeg).is_some_and(|exif| exif.windows(4).any(|w| w == b"MM\x00\x2a")), "the fixture has EXIF");
    let (status, profile) = me.upload("photo.jpg", jpeg).await;
    assert_eq!(status, 200, "{profile}");
    let jpeg_url = profile["avatar"].as_str().unwrap().to_string();
    assert!(jpeg_url.starts_with(&prefix) && jpeg_url.ends_with(".jpg"), "{jpeg_url}");
    let (status, content_type, bytes) = me.fetch(&jpeg_url).await;
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));
    assert_eq!(exif_of(&bytes), None, "EXIF (and its GPS) stripped");
    assert!(!bytes.windows(4).any(|w| w == b"Exif"), "no Exif segment at all");
    let stored = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
    assert_eq!((stored.width(), stored.height()), (1024, 768));
    let (status, _, bytes) = me.fetch(&png_url).await;
    assert_eq!(status, 404, "the replaced avatar is deleted");
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), json!({"detail": "Not found."}));
    assert_eq!(files_under(&avatar_dir).len(), 1, "only the current avatar is kept");

    // Every rejection: 400 under `avatar`, and the stored profile unchanged.
    let too_large = format!("Ensure this file has no more than {MAX_BYTES} bytes (it has {}).", MAX_BYTES + 1);
    let bomb = "Ensure this image has no more than 12000 pixels on a side and 50000000 pixels in all.";
    let mut truncated = encode(&gradient(64, 64), ImageFormat::Png);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("notes.png", b"this is text, not a picture".to_vec(), INVALID),
        ("broken.png", truncated, INVALID),
        ("empty.png", Vec::new(), "The submitted file is empty."),
        ("bomb.png", png_bomb(100_000, 100_000), bomb),
        ("big.jpg", vec![0xffu8; MAX_BYTES + 1], &too_large),
    ];
    for (name, bytes, message) in cases {
        let (status, body) = me.upload(name, bytes).await;
        assert_eq!((status, body), (400, json!({"avatar": [message]})), "{name}");
    }
    let (status, body) =
        me.json(reqwest::Method::PATCH, "/api/accounts/profile/", json!({"avatar": "http://x/a.png"})).await;
    assert_eq!(
        (status, body),
        (400, json!({"avatar": ["The submitted data was not a file. Check the encoding type on the form."]}))
    );
    // A valid file with an invalid text field: nothing is written, neither the profile nor the object.
    let form = Form::new()
        .text("nickname", "x".repeat(51))
        .part("avatar", Part::bytes(encode(&gradient(10, 10), ImageFormat::Png)).file_name("ok.png"));
    let (status, body) = me.patch_multipart(form).await;
    assert_eq!((status, body), (400, json!({"nickname": ["Ensure this field has no more than 50 characters."]})));
    let profile = me.profile().await;
    assert_eq!((profile["avatar"].as_str(), profile["nickname"].as_str()), (Some(jpeg_url.as_str()), Some("多部分")));
    assert_eq!(files_under(&avatar_dir).len(), 1, "no object left by a refused upload");

    // GIF and WebP are taken too (re-encoded as PNG); a text-only multipart PATCH keeps the avatar.
    for format in [ImageFormat::Gif, ImageFormat::WebP] {
        let (status, profile) = me.upload("anim", encode(&gradient(30, 20), format)).await;
        assert_eq!(status, 200, "{format:?}: {profile}");
        assert!(profile["avatar"].as_str().unwrap().ends_with(".png"), "{format:?}");
    }
    let current = me.profile().await["avatar"].clone();
    let (status, profile) = me.patch_multipart(Form::new().text("signature", "签名")).await;
    assert_eq!((status, &profile["avatar"], &profile["signature"]), (200, &current, &json!("签名")));

    // Clearing: null avatar, and the object goes.
    let (status, profile) = me.json(reqwest::Method::PATCH, "/api/accounts/profile/", json!({"avatar": null})).await;
    assert_eq!((status, &profile["avatar"]), (200, &Value::Null));
    assert_eq!(me.fetch(current.as_str().unwrap()).await.0, 404);
    assert!(files_under(&avatar_dir).is_empty(), "{:?}", files_under(&avatar_dir));
    assert_eq!(me.fetch(&format!("{}/media/avatar/{id}/missing.png", server.base)).await.0, 404);
    assert_eq!(me.fetch(&format!("{}/media/avatar/..%2F..%2Faccounts.sqlite3", server.base)).await.0, 404);
}

#[tokio::test]
async fn direct_upload_grant_put_and_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("AVATAR_MAX_BYTES", &MAX_BYTES.to_string())]);
    let (me, id) = Client::register(&server.base, "direct-user").await;
    let jpeg = jpeg_with_gps(800, 600);
    let (status, grant) =
        me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/upload/", json!({"size": jpeg.len()})).await;
    assert_eq!(status, 200, "{grant}");
    assert_eq!((grant["method"].as_str(), grant["max_bytes"].as_u64()), (Some("PUT"), Some(MAX_BYTES as u64)));
    assert_eq!(
        (grant["size"].as_u64(), &grant["headers"]),
        (Some(jpeg.len() as u64), &json!({"content-length": jpeg.len().to_string()}))
    );
    let upload_url = grant["upload_url"].as_str().unwrap();
    assert!(upload_url.starts_with(&format!("{}/media-upload/avatar-uploads/{id}/", server.base)), "{upload_url}");
    let upload_id = grant["upload_id"].as_str().unwrap();

    // Before the file is there, and with a made-up id: 400 under upload_id.
    let unknown = json!({"upload_id": ["No uploaded file is waiting under this upload id."]});
    for body in [json!({"upload_id": upload_id}), json!({"upload_id": "../../x"})] {
        let (status, answer) = me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/confirm/", body).await;
        assert_eq!((status, answer), (400, unknown.clone()));
    }
    // The URL grants exactly its key.
    let forged = upload_url.replace(&format!("/{id}/"), &format!("/{}/", id + 1));
    let response = me.http.put(&forged).body(b"x".to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = me.http.put(upload_url).body(jpeg).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Pending uploads are not served.
    assert_eq!(me.fetch(&format!("{}/media/avatar-uploads/{id}/{upload_id}", server.base)).await.0, 404);

    let (status, profile) =
        me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/confirm", json!({"upload_id": upload_id})).await;
    assert_eq!(status, 200, "{profile}");
    let url = profile["avatar"].as_str().unwrap();
    let (status, content_type, bytes) = me.fetch(url).await;
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));
    assert_eq!(exif_of(&bytes), None);
    assert_eq!(me.profile().await["avatar"], profile["avatar"]);
    // Used up: the same id again is unknown; the pending file is gone.
    let (status, answer) =
        me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/confirm/", json!({"upload_id": upload_id})).await;
    assert_eq!((status, answer), (400, unknown.clone()));
    assert!(files_under(&dir.path().join(format!("media/avatar-uploads/{id}"))).is_empty());

    // A refused file: 400 under avatar, profile unchanged.
    let (_, grant) = me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/upload/", json!({"size": 12})).await;
    me.http.put(grant["upload_url"].as_str().unwrap()).body(b"not an image".to_vec()).send().await.unwrap();
    let (status, answer) = me
        .json(reqwest::Method::POST, "/api/accounts/profile/avatar/confirm/", json!({"upload_id": grant["upload_id"]}))
        .await;
    assert_eq!((status, answer), (400, json!({"avatar": [INVALID]})));
    assert_eq!(me.profile().await["avatar"], profile["avatar"]);
    // The size is required, and no grant is made past the bound; past it the route refuses the body.
    for (body, message) in [
        (json!({}), "This field is required."),
        (json!({"size": "many"}), "A valid integer is required."),
        (json!({"size": 0}), "Ensure this value is greater than or equal to 1."),
        (json!({"size": MAX_BYTES + 1}), &*format!("Ensure this value is less than or equal to {MAX_BYTES}.")),
    ] {
        let (status, answer) = me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/upload/", body).await;
        assert_eq!((status, answer), (400, json!({"size": [message]})));
    }
    let (_, grant) =
        me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/upload/", json!({"size": MAX_BYTES})).await;
    let response =
        me.http.put(grant["upload_url"].as_str().unwrap()).body(vec![0u8; MAX_BYTES + 1]).send().await.unwrap();
    assert_eq!(response.status(), 413);
}

/// Six clients at once take a grant for a small file and put more through it (still under the
/// file bound): every PUT is refused, as S3 refuses a length other than the signed one, and
/// nothing is stored. Then six over-long objects (written behind the route's back) are confirmed
/// at once: each is refused as too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_direct_uploads_cannot_exceed_the_granted_length() {
    const PARALLEL: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("AVATAR_MAX_BYTES", &MAX_BYTES.to_string())]);
    let (me, id) = Client::register(&server.base, "greedy-uploader").await;
    let me = std::sync::Arc::new(me);
    let small = encode(&gradient(16, 16), ImageFormat::Png);
    let puts: Vec<_> = (0..PARALLEL)
        .map(|i| {
            let (me, small) = (me.clone(), small.clone());
            tokio::spawn(async move {
                let (status, grant) = me
                    .json(reqwest::Method::POST, "/api/accounts/profile/avatar/upload/", json!({"size": small.len()}))
                    .await;
                assert_eq!(status, 200, "{grant}");
                // The declared file, then padding: longer than granted, shorter than the file bound.
                let mut body = small;
                body.resize(body.len() + 1000 * (i + 1), 0);
                let response = me.http.put(grant["upload_url"].as_str().unwrap()).body(body).send().await.unwrap();
                (response.status().as_u16(), grant["upload_id"].as_str().unwrap().to_string())
            })
        })
        .collect();
    for put in puts {
        let (status, upload_id) = put.await.unwrap();
        assert_eq!(status, 403, "upload {upload_id}: a body longer than granted is refused");
    }
    let uploads = dir.path().join(format!("media/avatar-uploads/{id}"));
    assert!(files_under(&uploads).is_empty(), "nothing stored: {:?}", files_under(&uploads));

    // Objects over the bound that got there anyway: refused by the confirmation, in parallel.
    let confirms: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (me, uploads) = (me.clone(), uploads.clone());
            tokio::spawn(async move {
                let upload_id = uuid::Uuid::new_v4().simple().to_string();
                std::fs::create_dir_all(&uploads).unwrap();
                std::fs::write(uploads.join(&upload_id), vec![0u8; 4 * MAX_BYTES]).unwrap();
                me.json(reqwest::Method::POST, "/api/accounts/profile/avatar/confirm/", json!({"upload_id": upload_id}))
                    .await
            })
        })
        .collect();
    let too_large = format!("Ensure this file has no more than {MAX_BYTES} bytes (it has {}).", 4 * MAX_BYTES);
    for confirm in confirms {
        assert_eq!(confirm.await.unwrap(), (400, json!({"avatar": [too_large.clone()]})));
    }
    assert!(files_under(&uploads).is_empty(), "refused uploads are dropped");
    assert_eq!(me.profile().await["avatar"], Value::Null);
}

/// Six users upload at once the costliest image the limits accept: a 7000×7000 PNG with alpha
/// (49 megapixels, 196 MB decoded, a few hundred KB on the wire). Every upload is processed, and
/// the server's peak memory stays bounded (unbounded, this took it past 1.5 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uploads_of_the_largest_accepted_image_keep_memory_bounded() {
    const PARALLEL: usize = 6;
    const PEAK_LIMIT: u64 = 700 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let image = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(7000, 7000, |x, y| {
        image::Rgba([((x / 64) * 37 % 256) as u8, ((y / 64) * 53 % 256) as u8, 128, 200])
    }));
    let png = encode(&image, ImageFormat::Png);
    drop(image);
    assert!(png.len() < 5 * 1024 * 1024, "within the default file bound: {} bytes", png.len());
    let mut clients = Vec::new();
    for i in 0..PARALLEL {
        clients.push(Client::register(&server.base, &format!("big-avatar-{i}")).await.0);
    }
    let before = server.peak_rss();
    let started = std::time::Instant::now();
    let uploads: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let png = png.clone();
            tokio::spawn(async move { client.upload("huge.png", png).await })
        })
        .collect();
    for upload in uploads {
        let (status, body) = upload.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let peak = server.peak_rss();
    eprintln!(
        "{PARALLEL} parallel 7000x7000 RGBA uploads: {:.1} s, peak RSS {} MiB (before them {} MiB)",
        started.elapsed().as_secs_f64(),
        peak / (1024 * 1024),
        before / (1024 * 1024)
    );
    assert!(peak < PEAK_LIMIT, "peak RSS {} MiB", peak / (1024 * 1024));
}
