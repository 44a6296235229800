//! Password hashing (argon2id on a bounded blocking pool) and Django's four default validators.
use std::{collections::HashSet, sync::Arc};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _},
};
use tokio::sync::Semaphore;

use super::DomainError;

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
    pub min_length: usize,
    pub max_similarity: f64,
}

/// Passwords of this many bytes or more are refused before hashing (no hashing DoS).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Runs CPU-heavy jobs off the async executor: at most `workers` at once, at most `queue` more
/// waiting; beyond that a job is refused at once, so memory stays bounded under a login flood.
#[derive(Clone)]
pub struct BlockingPool {
    admitted: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    capacity: usize,
}

impl BlockingPool {
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            capacity: workers + queue,
        }
    }

    /// Jobs running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }

    /// Runs `job` on a blocking thread, or answers `Busy` when the pool and its queue are full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("tessera_password_hashing_rejected_total").increment(1);
            DomainError::Busy
        })?;
        let queued = std::time::Instant::now();
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DomainError::Busy)?;
        metrics::gauge!("tessera_password_hashing_in_flight").set(self.in_flight() as f64);
        metrics::histogram!("tessera_password_hashing_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        let span = tracing::Span::current();
        // The permits move into the job: a request that gives up still holds its place until the
        // job really ends, so the bound counts CPU work, not waiting futures.
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let out = job();
            drop((worker, admitted));
            out
        })
        .await
        .map_err(|e| DomainError::Internal(format!("hashing job failed: {e}")))
    }
}

/// argon2id hashing and verification, always through the [`BlockingPool`].
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    pool: BlockingPool,
    /// Verified against when a user does not exist, so both cases cost the same time.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// The hasher and its pool as `[passwords]` describes them.
    pub fn new(settings: &PasswordSettings) -> Result<Self, DomainError> {
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = BlockingPool::new(workers, settings.queue);
        let p = settings;
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| DomainError::Internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(b"tessera dummy password")
            .map_err(|e| DomainError::Internal(format!("argon2: {e}")))?
            .to_string()
            .into();
        Ok(Self {
            argon: Arc::new(argon),
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

    /// Checks `password` against `stored`; with `None` (unknown user) checks a dummy hash and
    /// answers false, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, DomainError> {
        let argon = self.argon.clone();
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .pool
            .run(move || {
                argon
                    .verify_password(password.as_bytes(), phc.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }
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
        let pool = BlockingPool::new(1, 1);
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
