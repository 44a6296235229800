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
    /// `health.redis_required`: an unreachable Redis makes the instance unavailable.
    pub redis_required: bool,
}

/// What a report means for traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every dependency answered.
    Ok,
    /// Serving without Redis: revocation checks answer from SQL, rate limits fail open.
    Degraded,
    /// Not serving: the database (or a Redis the settings require) does not answer.
    Unavailable,
}

impl Report {
    pub fn status(&self) -> Status {
        match (self.database, self.redis) {
            (false, _) => Status::Unavailable,
            // Requests are still answered correctly from SQL, so by default a Redis blip must
            // not pull every instance out of the load balancer at once.
            (true, Some(false)) if self.redis_required => Status::Unavailable,
            (true, Some(false)) => Status::Degraded,
            (true, _) => Status::Ok,
        }
    }
}

pub struct Readiness {
    users: Arc<dyn UserStore>,
    redis: Option<Arc<dyn RevocationStore>>,
    redis_required: bool,
    last: Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    pub fn new(
        users: Arc<dyn UserStore>,
        redis: Option<Arc<dyn RevocationStore>>,
        redis_required: bool,
    ) -> Self {
        Self {
            users,
            redis,
            redis_required,
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
        let report = Report {
            database,
            redis,
            redis_required: self.redis_required,
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), report));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::{Report, Status};

    fn status(database: bool, redis: Option<bool>, redis_required: bool) -> Status {
        Report {
            database,
            redis,
            redis_required,
        }
        .status()
    }

    #[test]
    fn redis_down_degrades_unless_required_and_the_database_always_counts() {
        for required in [false, true] {
            assert_eq!(status(true, None, required), Status::Ok);
            assert_eq!(status(true, Some(true), required), Status::Ok);
            assert_eq!(status(false, None, required), Status::Unavailable);
            assert_eq!(status(false, Some(true), required), Status::Unavailable);
            assert_eq!(status(false, Some(false), required), Status::Unavailable);
        }
        assert_eq!(status(true, Some(false), false), Status::Degraded);
        assert_eq!(status(true, Some(false), true), Status::Unavailable);
    }
}
