//! The live families of a user: the JWT sessions that can still be refreshed.
use super::*;

/// A family whose current refresh token is neither rotated, revoked nor expired.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFamily {
    pub family: Uuid,
    /// When its current refresh token was issued (the login or the last refresh).
    pub refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TokenService {
    /// The user's families that a refresh could still continue, newest token of each: a
    /// family whose token was blacklisted, rotated away by reuse detection, or issued before
    /// the user's cut-off (a password change, logout everywhere) is not one.
    pub async fn live_families(&self, user: Uuid) -> Result<Vec<LiveFamily>, DomainError> {
        let mut live: Vec<LiveFamily> = Vec::new();
        for row in self.ledger.live_for_user(user, Utc::now()).await? {
            let iat = row.created_at.timestamp();
            if self
                .revocations
                .is_revoked(Some(&row.jti), Some(user), iat)
                .await?
            {
                continue;
            }
            match live.iter_mut().find(|f| f.family == row.family) {
                // A grace use left two unrotated tokens in the family: the newer one counts.
                Some(known) if known.refreshed_at < row.created_at => {
                    known.refreshed_at = row.created_at;
                    known.expires_at = row.expires_at;
                }
                Some(_) => {}
                None => live.push(LiveFamily {
                    family: row.family,
                    refreshed_at: row.created_at,
                    expires_at: row.expires_at,
                }),
            }
        }
        Ok(live)
    }
}
