//! Tessera: an identity and token service compatible with Djoser and SimpleJWT.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod mail;
pub mod settings;
pub mod state;
pub mod store;

use std::net::SocketAddr;

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};

pub use settings::Settings;
pub use state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("{0}")]
    Store(#[from] domain::StoreError),
    #[error("{0}")]
    Domain(#[from] domain::DomainError),
    #[error("{0}")]
    Keys(#[from] domain::keys::KeyError),
    #[error("{0}")]
    Mail(#[from] mail::MailError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error(transparent)]
    Paths(#[from] http::aliases::PathError),
    #[error(transparent)]
    CookiePath(#[from] http::cookie::CookiePathError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long a shutdown waits for queued audit events to be written.
const AUDIT_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A bound, ready-to-run instance; `main` and the tests both build it this way.
pub struct Application {
    acceptor: TcpAcceptor,
    /// The metrics listener, when `server.metrics_bind` is set.
    metrics: Option<TcpAcceptor>,
    state: AppState,
    aliases: http::aliases::PathAliases,
    /// The SQL audit writer's progress, when it runs.
    audit: Option<std::sync::Arc<audit::AuditProgress>>,
}

impl Application {
    /// Connects, migrates (if configured) and binds `server.bind` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let addr = settings.server.bind;
        let aliases = http::path_aliases(&settings.paths)?;
        http::cookie::check_path(&settings, &aliases)?;
        let metrics = match settings.server.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .into_acceptor()
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let state = AppState::connect(settings).await?;
        let acceptor = TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self {
            acceptor,
            metrics,
            state,
            aliases,
            audit: None,
        })
    }

    /// The address of the metrics listener, when it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let acceptor = self.metrics.as_ref()?;
        acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
    }

    /// Keeps the audit events an [`audit::AuditLayer`] hands over in SQL (`audit.store_in_sql`),
    /// deleting them after `audit.retention`; runs in the background until the process ends.
    /// On shutdown, the events queued until then are written before `run_until` returns.
    pub fn keep_audit_events(&mut self, events: audit::AuditEvents) {
        self.audit = Some(audit::spawn_writer(
            events,
            store::audit::SqlAuditLog::new(self.state.database.clone()),
            self.state.settings.audit.retention,
        ));
    }

    /// The wired services (tests use it to seed data).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
    pub async fn run_until<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send,
    {
        let grace = self.state.settings.server.shutdown_timeout;
        let prune_every = self.state.settings.jwt.prune_interval;
        if !prune_every.is_zero() {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(prune_every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let pruned = match state.tokens.prune().await {
                        Ok(n) => state.mfa.prune().await.map(|m| n + m),
                        Err(e) => Err(e),
                    };
                    match pruned {
                        Ok(n) => tracing::info!(removed = n, "expired token records pruned"),
                        Err(e) => tracing::warn!(error = %e, "pruning expired tokens failed"),
                    }
                }
            });
        }
        if let Some(metrics) = self.metrics {
            tokio::spawn(Server::new_with_acceptor(metrics).run(http::metrics_app()));
        }
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(http::app(self.state, self.aliases), shutdown, Some(grace))
            .await;
        // The last requests' audit events are still queued: write them before exiting.
        if let Some(audit) = &self.audit {
            audit.drained(AUDIT_DRAIN_LIMIT).await;
        }
        served
    }
}
