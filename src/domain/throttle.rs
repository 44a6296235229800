//! Rate limits (DRF's throttles, shared by every instance) and brute-force protection of the
//! password checks.
use std::{net::IpAddr, sync::Arc, time::Duration};

use super::{DomainError, StoreError};

/// `<requests>/<period>` as in DRF's DEFAULT_THROTTLE_RATES ("100/min", "5/hour", "1000/day").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub period: Duration,
}

impl Rate {
    /// Parses DRF's format; like DRF, only the first letter of the unit counts (s, m, h, d).
    pub fn parse(text: &str) -> Option<Rate> {
        let (count, unit) = text.split_once('/')?;
        let requests: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
        let seconds = match unit.trim().chars().next()? {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        Some(Rate {
            requests,
            period: Duration::from_secs(seconds),
        })
    }
}

/// Read from settings in DRF's format; a bad rate is refused at start.
impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rate::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a rate like \"100/min\" (units second, minute, hour, day)"
            ))
        })
    }
}

/// One limiter's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is whole again.
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}

/// Counts requests against a rate, atomically across instances (GCRA).
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    async fn hit(&self, key: &str, rate: Rate) -> Result<Decision, StoreError>;
}

/// Counts failed password checks in a sliding window.
#[async_trait::async_trait]
pub trait FailureCounter: Send + Sync {
    /// Failures recorded for `key` within the window (0 when none).
    async fn failures(&self, key: &str) -> Result<u32, StoreError>;
    /// Records one more attempt; the count expires `window` after the last one. Fails rather
    /// than forget live counts when there is no room.
    async fn record(&self, key: &str, window: Duration) -> Result<u32, StoreError>;
    /// Takes one attempt back (it was no wrong guess).
    async fn forgive(&self, key: &str) -> Result<(), StoreError>;
    async fn reset(&self, key: &str) -> Result<(), StoreError>;
}

/// Locks out an account or an address after too many failed password checks. The answer is
/// the same whether the account exists, so it reveals nothing.
pub struct LoginGuard {
    counter: Arc<dyn FailureCounter>,
    /// Used when the shared counter is unreachable, so an outage does not open guessing.
    fallback: Arc<dyn FailureCounter>,
    pub account_failures: u32,
    pub ip_failures: u32,
    pub window: Duration,
}

impl LoginGuard {
    pub fn new(
        counter: Arc<dyn FailureCounter>,
        fallback: Arc<dyn FailureCounter>,
        account_failures: u32,
        ip_failures: u32,
        window: Duration,
    ) -> Self {
        Self {
            counter,
            fallback,
            account_failures,
            ip_failures,
            window,
        }
    }

    fn keys(login: &str, ip: Option<IpAddr>) -> (String, Option<String>) {
        (
            format!("account:{}", login.to_lowercase()),
            ip.map(|ip| format!("ip:{}", address_block(ip))),
        )
    }

    /// Counts this password check against the account and the address before it runs, and
    /// refuses it once either is past its threshold: of N parallel guesses at most the
    /// threshold reach the hash, however many workers and queue slots there are.
    pub async fn attempt(&self, login: &str, ip: Option<IpAddr>) -> Result<(), DomainError> {
        if self.account_failures == 0 {
            return Ok(());
        }
        let (account, address) = Self::keys(login, ip);
        // An account that cannot be counted is refused: no uncounted guess gets through.
        let mut locked = self
            .record(&account)
            .await
            .is_none_or(|n| n > self.account_failures);
        // A new address this instance has no room for is not counted; its account still is.
        if let Some(address) = &address {
            locked |= self
                .record(address)
                .await
                .is_some_and(|n| n > self.ip_failures);
        }
        if locked {
            tracing::warn!(target: "tessera::audit", ip = ?ip, "login refused: locked out");
            metrics::counter!("tessera_logins_total", "outcome" => "locked").increment(1);
            return Err(DomainError::Throttled {
                retry_after_secs: self.window.as_secs(),
            });
        }
        Ok(())
    }

    /// The password was right: the account's count is cleared, and the address gets this
    /// attempt back (a busy NAT's good logins never lock it out).
    pub async fn succeeded(&self, login: &str, ip: Option<IpAddr>) {
        self.right_password(ip).await;
        self.clear_account(login).await;
    }

    /// A right password whose login still waits for a second factor: the address gets the
    /// attempt back, the account's count stays (it is cleared once the login completes).
    pub async fn right_password(&self, ip: Option<IpAddr>) {
        if self.account_failures == 0 {
            return;
        }
        if let (_, Some(address)) = Self::keys("", ip) {
            self.forgive(&address).await;
        }
    }

    /// The account's login completed: its count is cleared.
    pub async fn clear_account(&self, login: &str) {
        if self.account_failures == 0 {
            return;
        }
        let (account, _) = Self::keys(login, None);
        // Not clearing a count only makes a later lockout come sooner: logged, not fatal.
        if let Err(e) = self.counter.reset(&account).await {
            tracing::warn!(error = %e, "could not clear an account's failure count");
        }
        if let Err(e) = self.fallback.reset(&account).await {
            tracing::warn!(error = %e, "could not clear an account's local failure count");
        }
    }

    /// The check could not run (hashing saturated, store down): it was no guess.
    pub async fn not_checked(&self, login: &str, ip: Option<IpAddr>) {
        if self.account_failures == 0 {
            return;
        }
        let (account, address) = Self::keys(login, ip);
        for key in std::iter::once(account).chain(address) {
            self.forgive(&key).await;
        }
    }

    /// One more attempt under `key`: the shared count when it can be had, this instance's
    /// otherwise (an outage never opens guessing); None when neither could count it.
    async fn record(&self, key: &str) -> Option<u32> {
        match self.counter.record(key, self.window).await {
            // Counts this instance kept while the shared counter was down still hold.
            Ok(n) => Some(n.max(self.fallback.failures(key).await.unwrap_or(0))),
            Err(e) => {
                tracing::warn!(error = %e, "failure counter unreachable: using this instance's counts");
                self.fallback.record(key, self.window).await.ok()
            }
        }
    }

    async fn forgive(&self, key: &str) {
        // An attempt not given back counts as a failure: the safe side, logged.
        if let Err(e) = self.counter.forgive(key).await {
            tracing::warn!(error = %e, "failure counter unreachable: forgiving locally");
            if let Err(e) = self.fallback.forgive(key).await {
                tracing::warn!(error = %e, "could not give an attempt back");
            }
        }
    }
}

/// The address the lockout and the rates count: the IPv4 address, or the IPv6 /64 (one
/// subscriber's prefix: counting single IPv6 addresses would give an attacker unlimited fresh
/// keys).
pub fn address_block(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, 64) {
            Ok(net) => net.trunc().to_string(),
            Err(_) => v6.to_string(),
        },
    }
}

/// DRF's throttles: anonymous callers by address, authenticated ones by user, endpoint groups by
/// their own rate. A limiter that cannot be reached lets requests through (logged and counted):
/// rate limits protect capacity, the login lockout protects accounts and never fails open.
pub struct Throttle {
    limiter: Arc<dyn RateLimiter>,
    pub anon: Rate,
    pub user: Rate,
    scopes: std::collections::HashMap<String, Rate>,
}

impl Throttle {
    pub fn new(
        limiter: Arc<dyn RateLimiter>,
        anon: Rate,
        user: Rate,
        scopes: std::collections::HashMap<String, Rate>,
    ) -> Self {
        Self {
            limiter,
            anon,
            user,
            scopes,
        }
    }

    pub fn scope(&self, name: &str) -> Option<Rate> {
        self.scopes.get(name).copied()
    }

    /// Counts one request under `key`; `None` when the limiter could not be asked.
    pub async fn hit(&self, key: &str, rate: Rate) -> Option<Decision> {
        match self.limiter.hit(key, rate).await {
            Ok(decision) => Some(decision),
            Err(e) => {
                metrics::counter!("tessera_throttle_failed_open_total").increment(1);
                tracing::warn!(error = %e, "rate limiter unreachable: request let through");
                None
            }
        }
    }

    /// DRF's UserRateThrottle.
    /// DRF's UserRateThrottle; the decision (for rate headers) when the limiter answered.
    pub async fn check_user(&self, user: uuid::Uuid) -> Result<Option<Decision>, DomainError> {
        match self.hit(&format!("user:{user}"), self.user).await {
            Some(d) if !d.allowed => Err(DomainError::Throttled {
                retry_after_secs: d.retry_after_secs,
            }),
            decision => Ok(decision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_drf_rates() {
        assert_eq!(
            Rate::parse("100/min"),
            Some(Rate {
                requests: 100,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Rate::parse("5/hour").map(|r| r.period),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            Rate::parse("1/s").map(|r| r.period),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            Rate::parse("3/day").map(|r| r.period),
            Some(Duration::from_secs(86_400))
        );
        for bad in ["", "10", "x/min", "0/min", "10/week"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }
}
