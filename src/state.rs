//! The services every request may use, behind `Arc`s: cheap to clone into each request.
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    domain::{
        DomainError,
        passwords::{BlockingPool, PasswordHasher, PasswordRules},
        users::UserService,
    },
    settings::Settings,
    store::{database, users::SqlUserStore},
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub users: Arc<UserService>,
}

impl AppState {
    /// Wires the SQL stores into the services.
    pub fn new(settings: Settings, db: DatabaseConnection) -> Result<Self, DomainError> {
        let p = &settings.passwords;
        let workers = if p.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            p.workers
        };
        let hasher = PasswordHasher::new(
            p.memory_kib,
            p.iterations,
            p.parallelism,
            BlockingPool::new(workers, p.queue),
        )?;
        let rules = PasswordRules::new(p.min_length, p.max_similarity);
        let users = UserService::new(Arc::new(SqlUserStore::new(db)), Arc::new(hasher), rules);
        Ok(Self {
            settings: Arc::new(settings),
            users: Arc::new(users),
        })
    }

    /// Connects to the database (migrating when configured) and wires the state.
    pub async fn connect(settings: Settings) -> Result<Self, crate::StartError> {
        let db = database::connect(&settings.database).await?;
        if settings.database.migrate_on_start {
            database::migrate(&db).await?;
        }
        Ok(Self::new(settings, db)?)
    }
}
