//! Rate-limit and failure counters: in Redis (shared by every instance; one script call per
//! check) or in this process's memory (the embedded default, and the fallback of the lockout).
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::domain::{
    StoreError,
    throttle::{Decision, FailureCounter, Rate, RateLimiter},
};

/// GCRA (the generic cell rate algorithm): one key per client holds the theoretical arrival
/// time; a request is allowed when it is not earlier than `tat - period`. Redis's clock is used,
/// so every instance agrees. Returns {allowed, remaining, reset_ms, retry_ms}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
-- At rates beyond one a millisecond new_tat - now rounds to 0, which PX refuses.
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((period - (new_tat - now)) / interval), math.ceil(new_tat - now), 0}
";

/// A failure count that expires `window` after the last failure.
const RECORD_FAILURE: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
";

/// Both counter kinds from one backend, as the trait objects the domain takes.
pub trait RateLimiterAndCounter: RateLimiter + FailureCounter {
    fn as_limiter(self: Arc<Self>) -> Arc<dyn RateLimiter>;
    fn as_counter(self: Arc<Self>) -> Arc<dyn FailureCounter>;
}

impl<T: RateLimiter + FailureCounter + 'static> RateLimiterAndCounter for T {
    fn as_limiter(self: Arc<Self>) -> Arc<dyn RateLimiter> {
        self
    }

    fn as_counter(self: Arc<Self>) -> Arc<dyn FailureCounter> {
        self
    }
}

pub struct RedisCounters {
    redis: super::redis_conn::RedisConn,
    prefix: String,
    gcra: redis::Script,
    record: redis::Script,
}

impl RedisCounters {
    pub fn new(redis: super::redis_conn::RedisConn, prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}throttle:"),
            gcra: redis::Script::new(GCRA),
            record: redis::Script::new(RECORD_FAILURE),
        }
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn decision(allowed: bool, limit: u32, remaining: u64, reset_ms: u64, retry_ms: u64) -> Decision {
    Decision {
        allowed,
        limit,
        remaining: remaining.min(u64::from(limit)) as u32,
        reset_secs: reset_ms.div_ceil(1000),
        retry_after_secs: retry_ms.div_ceil(1000),
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisCounters {
    async fn hit(&self, key: &str, rate: Rate) -> Result<Decision, StoreError> {
        let mut conn = self.redis.clone();
        let (allowed, remaining, reset_ms, retry_ms): (u8, u64, u64, u64) = self
            .gcra
            .key(format!("{}rate:{key}", self.prefix))
            .arg(rate.period.as_millis() as u64)
            .arg(rate.requests)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(decision(
            allowed == 1,
            rate.requests,
            remaining,
            reset_ms,
            retry_ms,
        ))
    }
}

#[async_trait::async_trait]
impl FailureCounter for RedisCounters {
    async fn failures(&self, key: &str) -> Result<u32, StoreError> {
        let mut conn = self.redis.clone();
        let n: Option<u32> = redis::cmd("GET")
            .arg(format!("{}fail:{key}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(n.unwrap_or(0))
    }

    async fn record(&self, key: &str, window: Duration) -> Result<u32, StoreError> {
        let mut conn = self.redis.clone();
        self.record
            .key(format!("{}fail:{key}", self.prefix))
            .arg(window.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn forgive(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.redis.clone();
        FORGIVE
            .key(format!("{}fail:{key}", self.prefix))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(format!("{}fail:{key}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

/// Takes one attempt back, never below zero, keeping the key's expiry.
static FORGIVE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local n = tonumber(redis.call('GET', KEYS[1]))
        if n ~= nil and n > 0 then redis.call('DECR', KEYS[1]) end
        ",
    )
});

/// This process's counters, bounded: past `capacity` keys, expired ones are dropped; live ones
/// never are (see `room_for`).
pub struct MemoryCounters {
    started: Instant,
    rates: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<String, (u32, u64)>>,
    capacity: usize,
}

impl MemoryCounters {
    pub fn new(capacity: usize) -> Self {
        Self {
            started: Instant::now(),
            rates: Mutex::default(),
            failures: Mutex::default(),
            capacity,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Makes room for `key` by dropping expired entries only; false when every entry is live.
    /// Live entries are never dropped: clearing them would hand an attacker who fills the
    /// table a fresh budget for every key, their own included.
    fn room_for<V>(
        map: &mut HashMap<String, V>,
        key: &str,
        capacity: usize,
        live: impl Fn(&V) -> bool,
    ) -> bool {
        if map.len() < capacity || map.contains_key(key) {
            return true;
        }
        map.retain(|_, v| live(v));
        map.len() < capacity
    }
}

#[async_trait::async_trait]
impl RateLimiter for MemoryCounters {
    async fn hit(&self, key: &str, rate: Rate) -> Result<Decision, StoreError> {
        let now = self.now_ms();
        let period = rate.period.as_millis() as u64;
        let interval = period / u64::from(rate.requests);
        let mut rates = self
            .rates
            .lock()
            .map_err(|_| StoreError::Internal("counter lock poisoned".into()))?;
        if !Self::room_for(&mut rates, key, self.capacity, |tat| *tat > now) {
            // The limiter cannot track one more client: like an unreachable Redis (fail open,
            // counted); the clients it tracks keep their counts.
            return Err(StoreError::Unavailable("rate table full".into()));
        }
        let tat = rates.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        let allow_at = new_tat.saturating_sub(period);
        if now < allow_at {
            return Ok(decision(false, rate.requests, 0, tat - now, allow_at - now));
        }
        rates.insert(key.to_owned(), new_tat);
        let used = new_tat - now;
        Ok(decision(
            true,
            rate.requests,
            period.saturating_sub(used) / interval.max(1),
            used,
            0,
        ))
    }
}

#[async_trait::async_trait]
impl FailureCounter for MemoryCounters {
    async fn failures(&self, key: &str) -> Result<u32, StoreError> {
        let now = self.now_ms();
        let failures = self
            .failures
            .lock()
            .map_err(|_| StoreError::Internal("counter lock poisoned".into()))?;
        Ok(failures
            .get(key)
            .filter(|(_, until)| *until > now)
            .map_or(0, |(n, _)| *n))
    }

    async fn record(&self, key: &str, window: Duration) -> Result<u32, StoreError> {
        let now = self.now_ms();
        let mut failures = self
            .failures
            .lock()
            .map_err(|_| StoreError::Internal("counter lock poisoned".into()))?;
        // Accounts are always counted (each new one cost a password hash to create); a new
        // address is refused when the table is full of live entries, never an account forgotten.
        if !Self::room_for(&mut failures, key, self.capacity, |(_, until)| *until > now)
            && !key.starts_with("account:")
        {
            return Err(StoreError::Unavailable("failure table full".into()));
        }
        let entry = failures.entry(key.to_owned()).or_insert((0, 0));
        if entry.1 <= now {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now + window.as_millis() as u64;
        Ok(entry.0)
    }

    async fn forgive(&self, key: &str) -> Result<(), StoreError> {
        let mut failures = self
            .failures
            .lock()
            .map_err(|_| StoreError::Internal("counter lock poisoned".into()))?;
        if let Some(entry) = failures.get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
        Ok(())
    }

    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let mut failures = self
            .failures
            .lock()
            .map_err(|_| StoreError::Internal("counter lock poisoned".into()))?;
        failures.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::throttle::LoginGuard;

    #[tokio::test]
    async fn memory_gcra_allows_the_rate_then_refuses() {
        let counters = MemoryCounters::new(10);
        let rate = Rate {
            requests: 3,
            period: Duration::from_secs(60),
        };
        for expected_remaining in [2, 1, 0] {
            let d = counters.hit("k", rate).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
        }
        let refused = counters.hit("k", rate).await.unwrap();
        assert!(!refused.allowed);
        assert!((19..=20).contains(&refused.retry_after_secs), "{refused:?}");
        assert!(
            counters.hit("other", rate).await.unwrap().allowed,
            "keys are separate"
        );
    }

    #[tokio::test]
    async fn memory_failures_count_and_reset() {
        let counters = MemoryCounters::new(10);
        assert_eq!(
            counters.record("a", Duration::from_secs(60)).await.unwrap(),
            1
        );
        assert_eq!(
            counters.record("a", Duration::from_secs(60)).await.unwrap(),
            2
        );
        assert_eq!(counters.failures("a").await.unwrap(), 2);
        counters.reset("a").await.unwrap();
        assert_eq!(counters.failures("a").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_full_table_never_forgets_live_counts() {
        let window = Duration::from_secs(600);
        let counters = MemoryCounters::new(3);
        assert_eq!(counters.record("account:alice", window).await.unwrap(), 1);
        assert_eq!(counters.record("account:alice", window).await.unwrap(), 2);
        counters.record("ip:10.0.0.1", window).await.unwrap();
        counters.record("ip:10.0.0.2", window).await.unwrap();
        // Full of live entries: a new address is refused, not counted by forgetting others.
        assert!(counters.record("ip:10.0.0.3", window).await.is_err());
        assert_eq!(counters.failures("account:alice").await.unwrap(), 2);
        assert_eq!(counters.failures("ip:10.0.0.1").await.unwrap(), 1);
        // Accounts are always counted, and known keys keep counting.
        assert_eq!(counters.record("account:bob", window).await.unwrap(), 1);
        assert_eq!(counters.record("account:alice", window).await.unwrap(), 3);
        assert_eq!(counters.record("ip:10.0.0.1", window).await.unwrap(), 2);

        // Rates: a full table of live clients refuses a new one and keeps the others' counts.
        let rate = Rate {
            requests: 1,
            period: Duration::from_secs(60),
        };
        let rates = MemoryCounters::new(2);
        assert!(rates.hit("a", rate).await.unwrap().allowed);
        assert!(rates.hit("b", rate).await.unwrap().allowed);
        assert!(rates.hit("c", rate).await.is_err());
        assert!(
            !rates.hit("a", rate).await.unwrap().allowed,
            "a kept its count"
        );
    }

    #[tokio::test]
    async fn parallel_guesses_never_exceed_the_threshold() {
        let counters = Arc::new(MemoryCounters::new(100));
        let guard = Arc::new(LoginGuard::new(
            counters.clone(),
            counters,
            3,
            100,
            Duration::from_secs(600),
        ));
        let attempts: Vec<_> = (0..50)
            .map(|_| {
                let guard = guard.clone();
                tokio::spawn(async move { guard.attempt("victim", None).await.is_ok() })
            })
            .collect();
        let mut allowed = 0;
        for attempt in attempts {
            allowed += usize::from(attempt.await.unwrap());
        }
        assert_eq!(allowed, 3);
    }

    #[tokio::test]
    async fn ipv6_addresses_count_by_their_64() {
        let counters = Arc::new(MemoryCounters::new(100));
        let guard = LoginGuard::new(counters.clone(), counters, 100, 2, Duration::from_secs(600));
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        assert!(guard.attempt("a", ip("2001:db8:1:2::1")).await.is_ok());
        assert!(guard.attempt("b", ip("2001:db8:1:2:ffff::9")).await.is_ok());
        assert!(
            guard
                .attempt("c", ip("2001:db8:1:2:abcd::1"))
                .await
                .is_err(),
            "the same /64"
        );
        assert!(guard.attempt("d", ip("2001:db8:1:3::1")).await.is_ok());
        assert!(guard.attempt("e", ip("192.0.2.1")).await.is_ok());
    }
}
