//! Copies `tessera::audit` events, with the request's id, peer and User-Agent, into SQL: a
//! tracing layer hands them to a bounded channel and a background task writes them, so a slow
//! database never slows a request (a full channel drops the copy; the log line remains).
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

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

/// The tracing side: build it before logging starts, give its events to
/// `Application::keep_audit_events`.
pub struct AuditLayer {
    sender: mpsc::Sender<AuditRecord>,
    progress: Arc<AuditProgress>,
}

/// The events the layer queued, for the writer.
pub struct AuditEvents {
    receiver: mpsc::Receiver<AuditRecord>,
    progress: Arc<AuditProgress>,
}

/// How many events were queued and how many the writer has handled, so a shutdown can wait for
/// the queue to be written instead of losing its tail.
#[derive(Default)]
pub struct AuditProgress {
    queued: AtomicU64,
    handled: AtomicU64,
}

impl AuditProgress {
    /// Waits until every queued event is handled, at most `limit`.
    pub async fn drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.handled.load(Ordering::SeqCst) < self.queued.load(Ordering::SeqCst)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl AuditLayer {
    pub fn new() -> (Self, AuditEvents) {
        let (sender, receiver) = mpsc::channel(10_000);
        let progress = Arc::new(AuditProgress::default());
        let events = AuditEvents {
            receiver,
            progress: progress.clone(),
        };
        (Self { sender, progress }, events)
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
        // A full queue drops the copy (the log line remains): a slow database never slows
        // the request that is being audited.
        if self.sender.try_send(record).is_ok() {
            self.progress.queued.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Writes queued events and deletes those older than `retention`, hourly; returns the
/// progress a shutdown waits on.
pub fn spawn_writer(
    events: AuditEvents,
    log: SqlAuditLog,
    retention: Duration,
) -> Arc<AuditProgress> {
    let AuditEvents {
        mut receiver,
        progress,
    } = events;
    let handled = progress.clone();
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
                        handled.handled.fetch_add(1, Ordering::SeqCst);
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
    progress
}
