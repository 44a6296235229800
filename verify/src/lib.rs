//! Verify Tessera's JWTs offline, the way Tessera itself verifies them.
//!
//! A downstream service needs no call to Tessera per request: it checks the signature with the
//! shared HMAC key or with the public keys Tessera publishes at `/.well-known/jwks.json`, with the
//! algorithm pinned, and gets typed [`Claims`] (user id, and the groups, username, email and staff
//! flags Tessera puts in when `[jwt.claims]` asks it to).
//!
//! ```
//! use tessera_verify::{Policy, Verifier, jsonwebtoken::Algorithm};
//! let verifier = Verifier::hmac(Policy::new(Algorithm::HS256), b"the shared signing key, 32+ bytes");
//! # let _ = verifier;
//! ```
//! Features: `jwks` (default) fetches and caches keys from a URL; `poem` adds a middleware and
//! extractor; `tower` adds a layer for axum and other tower services. Revocation is not checked offline: keep
//! access tokens short-lived (Tessera's default is 5 minutes).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod claims;
mod decode;
mod encode;
#[cfg(any(feature = "poem", feature = "tower"))]
mod gate;
mod header;
#[cfg(feature = "jwks")]
mod jwks;
#[cfg(feature = "poem")]
pub mod poem;
mod rejection;
#[cfg(feature = "tower")]
pub mod tower;
mod verifier;

pub use claims::{Claims, TokenType};
pub use decode::{Key, KeySet, Policy, decode};
pub use encode::{CREDENTIAL_VERSION_CLAIM, Draft, encode};
#[cfg(any(feature = "poem", feature = "tower"))]
pub use gate::VerifyAccess;
pub use header::{BearerError, bearer_token};
pub use jsonwebtoken;
#[cfg(feature = "jwks")]
pub use jwks::{Jwks, JwksOptions};
pub use rejection::Rejection;
pub use verifier::Verifier;

/// Why a token is refused. The messages are SimpleJWT's, as Tessera answers them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, a bad signature, a refused header or algorithm, or a claim of the wrong type.
    #[error("Token is invalid")]
    Invalid,
    /// `exp` has passed (beyond the leeway).
    #[error("Token is expired")]
    Expired,
    /// No token type claim.
    #[error("Token has no type")]
    NoType,
    /// An access token where a refresh token was expected, or the reverse.
    #[error("Token has wrong type")]
    WrongType,
    /// No `jti`.
    #[error("Token has no id")]
    NoId,
    /// A required claim (`exp`, `iss`, `aud`) is missing.
    #[error("Token has no '{0}' claim")]
    MissingClaim(&'static str),
    /// No user id claim.
    #[error("Token contained no recognizable user identification")]
    NoUser,
    /// The JWKS could not be fetched and no earlier copy is cached.
    #[error("verifying keys unavailable: {0}")]
    KeysUnavailable(String),
    /// A key or a JWKS URL that cannot be used for the pinned algorithm.
    #[error("bad verifier configuration: {0}")]
    Config(String),
}
