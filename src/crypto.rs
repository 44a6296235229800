//! Randomness, digests, keyed MACs, subkeys and secret comparisons: the one module that owns
//! them, so each value's entropy and each key's derivation is stated in one place.
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
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
    /// The AEAD key that seals TOTP secrets at rest.
    TotpSecrets,
}

impl Subkey {
    fn label(self) -> &'static [u8] {
        match self {
            Subkey::OpaqueKeys => b"tessera/opaque-keys/v2",
            Subkey::AccountTokens => b"tessera/account-tokens/v2",
            Subkey::TotpSecrets => b"tessera/totp-secrets/v1",
        }
    }
}

/// `bytes` random bytes from the CSPRNG (TOTP secrets: 20 bytes, 160 bits, RFC 4226's
/// recommendation).
pub fn random_bytes(bytes: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..bytes).map(|_| rng.random::<u8>()).collect()
}

/// The letters of recovery codes: no 0/o, 1/i/l to misread (31 symbols, ~4.95 bits each).
const READABLE: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// A recovery code: 16 readable symbols (~79 bits, so an unsalted SHA-256 of it is safe at
/// rest) in four groups, e.g. `k7m2-x9qp-4hcw-t3vz`.
pub fn recovery_code() -> String {
    let mut rng = rand::rng();
    let symbols: Vec<char> = (0..16)
        .map(|_| char::from(READABLE[rng.random_range(0..READABLE.len())]))
        .collect();
    symbols
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A recovery code as typed, in its stored form: lower case, without separators; None when it
/// cannot be one (wrong length or symbols), so odd input never reaches the store.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == 16 && code.bytes().all(|b| READABLE.contains(&b))).then_some(code)
}

/// An AEAD key (XChaCha20-Poly1305: 192-bit random nonces never repeat in practice), set up at
/// start. What it seals is bound to associated data: a value copied elsewhere does not open.
#[derive(Clone)]
pub struct SealKey(chacha20poly1305::XChaCha20Poly1305);

/// Nonce bytes before the ciphertext in a sealed value.
const NONCE_LEN: usize = 24;

impl SealKey {
    /// The subkey for `purpose`, derived from `master` like [`derive`].
    pub fn derive(master: &[u8], purpose: Subkey) -> Result<Self, CryptoError> {
        use chacha20poly1305::KeyInit as _;
        chacha20poly1305::XChaCha20Poly1305::new_from_slice(&expand(master, purpose)?)
            .map(SealKey)
            .map_err(|e| CryptoError(e.to_string()))
    }

    /// `plain` encrypted and authenticated with `context`, as hex of nonce + ciphertext.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<String, CryptoError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let sealed = self
            .0
            .encrypt(
                &chacha20poly1305::XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|e| CryptoError(e.to_string()))?;
        Ok(STANDARD_NO_PAD.encode([&nonce[..], &sealed].concat()))
    }

    /// What [`SealKey::seal`] sealed with the same `context`; None when the value was altered,
    /// sealed for another context or with another key.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::{Aead, Payload};
        let bytes = STANDARD_NO_PAD.decode(sealed).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = chacha20poly1305::XNonce::try_from(nonce).ok()?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
    }
}

/// A key for one purpose, derived from the signing key with HKDF-SHA256: one secret to manage,
/// no key used for two purposes, and the signing key is never exposed by a subkey.
pub fn derive(master: &[u8], purpose: Subkey) -> Result<MacKey, CryptoError> {
    MacKey::new(&expand(master, purpose)?)
}

/// 256 bits of key for `purpose` from `master` (HKDF-SHA256, the purpose's label as info).
fn expand(master: &[u8], purpose: Subkey) -> Result<[u8; 32], CryptoError> {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, master)
        .expand(purpose.label(), &mut okm)
        .map_err(|e| CryptoError(e.to_string()))?;
    Ok(okm)
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
    fn sealed_values_open_only_with_their_context_and_key() {
        let key = SealKey::derive(b"master-key-material-0123456789", Subkey::TotpSecrets).unwrap();
        let other = SealKey::derive(b"another-master-key-0123456789", Subkey::TotpSecrets).unwrap();
        let sealed = key.seal(b"secret", b"user-a").unwrap();
        assert_eq!(
            key.open(&sealed, b"user-a").as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(key.open(&sealed, b"user-b"), None, "bound to its context");
        assert_eq!(other.open(&sealed, b"user-a"), None, "bound to its key");
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(key.open(&altered, b"user-a"), None, "authenticated");
        assert_ne!(
            sealed,
            key.seal(b"secret", b"user-a").unwrap(),
            "fresh nonce"
        );
        for junk in ["", "zz", "00", "é"] {
            assert_eq!(key.open(junk, b"user-a"), None);
        }
    }

    #[test]
    fn recovery_codes_read_back_in_any_spelling() {
        let code = recovery_code();
        assert_eq!(code.len(), 19);
        let stored = normalize_recovery_code(&code).unwrap();
        assert_eq!(stored.len(), 16);
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase()),
            Some(stored.clone())
        );
        assert_eq!(normalize_recovery_code(&stored), Some(stored));
        for junk in [
            "",
            "123456",
            "0000-0000-0000-0000",
            "ab",
            &"a".repeat(10_000),
        ] {
            assert_eq!(normalize_recovery_code(junk), None, "{junk:.20}");
        }
        assert_ne!(recovery_code(), recovery_code());
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
