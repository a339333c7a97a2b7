//! Reading the password-reset e-mails a test app wrote to its outbox folder.

use std::path::PathBuf;

use accounts::config::MailBackend;
use accounts::state::AppState;

/// A received message: recipient, subject, decoded text.
#[derive(Debug, Clone)]
pub struct Letter {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Letter {
    pub fn parse(raw: &[u8]) -> Letter {
        let message = mail_parser::MessageParser::default().parse(raw).expect("an RFC 5322 message");
        Letter {
            to: message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: message.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
        }
    }

    /// The first line that is a URL: the reset link.
    pub fn link(&self) -> String {
        self.text
            .lines()
            .find(|l| l.starts_with("http"))
            .unwrap_or_else(|| panic!("no link in {:?}", self.text))
            .to_string()
    }

    /// `(uid, token)` of a link ending in `.../<uid>/<token>/`.
    pub fn uid_and_token(&self) -> (String, String) {
        let link = self.link();
        let parts: Vec<&str> = link.trim_end_matches('/').rsplit('/').take(2).collect();
        (parts[1].to_string(), parts[0].to_string())
    }
}

pub fn folder(state: &AppState) -> PathBuf {
    match &state.config.mail.backend {
        MailBackend::Outbox { folder } => folder.clone(),
        other => panic!("the app sends mail with {other:?}, not to an outbox"),
    }
}

/// Every message in the outbox, oldest first.
pub fn letters(state: &AppState) -> Vec<Letter> {
    let folder = folder(state);
    let Ok(entries) = std::fs::read_dir(&folder) else { return Vec::new() };
    let mut names: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "eml")).collect();
    names.sort();
    names.iter().map(|p| Letter::parse(&std::fs::read(p).unwrap())).collect()
}
