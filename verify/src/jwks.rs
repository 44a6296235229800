//! Verifying keys fetched from a JWKS URL (Tessera's `/.well-known/jwks.json`), cached, and
//! fetched again when they grow old or a token names a `kid` the cache does not know (rotation).
use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, AlgorithmFamily, jwk::JwkSet};

use crate::{KeySet, VerifyError};

/// How keys are fetched and kept.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// Longest wait for the JWKS endpoint.
    pub timeout: Duration,
    /// Keys older than this are fetched again (the old copy is kept if that fails).
    pub max_age: Duration,
    /// No two fetches closer than this: tokens with made-up `kid`s cannot make the verifier
    /// hammer the JWKS endpoint.
    pub min_refresh_interval: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(10),
        }
    }
}

struct Cached {
    keys: Arc<KeySet>,
    fetched_at: Instant,
}

/// A JWKS source. Cheap to share behind an `Arc`; one fetch at a time.
pub struct Jwks {
    url: String,
    algorithm: Algorithm,
    options: JwksOptions,
    client: reqwest::Client,
    cached: RwLock<Option<Cached>>,
    /// When the last fetch was attempted; held while fetching so concurrent misses wait for it.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Keys fetched from `url` (Tessera's `/.well-known/jwks.json`) when first needed.
    pub fn new(
        url: impl Into<String>,
        algorithm: Algorithm,
        options: JwksOptions,
    ) -> Result<Self, VerifyError> {
        if algorithm.family() == AlgorithmFamily::Hmac {
            return Err(VerifyError::Config(
                "a JWKS holds public keys: pin an asymmetric algorithm".into(),
            ));
        }
        // reqwest uses the process's rustls provider; install ring's when the application has
        // none (an application that installed its own keeps it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| VerifyError::Config(e.to_string()))?;
        Ok(Self {
            url: url.into(),
            algorithm,
            options,
            client,
            cached: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        })
    }

    /// Keys that should know `kid`: the cached ones while they are fresh and know it, else
    /// fetched anew (at most once per `min_refresh_interval`). A failed fetch keeps the last
    /// good keys; with none, the answer is `KeysUnavailable`.
    pub async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, VerifyError> {
        if let Some(keys) = self.usable(kid) {
            return Ok(keys);
        }
        let mut last = self.last_attempt.lock().await;
        // Another task may have fetched while this one waited.
        if let Some(keys) = self.usable(kid) {
            return Ok(keys);
        }
        let recent = last.is_some_and(|t| t.elapsed() < self.options.min_refresh_interval);
        if recent {
            return self
                .cached_keys()
                .ok_or_else(|| VerifyError::KeysUnavailable("the last JWKS fetch failed".into()));
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if let Ok(mut cached) = self.cached.write() {
                    *cached = Some(Cached {
                        keys: keys.clone(),
                        fetched_at: Instant::now(),
                    });
                }
                Ok(keys)
            }
            Err(e) => self.cached_keys().ok_or(e),
        }
    }

    fn usable(&self, kid: &str) -> Option<Arc<KeySet>> {
        let cached = self.cached.read().ok()?;
        let cached = cached.as_ref()?;
        let fresh = cached.fetched_at.elapsed() < self.options.max_age;
        (fresh && cached.keys.candidates(Some(kid)).next().is_some()).then(|| cached.keys.clone())
    }

    fn cached_keys(&self) -> Option<Arc<KeySet>> {
        Some(self.cached.read().ok()?.as_ref()?.keys.clone())
    }

    async fn fetch(&self) -> Result<KeySet, VerifyError> {
        let unavailable = |e: reqwest::Error| VerifyError::KeysUnavailable(e.to_string());
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(KeySet::from_jwks(&set, self.algorithm))
    }
}
