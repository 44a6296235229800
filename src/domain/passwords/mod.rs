//! Password hashing (argon2id on a bounded blocking pool), the hashes Django stores (checked,
//! then replaced at login), and Django's four default validators.
use std::{collections::HashSet, sync::Arc};

use super::DomainError;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};

mod django;
mod pool;

use django::DjangoHash;
pub use django::UnreadableHash;
pub use pool::BlockingPool;

/// The `[passwords]` section: argon2id's cost, the hashing pool and the validators' knobs.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashing threads; 0 means one per CPU core.
    pub workers: usize,
    /// Jobs that may wait for a thread.
    pub queue: usize,
    /// The hashing threads' nice value (0 to 19): requests that need no hashing go first.
    pub nice: i32,
    pub min_length: usize,
    pub max_similarity: f64,
}

/// Passwords of this many bytes or more are refused before hashing (no hashing DoS).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right password, stored as Tessera stores new ones (argon2id, the configured costs).
    Current,
    /// The right password, stored in another form (Django's, or argon2 with other costs): the
    /// caller may store a new hash of it.
    Outdated,
    /// A wrong password, or no stored hash (unknown user).
    Wrong,
    /// The stored hash can never match (unusable, unknown, garbled or too costly); a dummy hash
    /// was checked instead, so this takes the time of a real check.
    Unreadable(UnreadableHash),
}

impl Verdict {
    /// Whether the password is the user's.
    pub fn matches(self) -> bool {
        matches!(self, Verdict::Current | Verdict::Outdated)
    }
}

/// argon2 costs accepted in a stored hash at most (or the configured ones, when higher): a
/// garbled or hostile row must not take gigabytes or minutes. Django's default is m=102400
/// (100 MiB), t=2, p=8.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_PASSES: u32 = 16;
const MAX_ARGON2_LANES: u32 = 64;

/// The argon2 parameters new hashes get, and the most a stored hash may ask for.
struct Argon2Costs {
    target: Params,
    max_memory_kib: u32,
    max_passes: u32,
    max_lanes: u32,
}

impl Argon2Costs {
    fn new(target: Params) -> Self {
        Self {
            max_memory_kib: MAX_ARGON2_MEMORY_KIB.max(target.m_cost()),
            max_passes: MAX_ARGON2_PASSES.max(target.t_cost()),
            max_lanes: MAX_ARGON2_LANES.max(target.p_cost()),
            target,
        }
    }

    /// Reads a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) within the limits; the
    /// second value says whether it is Tessera's current form.
    fn read(&self, phc: &str) -> Result<(PasswordHash, bool), UnreadableHash> {
        let malformed = UnreadableHash::Malformed("argon2");
        let mut hash = PasswordHash::new(phc).map_err(|_| malformed)?;
        let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|_| malformed)?;
        let params = Params::try_from(&hash).map_err(|_| malformed)?;
        if params.m_cost() > self.max_memory_kib
            || params.t_cost() > self.max_passes
            || params.p_cost() > self.max_lanes
        {
            return Err(UnreadableHash::TooCostly("argon2"));
        }
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err(malformed);
        }
        // A PHC string without `v=` is argon2 1.0 (0x10; old argon2-cffi, Django 1.10's form);
        // the verifier would otherwise take the default, 1.3.
        let version = match hash.version {
            None => Version::V0x10,
            Some(v) => Version::try_from(v).map_err(|_| malformed)?,
        };
        hash.version = Some(version.into());
        let output_len = |p: &Params| p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let current = algorithm == Algorithm::Argon2id
            && version == Version::V0x13
            && params.m_cost() == self.target.m_cost()
            && params.t_cost() == self.target.t_cost()
            && params.p_cost() == self.target.p_cost()
            && output_len(&params) == output_len(&self.target);
        Ok((hash, current))
    }
}

/// argon2id hashing and verification, always through the [`BlockingPool`].
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    costs: Arc<Argon2Costs>,
    pool: BlockingPool,
    /// Verified against when a user does not exist (or its hash cannot match), so every case
    /// costs the time of a real check.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// The hasher and its pool as `[passwords]` describes them.
    pub fn new(settings: &PasswordSettings) -> Result<Self, DomainError> {
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = BlockingPool::new(workers, settings.queue, settings.nice)?;
        let p = settings;
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| DomainError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy_hash = argon
            .hash_password(b"tessera dummy password")
            .map_err(|e| DomainError::Internal(format!("argon2: {e}")))?
            .to_string()
            .into();
        Ok(Self {
            argon: Arc::new(argon),
            costs: Arc::new(Argon2Costs::new(params)),
            pool,
            dummy_hash,
        })
    }

    pub fn pool(&self) -> &BlockingPool {
        &self.pool
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, DomainError> {
        let argon = self.argon.clone();
        self.pool
            .run(move || {
                argon
                    .hash_password(password.as_bytes())
                    .map(|h| h.to_string())
            })
            .await?
            .map_err(|e| DomainError::Internal(format!("argon2: {e}")))
    }

    /// Checks `password` against `stored`: Tessera's argon2 PHC strings or one of Django's
    /// forms (see `django.rs`). With `None` (unknown user) or a hash that can never match, a
    /// dummy hash is checked instead, taking the same time.
    pub async fn check(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verdict, DomainError> {
        let argon = self.argon.clone();
        let costs = self.costs.clone();
        let dummy = self.dummy_hash.clone();
        self.pool
            .run(move || {
                let checked = stored
                    .as_deref()
                    .map(|stored| check_stored(&argon, &costs, &password, stored));
                if let Some(Ok(verdict)) = checked {
                    return verdict;
                }
                let _ = argon.verify_password(password.as_bytes(), &*dummy);
                match checked {
                    Some(Err(why)) => Verdict::Unreadable(why),
                    _ => Verdict::Wrong,
                }
            })
            .await
    }

    /// Whether `password` matches `stored` (see [`PasswordHasher::check`]).
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, DomainError> {
        Ok(self.check(password, stored).await?.matches())
    }
}

/// The work of [`PasswordHasher::check`] for a stored hash, on a pool thread; `Err` when no
/// password can match it (the caller then checks the dummy hash).
fn check_stored(
    argon: &Argon2<'_>,
    costs: &Argon2Costs,
    password: &str,
    stored: &str,
) -> Result<Verdict, UnreadableHash> {
    let (phc, django) = if stored.starts_with('$') {
        (stored, false)
    } else {
        match DjangoHash::parse(stored)? {
            DjangoHash::Argon2 { phc } => (phc, true),
            other => {
                return Ok(if other.matches(password) {
                    Verdict::Outdated
                } else {
                    Verdict::Wrong
                });
            }
        }
    };
    let (hash, current) = costs.read(phc)?;
    Ok(match argon.verify_password(password.as_bytes(), &hash) {
        Err(_) => Verdict::Wrong,
        Ok(()) if current && !django => Verdict::Current,
        Ok(()) => Verdict::Outdated,
    })
}

/// Django's default validators, in the order their messages are listed.
pub struct PasswordRules {
    min_length: usize,
    max_similarity: f64,
    common: HashSet<&'static str>,
}

/// A user fact the similarity rule compares against: Django's verbose name and the value.
pub struct UserAttribute<'a> {
    pub verbose_name: &'static str,
    pub value: &'a str,
}

impl PasswordRules {
    pub fn new(settings: &PasswordSettings) -> Self {
        let common = include_str!("common-passwords.txt")
            .lines()
            .map(str::trim)
            .collect();
        Self {
            min_length: settings.min_length,
            max_similarity: settings.max_similarity,
            common,
        }
    }

    /// Every failing message, in Django's order; empty when the password is acceptable.
    pub fn check(&self, password: &str, attributes: &[UserAttribute<'_>]) -> Vec<String> {
        let mut errors = Vec::new();
        if password.len() >= MAX_PASSWORD_BYTES {
            errors.push(format!(
                "This password is too long. It must contain fewer than {MAX_PASSWORD_BYTES} bytes."
            ));
            return errors;
        }
        if let Some(name) = self.too_similar(password, attributes) {
            errors.push(format!("The password is too similar to the {name}."));
        }
        let chars = password.chars().count();
        if chars < self.min_length {
            let unit = if self.min_length == 1 {
                "character"
            } else {
                "characters"
            };
            errors.push(format!(
                "This password is too short. It must contain at least {} {unit}.",
                self.min_length
            ));
        }
        if self
            .common
            .contains(password.trim().to_lowercase().as_str())
        {
            errors.push("This password is too common.".to_owned());
        }
        if !password.is_empty() && password.chars().all(char::is_numeric) {
            errors.push("This password is entirely numeric.".to_owned());
        }
        errors
    }

    fn too_similar(
        &self,
        password: &str,
        attributes: &[UserAttribute<'_>],
    ) -> Option<&'static str> {
        let password = password.to_lowercase();
        attributes.iter().find_map(|attr| {
            let value = attr.value.to_lowercase();
            if value.is_empty() {
                return None;
            }
            let mut parts: Vec<&str> = value
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            parts.push(&value);
            parts
                .into_iter()
                .filter(|part| !self.length_rules_out(&password, part))
                .any(|part| quick_ratio(&password, part) >= self.max_similarity)
                .then_some(attr.verbose_name)
        })
    }

    /// A short attribute cannot make a much longer password "similar" (Django's length bound).
    fn length_rules_out(&self, password: &str, part: &str) -> bool {
        let pwd_len = password.chars().count() as f64;
        let part_len = part.chars().count() as f64;
        pwd_len >= 10.0 * part_len && part_len < self.max_similarity / 2.0 * pwd_len
    }
}

/// difflib's upper bound on similarity: shared characters (as multisets) over total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let mut counts = std::collections::HashMap::<char, i64>::new();
    for c in b.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = counts.get_mut(&c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        1.0
    } else {
        2.0 * matches as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PasswordSettings {
        PasswordSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            workers: 1,
            queue: 4,
            nice: 0,
            min_length: 8,
            max_similarity: 0.7,
        }
    }

    fn rules() -> PasswordRules {
        PasswordRules::new(&settings())
    }

    fn attrs<'a>(username: &'a str, email: &'a str) -> Vec<UserAttribute<'a>> {
        vec![
            UserAttribute {
                verbose_name: "username",
                value: username,
            },
            UserAttribute {
                verbose_name: "email address",
                value: email,
            },
        ]
    }

    #[test]
    fn lists_every_failure_in_djangos_order() {
        assert_eq!(
            rules().check("123", &[]),
            vec![
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric.",
            ]
        );
    }

    #[test]
    fn accepts_a_good_password() {
        assert!(
            rules()
                .check("correct horse battery", &attrs("alice", "a@example.com"))
                .is_empty()
        );
    }

    #[test]
    fn similarity_to_username_and_email() {
        assert_eq!(
            rules().check("alicealice1", &attrs("alicealice", "")),
            vec!["The password is too similar to the username."]
        );
        assert_eq!(
            rules().check("zebrafish77", &attrs("bob", "zebrafish77@example.com")),
            vec!["The password is too similar to the email address."]
        );
        // A short attribute does not make a long password similar.
        assert!(
            rules()
                .check("xa-very-long-unrelated-pass", &attrs("x", ""))
                .is_empty()
        );
        // Similarity comes first, as in Django's default validator order.
        assert_eq!(
            rules().check("bob12345", &attrs("bob12345x", "")),
            vec![
                "The password is too similar to the username.",
                "This password is too common."
            ]
        );
    }

    #[test]
    fn refuses_huge_passwords_without_other_checks() {
        let errors = rules().check(&"a".repeat(MAX_PASSWORD_BYTES), &[]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("too long"));
        assert!(rules().check(&"ab1!".repeat(1023), &[]).is_empty());
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        assert_eq!(quick_ratio("abcd", "bcde"), 0.75);
        assert_eq!(quick_ratio("", ""), 1.0);
    }

    #[tokio::test]
    async fn pool_refuses_work_beyond_its_queue() {
        let pool = BlockingPool::new(1, 1, 0).expect("pool");
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let spawn_blocked = |pool: BlockingPool| {
            let wait = wait.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = wait.lock().map(|rx| rx.recv());
                })
                .await
            })
        };
        let running = spawn_blocked(pool.clone());
        let queued = spawn_blocked(pool.clone());
        while pool.in_flight() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(|| ()).await, Err(DomainError::Busy)));
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert!(running.await.unwrap().is_ok());
        assert!(queued.await.unwrap().is_ok());
        assert!(
            pool.run(|| 7).await.is_ok_and(|v| v == 7),
            "capacity comes back"
        );
    }

    /// Made once with Django 5.2.19 and argon2-cffi 25.1 (see django.rs): `make_password` with
    /// Argon2PasswordHasher, a subclass with `time_cost = 1, memory_cost = 1024,
    /// parallelism = 2`, and `argon2.low_level.hash_secret(..., type=Type.I)` (with
    /// `version=0x10`, then without its `v=16$`: Django 1.10's form) behind Django's prefix.
    const DJANGO_ARGON2: [&str; 5] = [
        "argon2$argon2id$v=19$m=102400,t=2,p=8$NG5Udm02V0tpQUMyWGNrNUVUQzhuUQ$9l0v/bCnLfW5tEWJ0XphWcYcJonYacqw6td+L+f7zg0",
        "argon2$argon2id$v=19$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
        "argon2$argon2i$v=19$m=512,t=2,p=2$czRsdHNhbHRzNGx0c2FsdA$cdgJqL/GlLRt6+xUC5VgGYOiq/XKAD/rlWg5N2ZMwLM",
        "argon2$argon2i$v=16$m=512,t=2,p=2$czRsdHNhbHRzNGx0c2FsdA$Gw4ikdpH7zMN9ohVqZEobGRnOZiibwDzvbUQIqxeSh8",
        "argon2$argon2i$m=512,t=2,p=2$czRsdHNhbHRzNGx0c2FsdA$Gw4ikdpH7zMN9ohVqZEobGRnOZiibwDzvbUQIqxeSh8",
    ];
    const DJANGO_PASSWORD: &str = "correct horse battery";

    async fn check(hasher: &PasswordHasher, password: &str, stored: &str) -> Verdict {
        hasher
            .check(password.into(), Some(stored.into()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn djangos_argon2_forms_match_and_are_outdated() {
        let hasher = PasswordHasher::new(&settings()).unwrap();
        for stored in DJANGO_ARGON2 {
            assert_eq!(
                check(&hasher, DJANGO_PASSWORD, stored).await,
                Verdict::Outdated,
                "{stored}"
            );
            assert_eq!(
                check(&hasher, "correct horse", stored).await,
                Verdict::Wrong,
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn djangos_other_hashers_match_and_are_outdated() {
        let hasher = PasswordHasher::new(&settings()).unwrap();
        for stored in [
            "pbkdf2_sha256$1000$s4ltsalt$nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=",
            "bcrypt$$2b$04$hzYSTm9bwqXMhCeyKpE3o.reqm8jb.IS0URHY6tJlfLkkFlORkd9K",
            "scrypt$1024$s4ltsalt$8$1$6OIFNwMLlh7IxywPnQ+cJdADUAX7d4N9/lwiG4yt9V4RpEQT3NBJcWRvXwszbukID/Fr1XKwFdGJBwi2OYNmgA==",
        ] {
            assert_eq!(
                check(&hasher, DJANGO_PASSWORD, stored).await,
                Verdict::Outdated,
                "{stored}"
            );
            assert_eq!(
                check(&hasher, "x", stored).await,
                Verdict::Wrong,
                "{stored}"
            );
        }
    }

    #[tokio::test]
    async fn argon2_with_other_costs_is_outdated_and_tesseras_own_is_current() {
        let hasher = PasswordHasher::new(&settings()).unwrap();
        let own = hasher.hash("s3cret-pass".into()).await.unwrap();
        assert_eq!(check(&hasher, "s3cret-pass", &own).await, Verdict::Current);
        // The same hash under other configured costs: still the password, now outdated.
        let mut cheaper = settings();
        cheaper.memory_kib = 512;
        let other = PasswordHasher::new(&cheaper).unwrap();
        assert_eq!(check(&other, "s3cret-pass", &own).await, Verdict::Outdated);
        // Django's argon2 without its prefix is a plain PHC string: argon2i is outdated.
        let argon2i = &DJANGO_ARGON2[2]["argon2".len()..];
        assert_eq!(
            check(&hasher, DJANGO_PASSWORD, argon2i).await,
            Verdict::Outdated
        );
    }

    #[tokio::test]
    async fn unusable_unknown_and_hostile_hashes_never_match() {
        let hasher = PasswordHasher::new(&settings()).unwrap();
        let cases = [
            (
                "!SXgf6zlqXvlY4bzkKwPnohjpqRYPsWPNiq1svUfJ",
                UnreadableHash::Unusable,
            ),
            ("", UnreadableHash::UnknownAlgorithm),
            (DJANGO_PASSWORD, UnreadableHash::UnknownAlgorithm),
            (
                "pbkdf2_sha256$999999999999$x$y",
                UnreadableHash::TooCostly("pbkdf2"),
            ),
            (
                "$argon2id$v=19$m=4194304,t=1,p=1$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
                UnreadableHash::TooCostly("argon2"),
            ),
            (
                "argon2$argon2id$v=19$m=1024,t=100,p=1$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
                UnreadableHash::TooCostly("argon2"),
            ),
            (
                "argon2$argon2id$v=18$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
                UnreadableHash::Malformed("argon2"),
            ),
            (
                "argon2$argon2x$v=19$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc",
                UnreadableHash::Malformed("argon2"),
            ),
            (
                "argon2$argon2id$v=19$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA",
                UnreadableHash::Malformed("argon2"),
            ),
            ("$argon2id$", UnreadableHash::Malformed("argon2")),
            ("$", UnreadableHash::Malformed("argon2")),
        ];
        for (stored, why) in cases {
            assert_eq!(
                check(&hasher, DJANGO_PASSWORD, stored).await,
                Verdict::Unreadable(why),
                "{stored:?}"
            );
        }
        assert_eq!(
            hasher.check("x".into(), None).await.unwrap(),
            Verdict::Wrong
        );
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let hasher = PasswordHasher::new(&settings()).unwrap();
        let phc = hasher.hash("s3cret-pass".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(
            hasher
                .verify("s3cret-pass".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(
            !hasher
                .verify("tessera dummy password".into(), None)
                .await
                .unwrap()
        );
    }
}
