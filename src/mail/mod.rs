//! Outbound mail: templates rendered here, delivered by a background task through SMTP (lettre),
//! .eml files in a folder (the embedded default) or the log. The request path only enqueues.
mod django;
mod render;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{MultiPart, SinglePart},
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use self::render::MailTemplates;
use crate::{
    domain::mail::{Email, Mailer},
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
    from: lettre::message::Mailbox,
    templates: MailTemplates,
}

impl MailQueue {
    /// Starts the delivery task (on the current runtime).
    pub fn start(settings: EmailSettings) -> Result<Self, MailError> {
        let templates = MailTemplates::load(settings.templates_dir.as_deref(), &settings.site_name)
            .map_err(MailError)?;
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
        let renderer = Renderer {
            from: settings.from.clone(),
            templates,
        };
        tokio::spawn(deliver(receiver, transport, renderer));
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
        let rendered = self.templates.render(email)?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(email.to.parse().map_err(|e| format!("to: {e}"))?)
            .subject(rendered.subject);
        // As Djoser: both bodies make an alternative, one alone is the message.
        match (rendered.text, rendered.html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
            (None, Some(html)) => builder.singlepart(SinglePart::html(html)),
            (None, None) => return Err("the template rendered no text and no HTML body".into()),
        }
        .map_err(|e| e.to_string())
    }
}
