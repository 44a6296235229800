//! What the account flows need from mail: hand over a message, never wait for delivery.
use super::users::UserRef;

/// Which message to send; each is one template with a subject, a text and an HTML body.
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
    /// Every kind, for loading all templates at start.
    pub const ALL: [EmailKind; 6] = [
        EmailKind::Activation,
        EmailKind::Confirmation,
        EmailKind::PasswordReset,
        EmailKind::PasswordChanged,
        EmailKind::UsernameReset,
        EmailKind::UsernameChanged,
    ];

    /// Djoser's template name without `email/` and `.html` (`activation` is `email/activation.html`).
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

    /// Whether the message carries a link (and so `uid`, `token` and `url` in its context).
    pub fn has_link(self) -> bool {
        matches!(
            self,
            EmailKind::Activation | EmailKind::PasswordReset | EmailKind::UsernameReset
        )
    }
}

/// The user as a template sees it (Djoser passes the user model as `user`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailUser {
    /// The public id (`user.pk`, `user.id`): the UUID, or the integer in `integer` mode.
    pub id: UserRef,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

/// The link of a message: Djoser's `uid`, `token` and `url` (the frontend route with both
/// filled in, without the leading `/`: templates write `{{ protocol }}://{{ domain }}/{{ url }}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailLink {
    pub uid: String,
    pub token: String,
    pub url: String,
}

/// One message for one user, with what Djoser puts into the template's context.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub kind: EmailKind,
    pub to: String,
    pub user: MailUser,
    /// The scheme and host of the frontend (`accounts.protocol`, `accounts.domain`).
    pub protocol: String,
    pub domain: String,
    pub link: Option<MailLink>,
}

/// Queues a message for background delivery; returns at once whatever the mail server does.
pub trait Mailer: Send + Sync {
    fn send(&self, email: Email);
}
