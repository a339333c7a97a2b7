//! Amazon SES (API v2): the rendered message goes out as `Content.Raw`, so it is byte for byte
//! what the outbox would have written.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_sdk_sesv2::Client;

use super::{Mail, MailError, Mailer};

/// An SES client with bounded timeouts (a reset request must not hang); `endpoint` points it at
/// an emulator (moto).
pub async fn client(endpoint: Option<&str>) -> Client {
    let timeouts = crate::aws::Timeouts { attempt: Duration::from_secs(3), operation: Duration::from_secs(6) };
    Client::new(&crate::aws::sdk_config(endpoint, timeouts).await)
}

/// Sends through SES. The client is built at the first message (building it reads the AWS
/// configuration, which is async), so the mailer itself can be made anywhere.
#[derive(Debug)]
pub struct SesMailer {
    endpoint: Option<String>,
    client: tokio::sync::OnceCell<Client>,
}

impl SesMailer {
    pub fn new(endpoint: Option<String>) -> Self {
        Self { endpoint, client: tokio::sync::OnceCell::new() }
    }

    pub fn with_client(client: Client) -> Self {
        Self { endpoint: None, client: tokio::sync::OnceCell::new_with(Some(client)) }
    }

    async fn client(&self) -> &Client {
        self.client.get_or_init(|| client(self.endpoint.as_deref())).await
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let raw = RawMessage::builder()
            .data(Blob::new(mail.render()?))
            .build()
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        let out = self
            .client()
            .await
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(service) => MailError::Delivery(format!(
                    "SES {}: {}",
                    service.code().unwrap_or("error"),
                    service.message().unwrap_or("(no message)")
                )),
                None => MailError::Delivery(format!("SES: {}", DisplayErrorContext(&e))),
            })?;
        Ok(out.message_id.unwrap_or_default())
    }
}
