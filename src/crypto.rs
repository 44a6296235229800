//! Randomness, digests, keyed MACs, subkeys and secret comparisons: the one module that owns
//! them, so each value's entropy and each key's derivation is stated in one place.
use hmac::{KeyInit, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A key could not be set up (never at request time: every key is built at start).
#[derive(Debug, thiserror::Error)]
#[error("cryptographic setup failed: {0}")]
pub struct CryptoError(String);

/// `bytes` random bytes as lowercase hex: 8 × `bytes` bits from rand's OS-seeded CSPRNG
/// (opaque keys: 20 bytes, 160 bits, like DRF's; derivation nonces: 16 bytes, 128 bits).
pub fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random::<u8>()).collect();
    hex(&raw)
}

/// A fresh HMAC signing secret: 256 bits from the CSPRNG, as 64 hex characters (so it can be
/// kept in a text file or an environment variable as it is).
pub fn random_secret() -> Vec<u8> {
    let bytes: [u8; 32] = rand::rng().random();
    hex(&bytes).into_bytes()
}

/// A token id (`jti`): a UUIDv4, 122 random bits, written as SimpleJWT writes it (32 hex digits).
pub fn new_jti() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A refresh-token family id: a UUIDv4, 122 random bits.
pub fn new_family() -> Uuid {
    Uuid::new_v4()
}

/// A request id: a UUIDv4 (122 random bits), for correlation only, never a secret.
pub fn new_request_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// SHA-256 of `text` as lowercase hex: how opaque keys and refresh tokens are stored (their
/// entropy makes a salt needless).
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// A UUID made of the first 128 bits of SHA-256(`text`): a stable name for a secret's hash
/// that reveals nothing of the hash itself (an opaque key's session id).
pub fn digest_uuid(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// Constant-time equality of two secrets (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The purposes subkeys are derived for. The version is part of the HKDF label: changing a
/// derivation means a new version here, never a silent change of the keys in use.
#[derive(Debug, Clone, Copy)]
pub enum Subkey {
    /// One-key-per-user opaque keys: HMAC(subkey, user id + nonce).
    OpaqueKeys,
    /// Emailed activation and reset tokens.
    AccountTokens,
}

impl Subkey {
    fn label(self) -> &'static [u8] {
        match self {
            Subkey::OpaqueKeys => b"tessera/opaque-keys/v2",
            Subkey::AccountTokens => b"tessera/account-tokens/v2",
        }
    }
}

/// A key for one purpose, derived from the signing key with HKDF-SHA256: one secret to manage,
/// no key used for two purposes, and the signing key is never exposed by a subkey.
pub fn derive(master: &[u8], purpose: Subkey) -> Result<MacKey, CryptoError> {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, master)
        .expand(purpose.label(), &mut okm)
        .map_err(|e| CryptoError(e.to_string()))?;
    MacKey::new(&okm)
}

/// An HMAC-SHA256 key, keyed once at start so that computing a MAC cannot fail later.
#[derive(Clone)]
pub struct MacKey(hmac::Hmac<Sha256>);

impl MacKey {
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        hmac::Hmac::<Sha256>::new_from_slice(key)
            .map(MacKey)
            .map_err(|e| CryptoError(e.to_string()))
    }

    /// The MAC of `parts`, each length-prefixed so no two different inputs concatenate alike,
    /// as lowercase hex of its first `bytes` bytes.
    pub fn mac_hex(&self, parts: &[&[u8]], bytes: usize) -> String {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let out = mac.finalize().into_bytes();
        hex(&out[..bytes.min(out.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_by_purpose_and_from_the_master() {
        let master = b"tessera-test-signing-key-0123456789abcdef";
        let a = derive(master, Subkey::OpaqueKeys).unwrap();
        let b = derive(master, Subkey::AccountTokens).unwrap();
        let plain = MacKey::new(master).unwrap();
        let parts: &[&[u8]] = &[b"user", b"nonce"];
        let macs = [
            a.mac_hex(parts, 32),
            b.mac_hex(parts, 32),
            plain.mac_hex(parts, 32),
        ];
        assert_ne!(macs[0], macs[1]);
        assert_ne!(macs[0], macs[2]);
        assert_eq!(macs[0], a.mac_hex(parts, 32), "deterministic");
    }

    #[test]
    fn length_prefixes_keep_part_boundaries() {
        let key = MacKey::new(b"k").unwrap();
        assert_ne!(
            key.mac_hex(&[b"ab", b"c"], 16),
            key.mac_hex(&[b"a", b"bc"], 16)
        );
    }

    #[test]
    fn random_values_have_their_stated_size() {
        assert_eq!(random_hex(20).len(), 40);
        assert_eq!(random_secret().len(), 64);
        assert_ne!(random_hex(16), random_hex(16));
        assert_eq!(new_jti().len(), 32);
        assert_eq!(sha256_hex("abc").len(), 64);
        assert!(ct_eq(b"same", b"same") && !ct_eq(b"same", b"diff"));
    }
}
