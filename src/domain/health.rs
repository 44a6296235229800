//! Readiness: can this instance reach what it needs? Checked with short timeouts and cached for
//! a second, so a probe storm never becomes a load on the database.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{revocation::RevocationStore, users::UserStore};

const TIMEOUT: Duration = Duration::from_secs(1);
const CACHE: Duration = Duration::from_secs(1);

/// Which dependency answered; `redis` is None when none is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub database: bool,
    pub redis: Option<bool>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.database && self.redis != Some(false)
    }
}

pub struct Readiness {
    users: Arc<dyn UserStore>,
    redis: Option<Arc<dyn RevocationStore>>,
    last: Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    pub fn new(users: Arc<dyn UserStore>, redis: Option<Arc<dyn RevocationStore>>) -> Self {
        Self {
            users,
            redis,
            last: Mutex::new(None),
        }
    }

    pub async fn check(&self) -> Report {
        if let Ok(last) = self.last.lock()
            && let Some((at, report)) = *last
            && at.elapsed() < CACHE
        {
            return report;
        }
        let database = matches!(
            tokio::time::timeout(TIMEOUT, self.users.ping()).await,
            Ok(Ok(()))
        );
        let redis = match &self.redis {
            None => None,
            Some(store) => Some(matches!(
                tokio::time::timeout(TIMEOUT, store.ping()).await,
                Ok(Ok(()))
            )),
        };
        let report = Report { database, redis };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), report));
        }
        report
    }
}
