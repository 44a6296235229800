//! Outbound mail: templates rendered here, delivered by a background task through SMTP (lettre),
//! .eml files in a folder (the embedded default) or the log. The request path only enqueues.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::MultiPart,
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use crate::{
    domain::mail::{Email, EmailKind, Mailer},
    settings::{EmailBackend, EmailSettings, SmtpSecurity},
};

/// Messages waiting for delivery at most; beyond it new ones are dropped (and logged).
const QUEUE: usize = 1000;
/// Attempts per message, waiting 1 s, then 4 s between them.
const ATTEMPTS: u32 = 3;

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One owner-only `.eml` per message in this folder.
    Folder(PathBuf),
    Console,
}

/// The background mailer; cheap to share.
pub struct MailQueue {
    sender: mpsc::Sender<Email>,
}

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("email: {0}")]
pub struct MailError(String);

struct Renderer {
    settings: EmailSettings,
}

impl MailQueue {
    /// Starts the delivery task (on the current runtime).
    pub fn start(settings: EmailSettings) -> Result<Self, MailError> {
        let transport = match settings.backend {
            EmailBackend::Smtp => {
                let builder = match settings.smtp_security {
                    SmtpSecurity::Tls => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.smtp_host)
                    }
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.smtp_host)
                    }
                    SmtpSecurity::None => {
                        Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                            &settings.smtp_host,
                        ))
                    }
                }
                .map_err(|e| MailError(e.to_string()))?;
                let mut builder = builder
                    .port(settings.smtp_port)
                    .timeout(Some(Duration::from_secs(10)));
                if !settings.smtp_username.is_empty() {
                    let password = settings
                        .smtp_password
                        .as_ref()
                        .map(|p| p.expose_secret().to_owned())
                        .unwrap_or_default();
                    builder = builder
                        .credentials(Credentials::new(settings.smtp_username.clone(), password));
                }
                Transport::Smtp(builder.build())
            }
            EmailBackend::File => {
                let folder = PathBuf::from(&settings.file_path);
                create_private_folder(&folder)
                    .map_err(|e| MailError(format!("cannot create {}: {e}", settings.file_path)))?;
                Transport::Folder(folder)
            }
            EmailBackend::Console => Transport::Console,
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(receiver, transport, Renderer { settings }));
        Ok(Self { sender })
    }
}

impl Mailer for MailQueue {
    fn send(&self, email: Email) {
        if let Err(e) = self.sender.try_send(email) {
            tracing::error!(error = %e, "mail queue full or closed: message dropped");
        }
    }
}

async fn deliver(mut receiver: mpsc::Receiver<Email>, transport: Transport, renderer: Renderer) {
    while let Some(email) = receiver.recv().await {
        let message = match renderer.render(&email) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(kind = email.kind.name(), error = %e, "cannot build message");
                continue;
            }
        };
        for attempt in 1..=ATTEMPTS {
            let result = match &transport {
                Transport::Smtp(t) => t
                    .send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Transport::Folder(folder) => write_private_eml(folder, &message.formatted())
                    .await
                    .map_err(|e| e.to_string()),
                Transport::Console => {
                    let text = String::from_utf8_lossy(&message.formatted()).into_owned();
                    tracing::info!(target: "tessera::mail", kind = email.kind.name(), "{text}");
                    Ok(())
                }
            };
            match result {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(kind = email.kind.name(), attempt, error = %e, "mail delivery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(u64::from(4u32.pow(attempt - 1)))).await;
                }
                Err(e) => {
                    tracing::error!(kind = email.kind.name(), error = %e, "mail delivery failed; giving up")
                }
            }
        }
    }
}

/// Creates the mail folder (and missing parents) owner-only; an existing folder keeps its mode.
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}

/// Writes `<uuid>.eml` readable by the owner only (mailed links carry account tokens), under a
/// temporary name first so a reader never sees half a message.
async fn write_private_eml(folder: &Path, message: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let name = uuid::Uuid::new_v4();
    let partial = folder.join(format!(".{name}.eml.partial"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial).await?;
    file.write_all(message).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&partial, folder.join(format!("{name}.eml"))).await
}

impl Renderer {
    fn render(&self, email: &Email) -> Result<Message, String> {
        let s = &self.settings;
        let (subject, text, html) = builtin(email.kind);
        let name = email.kind.name();
        let subject = self
            .template(name, "subject")
            .unwrap_or_else(|| subject.to_owned());
        let text = self
            .template(name, "txt")
            .unwrap_or_else(|| text.to_owned());
        let html = self
            .template(name, "html")
            .unwrap_or_else(|| html.to_owned());
        let fill = |t: &str, escape: bool| {
            let value = |v: &str| if escape { html_escape(v) } else { v.to_owned() };
            t.replace("{site_name}", &value(&s.site_name))
                .replace("{username}", &value(&email.username))
                .replace("{url}", &value(email.url.as_deref().unwrap_or("")))
        };
        Message::builder()
            .from(s.from.clone())
            .to(email.to.parse().map_err(|e| format!("to: {e}"))?)
            .subject(fill(subject.trim(), false))
            .multipart(MultiPart::alternative_plain_html(
                fill(&text, false),
                fill(&html, true),
            ))
            .map_err(|e| e.to_string())
    }

    /// An operator's template file, if there is one.
    fn template(&self, name: &str, extension: &str) -> Option<String> {
        let folder = self.settings.templates_dir.as_deref()?;
        std::fs::read_to_string(PathBuf::from(folder).join(format!("{name}.{extension}"))).ok()
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Subject, text and HTML of each message; `{site_name}`, `{username}` and `{url}` are filled in.
fn builtin(kind: EmailKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        EmailKind::Activation => (
            "Account activation on {site_name}",
            "Hello {username},\n\nplease go to the following page to activate your account on {site_name}:\n\n{url}\n\nThanks for using our site!\n",
            "<p>Hello {username},</p><p>please go to the following page to activate your account on {site_name}:</p><p><a href=\"{url}\">{url}</a></p><p>Thanks for using our site!</p>",
        ),
        EmailKind::Confirmation => (
            "{site_name} - Your account has been successfully created and activated!",
            "Hello {username},\n\nyour account has been created and is ready to use.\n",
            "<p>Hello {username},</p><p>your account has been created and is ready to use.</p>",
        ),
        EmailKind::PasswordReset => (
            "Password reset on {site_name}",
            "You're receiving this email because you requested a password reset for your user account at {site_name}.\n\nPlease go to the following page and choose a new password:\n\n{url}\n\nYour username, in case you've forgotten: {username}\n",
            "<p>You're receiving this email because you requested a password reset for your user account at {site_name}.</p><p>Please go to the following page and choose a new password:</p><p><a href=\"{url}\">{url}</a></p><p>Your username, in case you've forgotten: {username}</p>",
        ),
        EmailKind::PasswordChanged => (
            "{site_name} - Your password has been successfully changed!",
            "Hello {username},\n\nyour password has been changed. If you did not do this, reset it now.\n",
            "<p>Hello {username},</p><p>your password has been changed. If you did not do this, reset it now.</p>",
        ),
        EmailKind::UsernameReset => (
            "Username reset on {site_name}",
            "You're receiving this email because you requested a username reset for your user account at {site_name}.\n\nPlease go to the following page and choose a new username:\n\n{url}\n",
            "<p>You're receiving this email because you requested a username reset for your user account at {site_name}.</p><p>Please go to the following page and choose a new username:</p><p><a href=\"{url}\">{url}</a></p>",
        ),
        EmailKind::UsernameChanged => (
            "{site_name} - Your username has been successfully changed!",
            "Hello {username},\n\nyour username has been changed.\n",
            "<p>Hello {username},</p><p>your username has been changed.</p>",
        ),
    }
}
