//! The mail backends: the same conformance checks against the outbox folder and against SES
//! (the real SDK client, pointed at moto's SES v2 at `DYNAMODB_ENDPOINT`: moto serves every AWS
//! service on one endpoint). What was delivered is read back and parsed as the recipient would.

use std::path::PathBuf;

use accounts::mail::outbox::OutboxMailer;
use accounts::mail::ses::{self, SesMailer};
use accounts::mail::{Mail, MailError, Mailer};
use serde_json::Value;

/// A delivered message, as a mail client reads it.
#[derive(Debug, PartialEq)]
struct Received {
    from: String,
    to: String,
    subject: String,
    text: String,
}

fn parse(raw: &[u8]) -> Received {
    let message = mail_parser::MessageParser::default().parse(raw).expect("an RFC 5322 message");
    let first = |list: Option<&mail_parser::Address>| {
        list.and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string()
    };
    assert!(message.date().is_some(), "a Date header");
    assert!(message.message_id().is_some(), "a Message-ID header");
    Received {
        from: first(message.from()),
        to: first(message.to()),
        subject: message.subject().unwrap_or_default().to_string(),
        text: message.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
    }
}

fn sample(from: &str, to: &str) -> Mail {
    Mail {
        from: from.into(),
        to: to.into(),
        subject: "Password Reset Email — 小明".into(),
        text: "Hello!\n\nhttp://127.0.0.1:8000/password-reset/confirm/1z/abc-0123/\n\nIn case you forgot, your username is 小明.\n".into(),
    }
}

// ----- the conformance checks, each given a mailer and a way to read what it delivered ---------

/// Delivery of message `id`: its raw bytes.
#[async_trait::async_trait]
trait Delivered: Send + Sync {
    async fn raw(&self, id: &str) -> Vec<u8>;
}

async fn delivers_what_was_sent(mailer: &dyn Mailer, delivered: &dyn Delivered, from: &str) {
    let to = format!("u{}@example.org", uuid::Uuid::new_v4().simple());
    let mail = sample(from, &to);
    let id = mailer.send(&mail).await.expect("sent");
    assert!(!id.is_empty());
    let received = parse(&delivered.raw(&id).await);
    assert_eq!(received, Received { from: from.into(), to, subject: mail.subject.clone(), text: mail.text.clone() });
}

async fn every_message_is_delivered_separately(mailer: &dyn Mailer, delivered: &dyn Delivered, from: &str) {
    let first = mailer.send(&sample(from, "one@example.org")).await.unwrap();
    let second = mailer.send(&sample(from, "two@example.org")).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(parse(&delivered.raw(&first).await).to, "one@example.org");
    assert_eq!(parse(&delivered.raw(&second).await).to, "two@example.org");
}

async fn invalid_addresses_are_refused_before_sending(mailer: &dyn Mailer, from: &str) {
    for mail in [
        sample(from, "not an address"),
        sample("nobody", "a@example.org"),
        sample(from, "a@example.org\r\nBcc: x@evil.example"),
    ] {
        let err = mailer.send(&mail).await.unwrap_err();
        assert!(matches!(err, MailError::Invalid(_)), "{mail:?}: {err:?}");
    }
}

// ----- the outbox ----------------------------------------------------------------------------

struct OutboxFiles(PathBuf);

#[async_trait::async_trait]
impl Delivered for OutboxFiles {
    async fn raw(&self, id: &str) -> Vec<u8> {
        std::fs::read(self.0.join(id)).unwrap_or_else(|e| panic!("{id} in the outbox: {e}"))
    }
}

fn outbox() -> (tempfile::TempDir, OutboxMailer, OutboxFiles) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("outbox");
    (dir, OutboxMailer::new(&folder), OutboxFiles(folder))
}

const LOCAL_FROM: &str = "noreply@example.com";

#[tokio::test]
async fn outbox_delivers_what_was_sent() {
    let (_dir, mailer, files) = outbox();
    delivers_what_was_sent(&mailer, &files, LOCAL_FROM).await;
}

#[tokio::test]
async fn outbox_every_message_is_delivered_separately() {
    let (_dir, mailer, files) = outbox();
    every_message_is_delivered_separately(&mailer, &files, LOCAL_FROM).await;
}

#[tokio::test]
async fn outbox_invalid_addresses_are_refused_before_sending() {
    let (_dir, mailer, files) = outbox();
    invalid_addresses_are_refused_before_sending(&mailer, LOCAL_FROM).await;
    assert!(!files.0.exists() || std::fs::read_dir(&files.0).unwrap().next().is_none(), "nothing written");
}

/// One `.eml` per message, named so a listing is in sending order, and no partial files left.
#[tokio::test]
async fn outbox_writes_one_eml_file_per_message() {
    let (_dir, mailer, files) = outbox();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(mailer.send(&sample(LOCAL_FROM, &format!("n{i}@example.org"))).await.unwrap());
    }
    let mut names: Vec<String> =
        std::fs::read_dir(&files.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ids, "exactly the messages, in the order sent");
    assert!(names.iter().all(|n| n.ends_with(".eml") && !n.starts_with('.')));
    let text = String::from_utf8(std::fs::read(files.0.join(&ids[0])).unwrap()).unwrap();
    assert!(text.contains("\r\nTo: n0@example.org\r\n") || text.starts_with("To: n0@example.org"), "{text}");
}

/// A folder that can't be created is a delivery failure, not a panic.
#[tokio::test]
async fn outbox_unwritable_folder_is_a_delivery_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let mailer = OutboxMailer::new(blocker.join("outbox"));
    let err = mailer.send(&sample(LOCAL_FROM, "a@example.org")).await.unwrap_err();
    assert!(matches!(err, MailError::Delivery(_)), "{err:?}");
}

// ----- SES (moto) ----------------------------------------------------------------------------

/// Messages moto accepted, read from its state (`/moto-api/data.json`, SES `RawMessage`s).
struct MotoSes(String);

#[async_trait::async_trait]
impl Delivered for MotoSes {
    async fn raw(&self, id: &str) -> Vec<u8> {
        let data: Value = reqwest::get(format!("{}/moto-api/data.json", self.0)).await.unwrap().json().await.unwrap();
        let messages = data["ses"]["RawMessage"].as_array().cloned().unwrap_or_default();
        let message = messages
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("message {id} is not among moto's {} raw SES messages", messages.len()));
        message["raw_data"].as_str().unwrap().as_bytes().to_vec()
    }
}

/// An SES mailer on moto, and a sender identity verified there first (SES refuses others).
async fn ses() -> (SesMailer, MotoSes, String) {
    let endpoint = testkit::dynamo::endpoint();
    testkit::dynamo::fake_aws_environment();
    let client = ses::client(Some(&endpoint)).await;
    let from = format!("sender-{}@example.com", uuid::Uuid::new_v4().simple());
    client.create_email_identity().email_identity(&from).send().await.expect("identity created in moto");
    (SesMailer::with_client(client), MotoSes(endpoint), from)
}

#[tokio::test]
async fn ses_delivers_what_was_sent() {
    let (mailer, moto, from) = ses().await;
    delivers_what_was_sent(&mailer, &moto, &from).await;
}

#[tokio::test]
async fn ses_every_message_is_delivered_separately() {
    let (mailer, moto, from) = ses().await;
    every_message_is_delivered_separately(&mailer, &moto, &from).await;
}

#[tokio::test]
async fn ses_invalid_addresses_are_refused_before_sending() {
    let (mailer, _, from) = ses().await;
    invalid_addresses_are_refused_before_sending(&mailer, &from).await;
}

#[tokio::test]
async fn ses_refuses_an_unverified_sender() {
    let (mailer, _, _) = ses().await;
    let err = mailer.send(&sample("stranger@unverified.example", "a@example.org")).await.unwrap_err();
    match err {
        MailError::Delivery(message) => assert!(message.contains("MessageRejected"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// The lazily built client (as the Lambdas make it, from `SES_ENDPOINT`) works the same.
#[tokio::test]
async fn ses_mailer_built_from_the_endpoint_sends() {
    let (_, moto, from) = ses().await;
    let mailer = SesMailer::new(Some(moto.0.clone()));
    delivers_what_was_sent(&mailer, &moto, &from).await;
}
