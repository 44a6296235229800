//! Copies `tessera::audit` events, with the request's id, peer and User-Agent, into SQL: a
//! tracing layer hands them to a bounded channel and a background task writes them, so a slow
//! database never slows a request (a full channel drops the copy; the log line remains).
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id},
};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

pub use crate::store::audit::AuditRecord;
use crate::store::audit::SqlAuditLog;

const TARGET: &str = "tessera::audit";

/// The tracing side: build it before logging starts, give its receiver to [`spawn_writer`].
pub struct AuditLayer {
    sender: mpsc::Sender<AuditRecord>,
}

impl AuditLayer {
    pub fn new() -> (Self, mpsc::Receiver<AuditRecord>) {
        let (sender, receiver) = mpsc::channel(10_000);
        (Self { sender }, receiver)
    }
}

/// The request span's fields, kept in the span's extensions.
#[derive(Default, Clone)]
struct RequestFields {
    id: String,
    peer: String,
    client: String,
    user_agent: String,
}

impl Visit for RequestFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "id" => self.id = text,
            "peer" => self.peer = text,
            "client" => self.client = text,
            "user_agent" => self.user_agent = text,
            _ => {}
        }
    }
}

impl Visit for AuditRecord {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}").trim_matches('"').to_owned();
        match field.name() {
            "message" => self.event = text,
            "user_id" => self.user_id = Some(text),
            "actor_id" => self.actor_id = Some(text),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for AuditLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<RequestFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut record = AuditRecord {
            at: Some(chrono::Utc::now()),
            ..Default::default()
        };
        event.record(&mut record);
        let request = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<RequestFields>().cloned())
        });
        if let Some(r) = request {
            record.request_id = r.id;
            // The client behind trusted proxies when known, else the connection's peer.
            record.peer = if r.client.is_empty() {
                r.peer
            } else {
                r.client
            };
            record.user_agent = r.user_agent;
        }
        let _ = self.sender.try_send(record);
    }
}

/// Writes queued events and deletes those older than `retention`, hourly.
pub fn spawn_writer(
    mut receiver: mpsc::Receiver<AuditRecord>,
    log: SqlAuditLog,
    retention: Duration,
) {
    tokio::spawn(async move {
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                record = receiver.recv() => match record {
                    Some(record) => {
                        if let Err(e) = log.insert(record).await {
                            // Logged on another target, so this cannot loop back here.
                            tracing::warn!(error = %e, "could not store an audit event");
                        }
                    }
                    None => break,
                },
                _ = prune.tick() => {
                    if let Err(e) = log.prune(chrono::Utc::now() - retention).await {
                        tracing::warn!(error = %e, "could not prune audit events");
                    }
                }
            }
        }
    });
}
