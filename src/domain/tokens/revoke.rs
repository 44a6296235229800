//! Revocation: blacklisting, log out everywhere (the cut-off), the checks against the list,
//! and pruning what has expired.
use super::*;

/// Kept beyond a revoked token's acceptance window (clock skew between instances and stores).
const REVOCATION_MARGIN: Duration = Duration::from_secs(60);

/// How long past its `exp` a revocation is kept under `leeway`.
pub fn revocation_margin(leeway: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(leeway + REVOCATION_MARGIN).unwrap_or(chrono::TimeDelta::MAX)
}

impl TokenService {
    /// Revokes a refresh token and the access token issued with it.
    pub async fn blacklist(&self, token: &str) -> Result<(), DomainError> {
        let claims = self.decode(token, Some(TokenType::Refresh))?;
        let user = self.user_if_named(&claims).await?;
        self.ensure_not_revoked(&claims, user).await?;
        let mut revoked = vec![RevokedJti {
            jti: claims.jti.clone(),
            user_id: user,
            expires_at: self.revoked_until(expires_at(&claims)),
        }];
        if let Some(row) = self.ledger.find(&claims.jti).await? {
            // The ledger refuses it too (a Redis that missed the entry cannot let it refresh),
            // and its parent's one grace use is spent: a logout is not undone by presenting
            // the token it replaced.
            let mut closed = vec![row.jti.clone()];
            closed.extend(row.parent_jti.clone());
            self.ledger.close(&closed, Utc::now()).await?;
            if !row.access_jti.is_empty() {
                revoked.push(RevokedJti {
                    jti: row.access_jti,
                    user_id: user,
                    expires_at: self.revoked_until(row.access_expires_at),
                });
            }
        }
        self.revocations.revoke(&revoked).await?;
        metrics::counter!("tessera_tokens_revoked_total").increment(revoked.len() as u64);
        tracing::info!(target: "tessera::audit", user_id = ?user, "refresh token blacklisted");
        Ok(())
    }

    /// Revokes every token of `user` issued until now. Answers once the next whole second has
    /// begun, so a token issued after the call (its `iat` is in seconds) is never caught by it.
    pub async fn revoke_all(&self, user: Uuid) -> Result<(), DomainError> {
        let now = Utc::now();
        let cutoff = now.timestamp() + 1;
        let until = self.revoked_until(now + self.rules.refresh_lifetime);
        self.revocations.revoke_user(user, cutoff, until).await?;
        tracing::info!(target: "tessera::audit", user_id = %user, "all tokens revoked");
        let wait = (cutoff * 1000 - Utc::now().timestamp_millis()).max(0);
        tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        Ok(())
    }

    /// Deletes expired ledger and revocation rows; returns how many.
    pub async fn prune(&self) -> Result<u64, DomainError> {
        self.prune_as_of(Utc::now()).await
    }

    /// Deletes the rows that are expired at `now`: ledger rows past their token's acceptance
    /// window (exp + leeway), revocations past theirs (which already includes the margin), and
    /// the records of sessions that ended.
    pub async fn prune_as_of(&self, now: DateTime<Utc>) -> Result<u64, DomainError> {
        let ledger = self.ledger.prune(now - self.rules.leeway).await?;
        let revocations = self.revocations.prune(now).await?;
        Ok(ledger + revocations + self.sessions.prune(now - self.rules.leeway).await?)
    }

    /// How long a revocation of a token expiring at `exp` is kept: a token is accepted until
    /// `exp` + leeway, and a store's clock or TTL rounding must not end the entry before that.
    pub(super) fn revoked_until(&self, exp: DateTime<Utc>) -> DateTime<Utc> {
        exp + revocation_margin(self.rules.leeway)
    }

    pub(super) async fn ensure_not_revoked(
        &self,
        claims: &Claims,
        user: Option<Uuid>,
    ) -> Result<(), DomainError> {
        let iat = claims.iat.unwrap_or(i64::MIN);
        if self
            .revocations
            .is_revoked(Some(&claims.jti), user, iat)
            .await?
        {
            return Err(TokenError::Blacklisted.into());
        }
        Ok(())
    }

    pub(super) async fn active_user(&self, id: Uuid) -> Result<User, DomainError> {
        match self.users.find(id).await? {
            None => Err(TokenError::UserNotFound.into()),
            Some(user) if !user.is_active => Err(TokenError::UserInactive.into()),
            Some(user) => Ok(user),
        }
    }
}
