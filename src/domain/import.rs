//! Importing a Django project (auth users, groups, DRF keys, SimpleJWT's outstanding and
//! blacklisted tokens) so its users keep their ids, passwords, keys and sessions. Django is the
//! source of truth during a cutover: a second run brings changed rows over and reports the rest
//! unchanged, so an interrupted import is resumed by running it again.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::{
    DomainError, StoreError,
    opaque::OpaqueToken,
    revocation::{OutstandingToken, RevocationStore, RevokedJti},
    users::User,
    validation::username_key,
};
use crate::crypto::{new_family, sha256_hex};

/// Users written per transaction.
pub const BATCH: usize = 500;

/// The nonce that marks a key imported from DRF's authtoken table: Tessera cannot derive it,
/// so a login keeps it beside the key it derives instead of replacing it.
pub const IMPORTED_KEY_NONCE: &str = "django-authtoken";

/// One row of Django's `auth_user`, with its group names.
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// As Django stores it (`pbkdf2_sha256$...`, `!...` for unusable).
    pub password: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub groups: BTreeSet<String>,
}

/// A DRF `Token` key.
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoKey {
    pub key: String,
    pub user: i64,
    pub created: DateTime<Utc>,
}

/// A SimpleJWT outstanding refresh token.
#[derive(Debug, Clone, PartialEq)]
pub struct DjangoRefresh {
    pub jti: String,
    pub user: Option<i64>,
    pub token: String,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub blacklisted: bool,
}

/// Everything read from the Django project.
#[derive(Debug, Default, Clone)]
pub struct DjangoExport {
    pub users: Vec<DjangoUser>,
    pub groups: BTreeSet<String>,
    pub keys: Vec<DjangoKey>,
    pub refresh_tokens: Vec<DjangoRefresh>,
    /// Parts the project does not have (authtoken or token_blacklist not installed).
    pub missing: Vec<String>,
}

/// What to do with a username that equals another one but for case (Django allows `Bob` and
/// `bob`; Tessera's usernames are unique case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collision {
    /// Leave the later user out, and say so.
    #[default]
    Skip,
    /// Import it as `name-<django id>`.
    Suffix,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub collision: Collision,
}

/// A Tessera user that came from Django, with the Django hash last brought over.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub user: User,
    /// The Django hash the last import wrote (None before any). A login replaces the stored
    /// hash with argon2id; as long as Django still has this one, the upgrade stays.
    pub password_seen: Option<String>,
}

/// One transaction's writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub new_users: Vec<User>,
    /// Imported columns rewritten (credential version and number kept).
    pub changed_users: Vec<User>,
    /// Users whose sessions end (deactivated in Django).
    pub ended: Vec<Uuid>,
    pub passwords_seen: Vec<(Uuid, String)>,
    pub new_groups: Vec<String>,
    /// Exact group sets.
    pub memberships: Vec<(Uuid, BTreeSet<String>)>,
    pub keys: Vec<OpaqueToken>,
    pub outstanding: Vec<OutstandingToken>,
    /// Ledger rows to close (blacklisted in Django).
    pub closed: Vec<String>,
}

/// What the import needs from storage.
#[async_trait::async_trait]
pub trait ImportStore: Send + Sync {
    async fn users_by_number(
        &self,
        numbers: &[i64],
    ) -> Result<HashMap<i64, ImportedUser>, StoreError>;
    /// The number of the user whose username is `key` case-insensitively.
    async fn username_owner(&self, key: &str) -> Result<Option<i64>, StoreError>;
    async fn group_names(&self) -> Result<HashSet<String>, StoreError>;
    async fn memberships(
        &self,
        users: &[Uuid],
    ) -> Result<HashMap<Uuid, BTreeSet<String>>, StoreError>;
    /// Which of these key hashes are stored.
    async fn known_keys(&self, hashes: &[String]) -> Result<HashSet<String>, StoreError>;
    /// Which of these JTIs the ledger holds, and whether each is closed.
    async fn known_jtis(&self, jtis: &[String]) -> Result<HashMap<String, bool>, StoreError>;
    /// Writes the batch in one transaction.
    async fn apply(&self, batch: &Batch) -> Result<(), StoreError>;
}

/// Counts of one kind of row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "created {}, updated {}, unchanged {}, skipped {}",
            self.created, self.updated, self.unchanged, self.skipped
        )
    }
}

#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub users: Tally,
    pub groups: Tally,
    pub keys: Tally,
    pub refresh_tokens: Tally,
    /// What was left out, and why.
    pub skipped: Vec<String>,
    pub missing: Vec<String>,
}

impl ImportReport {
    /// True when a run would write nothing.
    pub fn unchanged(&self) -> bool {
        [self.users, self.groups, self.keys, self.refresh_tokens]
            .iter()
            .all(|t| t.created == 0 && t.updated == 0)
    }
}

pub struct Importer {
    store: Arc<dyn ImportStore>,
    revocations: Arc<dyn RevocationStore>,
    /// Kept past a revoked token's expiry (leeway and margin), as the token service does.
    revoked_margin: chrono::TimeDelta,
}

/// The users of one batch as planned: Django id → Tessera id and credential version.
type Placed = HashMap<i64, (Uuid, i64)>;

impl Importer {
    pub fn new(
        store: Arc<dyn ImportStore>,
        revocations: Arc<dyn RevocationStore>,
        revoked_margin: chrono::TimeDelta,
    ) -> Self {
        Self {
            store,
            revocations,
            revoked_margin,
        }
    }

    /// Imports `export`; `progress(done, total)` after each batch of users.
    pub async fn run(
        &self,
        mut export: DjangoExport,
        options: ImportOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ImportReport, DomainError> {
        let mut report = ImportReport {
            missing: std::mem::take(&mut export.missing),
            ..ImportReport::default()
        };
        export.users.sort_by_key(|u| u.id);
        // Milliseconds, as `dumpdata` writes them: a database and a dump of the same project
        // compare equal, so switching sources changes nothing.
        for u in &mut export.users {
            u.date_joined = u.date_joined.trunc_subsecs(3);
            u.last_login = u.last_login.map(|t| t.trunc_subsecs(3));
        }
        let total = export.users.len() as u64;
        // Username keys claimed so far in this run (earlier Django users win a collision).
        let mut claimed: HashMap<String, i64> = HashMap::new();
        let mut placed: Placed = HashMap::new();
        let mut groups_known = self.store.group_names().await?;
        let missing_groups: Vec<String> = export
            .groups
            .iter()
            .chain(export.users.iter().flat_map(|u| u.groups.iter()))
            .filter(|g| !groups_known.contains(*g))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let referenced: BTreeSet<&String> = export
            .groups
            .iter()
            .chain(export.users.iter().flat_map(|u| u.groups.iter()))
            .collect();
        report.groups.created = missing_groups.len() as u64;
        report.groups.unchanged = referenced.len() as u64 - report.groups.created;
        let mut first = Batch {
            new_groups: missing_groups.clone(),
            ..Batch::default()
        };
        groups_known.extend(missing_groups);
        let mut done = 0;
        for chunk in export.users.chunks(BATCH) {
            let mut batch = std::mem::take(&mut first);
            self.plan_users(
                chunk,
                options,
                &mut claimed,
                &mut placed,
                &mut batch,
                &mut report,
            )
            .await?;
            if !options.dry_run {
                self.store.apply(&batch).await?;
            }
            done += chunk.len() as u64;
            progress(done, total);
        }
        if !first.new_groups.is_empty() && !options.dry_run {
            self.store.apply(&first).await?;
        }
        let mut batch = Batch::default();
        self.plan_keys(&export.keys, &placed, &mut batch, &mut report)
            .await?;
        let revoked = self
            .plan_refresh(&export.refresh_tokens, &placed, &mut batch, &mut report)
            .await?;
        if !options.dry_run {
            self.store.apply(&batch).await?;
            // After the ledger rows are in: Redis and SQL refuse them everywhere.
            if !revoked.is_empty() {
                self.revocations.revoke(&revoked).await?;
            }
        }
        Ok(report)
    }

    async fn plan_users(
        &self,
        chunk: &[DjangoUser],
        options: ImportOptions,
        claimed: &mut HashMap<String, i64>,
        placed: &mut Placed,
        batch: &mut Batch,
        report: &mut ImportReport,
    ) -> Result<(), DomainError> {
        let numbers: Vec<i64> = chunk.iter().map(|u| u.id).collect();
        let existing = self.store.users_by_number(&numbers).await?;
        let ids: Vec<Uuid> = existing.values().map(|e| e.user.id).collect();
        let mut groups_of = self.store.memberships(&ids).await?;
        for du in chunk {
            if du.id <= 0 {
                report.users.skipped += 1;
                report.skipped.push(format!(
                    "user {} {:?}: not a positive id",
                    du.id, du.username
                ));
                continue;
            }
            let Some(username) = self
                .username_for(du, options.collision, claimed, report)
                .await?
            else {
                continue;
            };
            let imported = |id: Uuid, credential_version: i64| User {
                id,
                username: username.clone(),
                email: du.email.clone(),
                password_hash: du.password.clone(),
                first_name: du.first_name.clone(),
                last_name: du.last_name.clone(),
                is_active: du.is_active,
                is_staff: du.is_staff,
                is_superuser: du.is_superuser,
                date_joined: du.date_joined,
                last_login: du.last_login,
                credential_version,
                number: du.id,
            };
            let user = match existing.get(&du.id) {
                None => {
                    let user = imported(Uuid::now_v7(), 0);
                    batch.new_users.push(user.clone());
                    batch.passwords_seen.push((user.id, du.password.clone()));
                    if !du.groups.is_empty() {
                        batch.memberships.push((user.id, du.groups.clone()));
                    }
                    report.users.created += 1;
                    user
                }
                Some(current) => {
                    let mut wanted = imported(current.user.id, current.user.credential_version);
                    // A hash Tessera upgraded at a login stays while Django still has the one
                    // it was upgraded from.
                    if current.password_seen.as_deref() == Some(du.password.as_str()) {
                        wanted.password_hash = current.user.password_hash.clone();
                    } else {
                        batch.passwords_seen.push((wanted.id, du.password.clone()));
                    }
                    let groups_now = groups_of.remove(&wanted.id).unwrap_or_default();
                    if groups_now != du.groups {
                        batch.memberships.push((wanted.id, du.groups.clone()));
                    }
                    if wanted == current.user && groups_now == du.groups {
                        report.users.unchanged += 1;
                    } else {
                        if current.user.is_active && !wanted.is_active {
                            batch.ended.push(wanted.id);
                        }
                        if wanted != current.user {
                            batch.changed_users.push(wanted.clone());
                        }
                        report.users.updated += 1;
                    }
                    wanted
                }
            };
            placed.insert(du.id, (user.id, user.credential_version));
        }
        Ok(())
    }

    /// The username `du` gets: its own, unless another user holds it case-insensitively.
    async fn username_for(
        &self,
        du: &DjangoUser,
        collision: Collision,
        claimed: &mut HashMap<String, i64>,
        report: &mut ImportReport,
    ) -> Result<Option<String>, DomainError> {
        let key = username_key(&du.username);
        let holder = match claimed.get(&key) {
            Some(n) => Some(*n),
            None => self.store.username_owner(&key).await?,
        };
        match holder {
            None => {
                claimed.insert(key, du.id);
                Ok(Some(du.username.clone()))
            }
            Some(n) if n == du.id => {
                claimed.insert(key, du.id);
                Ok(Some(du.username.clone()))
            }
            Some(n) => match collision {
                Collision::Skip => {
                    report.users.skipped += 1;
                    report.skipped.push(format!(
                        "user {} {:?}: the username is taken (ignoring case) by user {n}; \
                         --on-collision suffix imports it as {:?}",
                        du.id,
                        du.username,
                        format!("{}-{}", du.username, du.id)
                    ));
                    Ok(None)
                }
                Collision::Suffix => {
                    let suffixed = format!("{}-{}", du.username, du.id);
                    let suffixed_key = username_key(&suffixed);
                    let owner = match claimed.get(&suffixed_key) {
                        Some(n) => Some(*n),
                        None => self.store.username_owner(&suffixed_key).await?,
                    };
                    if owner.is_some_and(|o| o != du.id) {
                        report.users.skipped += 1;
                        report.skipped.push(format!(
                            "user {} {:?}: both {:?} and {suffixed:?} are taken",
                            du.id, du.username, du.username
                        ));
                        return Ok(None);
                    }
                    claimed.insert(suffixed_key, du.id);
                    Ok(Some(suffixed))
                }
            },
        }
    }

    async fn plan_keys(
        &self,
        keys: &[DjangoKey],
        placed: &Placed,
        batch: &mut Batch,
        report: &mut ImportReport,
    ) -> Result<(), DomainError> {
        let hashes: Vec<String> = keys.iter().map(|k| sha256_hex(&k.key)).collect();
        let known = self.store.known_keys(&hashes).await?;
        for (key, hash) in keys.iter().zip(hashes) {
            let Some((user, credential_version)) = placed.get(&key.user) else {
                report.keys.skipped += 1;
                report.skipped.push(format!(
                    "key of user {}: the user was not imported",
                    key.user
                ));
                continue;
            };
            if known.contains(&hash) {
                report.keys.unchanged += 1;
                continue;
            }
            batch.keys.push(OpaqueToken {
                key_sha256: hash,
                user_id: *user,
                nonce: IMPORTED_KEY_NONCE.into(),
                name: "imported from Django".into(),
                created_at: key.created,
                last_used_at: None,
                expires_at: None,
                credential_version: *credential_version,
            });
            report.keys.created += 1;
        }
        Ok(())
    }

    async fn plan_refresh(
        &self,
        tokens: &[DjangoRefresh],
        placed: &Placed,
        batch: &mut Batch,
        report: &mut ImportReport,
    ) -> Result<Vec<RevokedJti>, DomainError> {
        let now = Utc::now();
        let jtis: Vec<String> = tokens.iter().map(|t| t.jti.clone()).collect();
        let known = self.store.known_jtis(&jtis).await?;
        let mut revoked = Vec::new();
        for t in tokens {
            let Some((user, _)) = t.user.and_then(|u| placed.get(&u)) else {
                report.refresh_tokens.skipped += 1;
                report.skipped.push(format!(
                    "refresh token {}: its user was not imported",
                    t.jti
                ));
                continue;
            };
            if t.expires_at <= now {
                report.refresh_tokens.skipped += 1;
                continue;
            }
            if t.jti.is_empty() || t.jti.len() > 255 {
                report.refresh_tokens.skipped += 1;
                report.skipped.push(format!(
                    "refresh token of user {}: unusable jti",
                    t.user.unwrap_or(0)
                ));
                continue;
            }
            let revocation = RevokedJti {
                jti: t.jti.clone(),
                user_id: Some(*user),
                expires_at: t.expires_at + self.revoked_margin,
            };
            match known.get(&t.jti) {
                // Already here, and closed if Django blacklisted it: nothing to do.
                Some(closed) if *closed || !t.blacklisted => {
                    report.refresh_tokens.unchanged += 1;
                    continue;
                }
                // Blacklisted in Django since the last run.
                Some(_) => {
                    batch.closed.push(t.jti.clone());
                    revoked.push(revocation);
                    report.refresh_tokens.updated += 1;
                    continue;
                }
                None => {}
            }
            batch.outstanding.push(OutstandingToken {
                jti: t.jti.clone(),
                user_id: *user,
                family: new_family(),
                parent_jti: None,
                access_jti: String::new(),
                access_expires_at: now,
                token_sha256: sha256_hex(&t.token),
                created_at: t.created_at.unwrap_or(now),
                expires_at: t.expires_at,
                rotated_at: None,
                grace_used: false,
            });
            if t.blacklisted {
                batch.closed.push(t.jti.clone());
                revoked.push(revocation);
            }
            report.refresh_tokens.created += 1;
        }
        Ok(revoked)
    }
}
