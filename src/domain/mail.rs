//! What the account flows need from mail: hand over a message, never wait for delivery.

/// Which message to send; each has a plain-text and an HTML template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    Activation,
    Confirmation,
    PasswordReset,
    PasswordChanged,
    UsernameReset,
    UsernameChanged,
}

impl EmailKind {
    /// The template name (files `<name>.txt`, `<name>.html`, `<name>.subject` override the built-ins).
    pub fn name(self) -> &'static str {
        match self {
            EmailKind::Activation => "activation",
            EmailKind::Confirmation => "confirmation",
            EmailKind::PasswordReset => "password_reset",
            EmailKind::PasswordChanged => "password_changed_confirmation",
            EmailKind::UsernameReset => "username_reset",
            EmailKind::UsernameChanged => "username_changed_confirmation",
        }
    }
}

/// One message for one user; `url` is the link to follow, when the message has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub kind: EmailKind,
    pub to: String,
    pub username: String,
    pub url: Option<String>,
}

/// Queues a message for background delivery; returns at once whatever the mail server does.
pub trait Mailer: Send + Sync {
    fn send(&self, email: Email);
}
