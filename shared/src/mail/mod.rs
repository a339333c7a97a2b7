//! Outgoing e-mail behind one trait, [`Mailer`], with two backends: [`ses::SesMailer`] (Amazon
//! SES v2, in the cloud) and [`outbox::OutboxMailer`] (one `.eml` file per message in a folder,
//! the local default). Both deliver the same bytes: the message is rendered once, as RFC 5322,
//! by [`Mail::render`].

pub mod outbox;
#[cfg(feature = "ses")]
pub mod ses;

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::Message;

/// One plain-text message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header that cannot go into a message.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The backend refused or could not be reached.
    #[error("sending failed: {0}")]
    Delivery(String),
}

impl Mail {
    /// The message as RFC 5322 bytes (`Date` and `Message-ID` set, non-ASCII text encoded).
    pub fn render(&self) -> Result<Vec<u8>, MailError> {
        let mailbox = |address: &str| {
            address.parse::<Mailbox>().map_err(|e| MailError::Invalid(format!("address {address:?}: {e}")))
        };
        let from = mailbox(&self.from)?;
        // A Message-ID in the sender's domain (mail without one scores as spam).
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), from.email.domain());
        let message = Message::builder()
            .message_id(Some(message_id))
            .from(from)
            .to(mailbox(&self.to)?)
            .subject(self.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone())
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        Ok(message.formatted())
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Delivers the message; returns the backend's id for it (SES message id, outbox file name).
    async fn send(&self, mail: &Mail) -> Result<String, MailError>;
}

pub type SharedMailer = Arc<dyn Mailer>;

/// The mailer of a function built without the `ses` feature: every message fails.
#[cfg(not(feature = "ses"))]
pub struct NotBuiltIn;

#[cfg(not(feature = "ses"))]
#[async_trait]
impl Mailer for NotBuiltIn {
    async fn send(&self, _mail: &Mail) -> Result<String, MailError> {
        Err(MailError::Delivery("this binary was built without the `ses` feature".into()))
    }
}
