//! The local mail backend: every message becomes `<dir>/<time>-<id>.eml`, readable by tests and
//! by people (any mail client opens `.eml` files).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Mail, MailError, Mailer};

pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// Mail goes to `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let bytes = mail.render()?;
        // Time first, so a plain listing shows the messages in the order they were sent.
        let name = format!("{}-{}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"), uuid::Uuid::new_v4().simple());
        let dir = self.dir.clone();
        let file = name.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            // Written under a temporary name and renamed, so a reader never sees half a message.
            let partial = dir.join(format!(".{file}.partial"));
            std::fs::write(&partial, &bytes)?;
            std::fs::rename(&partial, dir.join(&file))
        })
        .await
        .map_err(|e| MailError::Delivery(format!("outbox task failed: {e}")))?
        .map_err(|e| MailError::Delivery(format!("{}: {e}", self.dir.display())))?;
        Ok(name)
    }
}
