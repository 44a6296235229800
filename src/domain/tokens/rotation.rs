//! Refresh with rotation: one winner among concurrent refreshes, the reuse grace, reuse
//! detection that revokes the family, and adoption of refresh tokens minted elsewhere.
use super::*;

impl TokenService {
    /// Rotates a refresh token (or only issues an access token when rotation is off). A token
    /// presented after it was rotated revokes its whole family, unless the grace lets it through.
    /// `client` is noted as the session's last use.
    pub async fn refresh(
        &self,
        token: &str,
        client: &Client<'_>,
    ) -> Result<Refreshed, DomainError> {
        let claims = self.decode(token, Some(TokenType::Refresh))?;
        let user_id = self.user_of(&claims).await?;
        let now = Utc::now();
        let mut carried = self.carried(&claims);
        if !self.rules.rotate_refresh_tokens {
            self.ensure_not_revoked(&claims, Some(user_id)).await?;
            let user = self.active_user(user_id).await?;
            check_stamp(&claims, &user)?;
            let facts = self.access_claims(&user).await?;
            let stamp = Some(user.credential_version);
            // The session is the ledger's family of the token, never the token's own `sid`.
            let family = if self.sessions.enabled() {
                self.ledger.find(&claims.jti).await?.map(|row| row.family)
            } else {
                None
            };
            if let Some(family) = family {
                carried.extend(self.session_claim(family));
                self.note_use(family, client, None).await;
            }
            let extra = access_extra(&carried, &facts);
            let (access, _, _) = self.encode_with(
                TokenType::Access,
                self.users.public_id(&user),
                stamp,
                now,
                &extra,
            )?;
            return Ok(Refreshed {
                access,
                refresh: None,
            });
        }
        // The ledger decides first: a rotated token is reuse even though it is also blacklisted.
        let parent = match self.ledger.find(&claims.jti).await? {
            Some(row) => row,
            None => self.adopt(token, &claims, user_id, now).await?,
        };
        if parent.rotated_at.is_none() {
            self.ensure_not_revoked(&claims, Some(user_id)).await?;
        }
        // Claims are rebuilt from the database on every refresh: a group change shows here.
        let user = self.active_user(user_id).await?;
        check_stamp(&claims, &user)?;
        let facts = self.access_claims(&user).await?;
        carried.extend(self.session_claim(parent.family));
        let parent_jti = Some(parent.jti.clone());
        let (pair, child) = self.mint(&user, &carried, &facts, parent.family, parent_jti, now)?;
        if parent.rotated_at.is_none() && self.ledger.rotate(&parent.jti, &child, now).await? {
            if self.rules.blacklist_after_rotation {
                // The rotation is committed: the client must get its new pair even if this fails
                // (the ledger already refuses the parent on refresh).
                let revoked = RevokedJti {
                    jti: parent.jti,
                    user_id: Some(user_id),
                    expires_at: self.revoked_until(expires_at(&claims)),
                };
                if let Err(e) = self.revocations.revoke(&[revoked]).await {
                    tracing::error!(error = %e, "could not blacklist a rotated refresh token");
                }
            }
            tracing::info!(target: "tessera::audit", user_id = %user_id, "refresh token rotated");
            self.note_use(parent.family, client, Some(child.expires_at))
                .await;
            return Ok(Refreshed {
                access: pair.access,
                refresh: Some(pair.refresh),
            });
        }
        // Already rotated (or a concurrent refresh won the race): the grace, or reuse.
        let in_grace = !self.rules.reuse_grace.is_zero()
            && !self
                .revocations
                .is_revoked(None, Some(user_id), claims.iat.unwrap_or(i64::MIN))
                .await?
            && self
                .ledger
                .rotate_in_grace(&parent.jti, &child, now - self.rules.reuse_grace)
                .await?;
        if in_grace {
            tracing::info!(target: "tessera::audit", user_id = %user_id, "refresh token rotated");
            self.note_use(parent.family, client, Some(child.expires_at))
                .await;
            return Ok(Refreshed {
                access: pair.access,
                refresh: Some(pair.refresh),
            });
        }
        tracing::warn!(target: "tessera::audit", user_id = %user_id, family = %parent.family, "refresh token reuse detected: family revoked");
        metrics::counter!("tessera_refresh_reuse_detected_total").increment(1);
        self.revoke_family(parent.family).await?;
        Err(TokenError::Blacklisted.into())
    }

    /// A valid refresh token this ledger never issued (e.g. minted by the Django service being
    /// replaced, with the shared key) starts a family of its own.
    pub(super) async fn adopt(
        &self,
        token: &str,
        claims: &Claims,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<OutstandingToken, DomainError> {
        let row = OutstandingToken {
            jti: claims.jti.clone(),
            user_id: user,
            family: new_family(),
            parent_jti: None,
            access_jti: String::new(),
            access_expires_at: now,
            token_sha256: sha256_hex(token),
            created_at: now,
            expires_at: expires_at(claims),
            rotated_at: None,
            grace_used: false,
        };
        match self.ledger.record(&row).await {
            Ok(()) => Ok(row),
            // Adopted concurrently by another request: use the stored row.
            Err(crate::domain::StoreError::Conflict(_)) => self
                .ledger
                .find(&claims.jti)
                .await?
                .ok_or(DomainError::Internal("ledger row vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Notes a refresh as the session's last use. The refresh is committed: the client gets
    /// its tokens even if this fails.
    async fn note_use(&self, family: Uuid, client: &Client<'_>, expires_at: Option<DateTime<Utc>>) {
        if let Err(e) = self.sessions.used(family, client, expires_at).await {
            tracing::warn!(error = %e, "could not note a session's use");
        }
    }

    /// Revokes every refresh and access token of `family` (reuse detection, a session ended).
    pub async fn revoke_family(&self, family: Uuid) -> Result<(), DomainError> {
        let rows = self.ledger.close_family(family, Utc::now()).await?;
        let revoked: Vec<RevokedJti> = rows
            .into_iter()
            .flat_map(|row| {
                let refresh = RevokedJti {
                    jti: row.jti,
                    user_id: Some(row.user_id),
                    expires_at: self.revoked_until(row.expires_at),
                };
                let access = (!row.access_jti.is_empty()).then_some(RevokedJti {
                    jti: row.access_jti,
                    user_id: Some(row.user_id),
                    expires_at: self.revoked_until(row.access_expires_at),
                });
                std::iter::once(refresh).chain(access)
            })
            .collect();
        self.revocations.revoke(&revoked).await?;
        metrics::counter!("tessera_tokens_revoked_total").increment(revoked.len() as u64);
        Ok(())
    }
}
