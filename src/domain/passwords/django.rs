//! Password hashes in the forms Django stores them (`<algorithm>$<fields>`), so accounts imported
//! from a Django project keep their passwords until their next login replaces the hash with
//! Tessera's argon2id. The formats are those of Django 5.2's hashers; the test vectors below were
//! made by Django itself.
//!
//! A stored hash is read before any work is done: an unknown algorithm, a field Django would never
//! write, or a cost beyond the limits below is refused, so a garbled or hostile row can neither
//! panic nor pin a hashing thread for minutes.
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::crypto::{ct_eq, sha256_hex};

/// Django's prefix of an unusable password (`set_unusable_password`): it never matches.
pub const UNUSABLE_PREFIX: char = '!';

/// PBKDF2 rounds accepted at most: 10x Django 5.2's default (1,000,000), a few seconds here.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// bcrypt cost accepted at most (2^16 rounds; Django's default is 12, each step doubles).
pub const MAX_BCRYPT_COST: u32 = 16;
/// scrypt memory (128 * n * r bytes) accepted at most: twice what Django can verify itself
/// (OpenSSL's 32 MiB default, Django passes no `maxmem`).
pub const MAX_SCRYPT_MEMORY: u64 = 64 * 1024 * 1024;
/// scrypt parallelism accepted at most (Django's default is 5; each one repeats the work).
pub const MAX_SCRYPT_PARALLELISM: u32 = 16;
/// Django's scrypt key length.
const SCRYPT_KEY_LEN: usize = 64;

/// Why a stored hash can never match, found without hashing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnreadableHash {
    /// Django's unusable password (`!...`): set on purpose, never a login.
    #[error("unusable password")]
    Unusable,
    #[error("unknown hash algorithm")]
    UnknownAlgorithm,
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    #[error("{0} cost beyond the accepted maximum")]
    TooCostly(&'static str),
}

/// The digest of a `pbkdf2_*` hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Digest {
    Sha256,
    Sha1,
}

/// A Django hash, read and within limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DjangoHash<'a> {
    /// `pbkdf2_sha256$<iterations>$<salt>$<base64 key>` (and `pbkdf2_sha1$...`).
    Pbkdf2 {
        digest: Pbkdf2Digest,
        iterations: u32,
        salt: &'a str,
        key: Vec<u8>,
    },
    /// `argon2$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`: a PHC string after Django's
    /// `argon2` prefix, verified (and limited) like Tessera's own argon2 hashes.
    Argon2 { phc: &'a str },
    /// `bcrypt_sha256$$2b$12$...` (bcrypt of the hex SHA-256 of the password) or `bcrypt$$2b$...`.
    Bcrypt { prehash: bool, hash: &'a str },
    /// `scrypt$<n>$<salt>$<r>$<p>$<base64 key>` (64-byte key).
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: &'a str,
        key: Vec<u8>,
    },
}

impl<'a> DjangoHash<'a> {
    /// Reads `stored` as Django writes it. Django compares its own re-encoding of the password
    /// with the whole stored text, so only what Django writes can ever match: numbers without
    /// sign or leading zero, canonical padded base64.
    pub fn parse(stored: &'a str) -> Result<Self, UnreadableHash> {
        if stored.starts_with(UNUSABLE_PREFIX) {
            return Err(UnreadableHash::Unusable);
        }
        let (algorithm, rest) = stored
            .split_once('$')
            .ok_or(UnreadableHash::UnknownAlgorithm)?;
        match algorithm {
            "pbkdf2_sha256" => pbkdf2(Pbkdf2Digest::Sha256, rest),
            "pbkdf2_sha1" => pbkdf2(Pbkdf2Digest::Sha1, rest),
            // The PHC string keeps its leading `$`; its fields are checked by the argon2 reader.
            "argon2" if rest.starts_with("argon2") => Ok(DjangoHash::Argon2 {
                phc: &stored[algorithm.len()..],
            }),
            "argon2" => Err(UnreadableHash::Malformed("argon2")),
            "bcrypt_sha256" => bcrypt(true, rest),
            "bcrypt" => bcrypt(false, rest),
            "scrypt" => scrypt(rest),
            _ => Err(UnreadableHash::UnknownAlgorithm),
        }
    }

    /// Whether `password` is the one hashed. Runs the whole key derivation: call it off the
    /// async executor. Argon2 hashes are checked by the caller (see [`DjangoHash::Argon2`]).
    pub fn matches(&self, password: &str) -> bool {
        let bytes = password.as_bytes();
        match self {
            DjangoHash::Pbkdf2 {
                digest,
                iterations,
                salt,
                key,
            } => {
                let mut derived = vec![0u8; key.len()];
                match digest {
                    Pbkdf2Digest::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                        bytes,
                        salt.as_bytes(),
                        *iterations,
                        &mut derived,
                    ),
                    Pbkdf2Digest::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                        bytes,
                        salt.as_bytes(),
                        *iterations,
                        &mut derived,
                    ),
                }
                ct_eq(&derived, key)
            }
            DjangoHash::Bcrypt { prehash, hash } => {
                // bcrypt reads at most 72 bytes: Django's bcrypt_sha256 hashes the password
                // first (64 hex digits); plain bcrypt hashes were made from the first 72 bytes
                // (bcrypt < 5 truncated silently), so they are checked the same way.
                let verified = if *prehash {
                    bcrypt::verify(sha256_hex(password), hash)
                } else {
                    bcrypt::verify(bytes, hash)
                };
                verified.unwrap_or(false)
            }
            DjangoHash::Scrypt {
                log_n,
                r,
                p,
                salt,
                key,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p) else {
                    return false;
                };
                let mut derived = vec![0u8; key.len()];
                scrypt::scrypt(bytes, salt.as_bytes(), &params, &mut derived).is_ok()
                    && ct_eq(&derived, key)
            }
            DjangoHash::Argon2 { .. } => false,
        }
    }
}

/// A positive decimal number exactly as Python's `%d` writes it.
fn canonical_number(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || text.starts_with('0') || text.len() > 19 {
        return None;
    }
    text.parse().ok()
}

/// Padded standard base64 of exactly `len` bytes (what Django's `b64encode` writes).
fn key_of(text: &str, len: usize) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok().filter(|key| key.len() == len)
}

fn pbkdf2(digest: Pbkdf2Digest, rest: &str) -> Result<DjangoHash<'_>, UnreadableHash> {
    const NAME: &str = "pbkdf2";
    let malformed = UnreadableHash::Malformed(NAME);
    let mut fields = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(key)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed);
    };
    let iterations = canonical_number(iterations).ok_or(malformed)?;
    let iterations = u32::try_from(iterations)
        .ok()
        .filter(|n| *n <= MAX_PBKDF2_ITERATIONS)
        .ok_or(UnreadableHash::TooCostly(NAME))?;
    let len = match digest {
        Pbkdf2Digest::Sha256 => 32,
        Pbkdf2Digest::Sha1 => 20,
    };
    if salt.is_empty() {
        return Err(malformed);
    }
    let key = key_of(key, len).ok_or(malformed)?;
    Ok(DjangoHash::Pbkdf2 {
        digest,
        iterations,
        salt,
        key,
    })
}

fn bcrypt(prehash: bool, rest: &str) -> Result<DjangoHash<'_>, UnreadableHash> {
    const NAME: &str = "bcrypt";
    let malformed = UnreadableHash::Malformed(NAME);
    // `$2b$12$` + 22 characters of salt + 31 of hash; the bcrypt crate checks the alphabet.
    let ascii = rest.len() == 60 && rest.is_ascii();
    if !ascii || !["$2a$", "$2b$", "$2y$"].iter().any(|p| rest.starts_with(p)) {
        return Err(malformed);
    }
    let cost = match (rest.get(4..6).and_then(canonical_cost), rest.get(6..7)) {
        (Some(cost), Some("$")) => cost,
        _ => return Err(malformed),
    };
    if cost < 4 {
        return Err(malformed);
    }
    if cost > MAX_BCRYPT_COST {
        return Err(UnreadableHash::TooCostly(NAME));
    }
    Ok(DjangoHash::Bcrypt {
        prehash,
        hash: rest,
    })
}

/// bcrypt's two-digit cost (`04` ... `31`).
fn canonical_cost(text: &str) -> Option<u32> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
}

fn scrypt(rest: &str) -> Result<DjangoHash<'_>, UnreadableHash> {
    const NAME: &str = "scrypt";
    let malformed = UnreadableHash::Malformed(NAME);
    let fields: Vec<&str> = rest.split('$').collect();
    let [n, salt, r, p, key] = fields.as_slice() else {
        return Err(malformed);
    };
    let (Some(n), Some(r), Some(p)) = (
        canonical_number(n),
        canonical_number(r),
        canonical_number(p),
    ) else {
        return Err(malformed);
    };
    if n < 2 || !n.is_power_of_two() || salt.is_empty() {
        return Err(malformed);
    }
    let memory = 128u64.saturating_mul(n).saturating_mul(r);
    if memory > MAX_SCRYPT_MEMORY || p > u64::from(MAX_SCRYPT_PARALLELISM) {
        return Err(UnreadableHash::TooCostly(NAME));
    }
    let key = key_of(key, SCRYPT_KEY_LEN).ok_or(malformed)?;
    // Within the limits above these fit: n <= 2^19, r <= 2^18, p <= 16.
    let (Ok(log_n), Ok(r), Ok(p)) = (
        u8::try_from(n.trailing_zeros()),
        u32::try_from(r),
        u32::try_from(p),
    ) else {
        return Err(malformed);
    };
    Ok(DjangoHash::Scrypt {
        log_n,
        r,
        p,
        salt,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors were made once with Django 5.2.19 (argon2-cffi 25.1, bcrypt 5.0) in a
    /// throwaway virtualenv, e.g.
    /// `make_password("correct horse battery", hasher="pbkdf2_sha256")` with the hasher in
    /// `PASSWORD_HASHERS`, or `PBKDF2PasswordHasher().encode(password, "s4ltsalt", 1000)` and
    /// subclasses with lower costs (`rounds = 4`, `time_cost = 1`...) for the cheap ones.
    const PASSWORD: &str = "correct horse battery";

    /// Django's defaults (`make_password` with each hasher).
    const DEFAULTS: [&str; 5] = [
        "pbkdf2_sha256$1000000$ZrftchAkXbA3KdwLjxjxvd$/aWMq1wZgZUkU7qpPjFIm19klwZEBmSwzZrBs0lKFbI=",
        "pbkdf2_sha1$1000000$a62gtn668pArrwtdF53E3B$3f0za8HuLqIi5fJcnGOfQLpYG8w=",
        "bcrypt_sha256$$2b$12$4Rg.ATf.UUx197uYp86liOtOR91jUaqcyaHzSo.1Dytaodma6ae6u",
        "bcrypt$$2b$12$0k0fz.NJ2Z2.DbrVYHiKnOAVUI/0E/WosfAKHVN3P8QlGOfVHx4pe",
        "scrypt$16384$DYkihp0zG1nfoo76f15reF$8$5$xeC2q/AE87YJfYC0FlK6k/1mfjfGK02SIzhqr+mScsnz6wMP99dUPl3WO0fykPMA5yFEL4zf2INMCQEsWIpOSw==",
    ];

    /// Cheaper costs, `$2a$`, and a password beyond bcrypt's 72 bytes.
    const CHEAP: [&str; 6] = [
        "pbkdf2_sha256$1000$s4ltsalt$nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=",
        "pbkdf2_sha1$1000$s4ltsalt$9Kh1nw1EZh9LEy/vKwDckm4iu6M=",
        "scrypt$1024$s4ltsalt$8$1$6OIFNwMLlh7IxywPnQ+cJdADUAX7d4N9/lwiG4yt9V4RpEQT3NBJcWRvXwszbukID/Fr1XKwFdGJBwi2OYNmgA==",
        "bcrypt_sha256$$2b$04$2Dvm3Q9BS147DpDXQG6oD.2v2Ez3TUertqhpIVA4QPql0byZqBLUW",
        "bcrypt_sha256$$2a$04$l2b8loEvj19/45yoZJN6Du34LxkutoQykVNUUv1AnWegPWUIzRtim",
        "bcrypt$$2b$04$hzYSTm9bwqXMhCeyKpE3o.reqm8jb.IS0URHY6tJlfLkkFlORkd9K",
    ];

    fn matches(stored: &str, password: &str) -> bool {
        DjangoHash::parse(stored)
            .unwrap_or_else(|e| panic!("{stored}: {e}"))
            .matches(password)
    }

    #[test]
    fn djangos_default_hashes_match() {
        // Wrong passwords are tried on the cheap vectors: a million PBKDF2 rounds take seconds
        // in an unoptimised test build.
        for stored in DEFAULTS {
            assert!(matches(stored, PASSWORD), "{stored}");
        }
    }

    #[test]
    fn cheaper_costs_and_other_prefixes_match() {
        for stored in CHEAP {
            assert!(matches(stored, PASSWORD), "{stored}");
            assert!(!matches(stored, "correct horse batterz"), "{stored}");
            assert!(!matches(stored, ""), "{stored}");
        }
    }

    #[test]
    fn non_ascii_passwords_are_hashed_as_utf8() {
        let stored = "pbkdf2_sha256$1000$s4ltsalt$aBeQJshcuGk9iBwKETRbYRC2FVEI1dTKJLji1VkKv3U=";
        assert!(matches(stored, "pässwörd ✓ 鍵"));
        assert!(!matches(stored, "passwort ✓ 鍵"));
    }

    #[test]
    fn bcrypt_sha256_reads_the_whole_of_a_long_password() {
        let stored = "bcrypt_sha256$$2b$04$X4UMNuMiiB8khh6YcW2zI.A3z00nZrQ.B/geZyNet3VP13gO42.AG";
        assert!(matches(stored, &"x".repeat(100)));
        assert!(!matches(stored, &"x".repeat(99)));
    }

    #[test]
    fn plain_bcrypt_reads_the_first_72_bytes_as_it_was_made() {
        // Django with bcrypt < 5 stored this for a 100-byte password (bcrypt 5 refuses to
        // hash it): `"bcrypt$" + bcrypt.hashpw(password[:72], bcrypt.gensalt(4))`.
        let stored = "bcrypt$$2b$04$xfUMUpTstTdjjHvEkVF2yeDllMpj56x5F6tnqkuGH0oFCJBFRhXu6";
        assert!(matches(stored, &"y".repeat(100)));
        assert!(matches(stored, &"y".repeat(72)));
        assert!(!matches(stored, &"y".repeat(71)));
    }

    #[test]
    fn argon2_is_handed_over_as_its_phc_string() {
        let stored = "argon2$argon2id$v=19$m=1024,t=1,p=2$czRsdHNhbHRzNGx0c2FsdA$aF9IBsiIjodmO2lSa4e45X1l9o+q3tfQQSYdy1JYBhc";
        assert_eq!(
            DjangoHash::parse(stored),
            Ok(DjangoHash::Argon2 {
                phc: &stored["argon2".len()..]
            })
        );
        assert_eq!(
            DjangoHash::parse("argon2$bcrypt$x"),
            Err(UnreadableHash::Malformed("argon2"))
        );
    }

    #[test]
    fn unusable_and_unknown_hashes_are_refused_before_any_work() {
        use UnreadableHash::*;
        let cases: [(&str, UnreadableHash); 8] = [
            ("!SXgf6zlqXvlY4bzkKwPnohjpqRYPsWPNiq1svUfJ", Unusable),
            ("!", Unusable),
            ("", UnknownAlgorithm),
            (
                "md5$s4lt$0123456789abcdef0123456789abcdef",
                UnknownAlgorithm,
            ),
            ("5f4dcc3b5aa765d61d8327deb882cf99", UnknownAlgorithm),
            ("sha1$$0123", UnknownAlgorithm),
            ("PBKDF2_SHA256$1000$s4ltsalt$x", UnknownAlgorithm),
            ("crypt$$abc", UnknownAlgorithm),
        ];
        for (stored, why) in cases {
            assert_eq!(DjangoHash::parse(stored), Err(why), "{stored:?}");
        }
    }

    #[test]
    fn garbled_or_hostile_fields_are_refused_before_any_work() {
        use UnreadableHash::*;
        let key = "nbzzDE4b8vulwvHIqLHruiTX1NoZDRiLc2EqS2Don+s=";
        let scrypt_key = "6OIFNwMLlh7IxywPnQ+cJdADUAX7d4N9/lwiG4yt9V4RpEQT3NBJcWRvXwszbukID/Fr1XKwFdGJBwi2OYNmgA==";
        let bcrypt_tail = "2Dvm3Q9BS147DpDXQG6oD.2v2Ez3TUertqhpIVA4QPql0byZqBLUW";
        let cases: Vec<(String, UnreadableHash)> = vec![
            ("pbkdf2_sha256$999999999999$x$y".into(), TooCostly("pbkdf2")),
            (
                format!("pbkdf2_sha256$10000001$s4lt${key}"),
                TooCostly("pbkdf2"),
            ),
            (
                format!("pbkdf2_sha256$4294967296$s4lt${key}"),
                TooCostly("pbkdf2"),
            ),
            (format!("pbkdf2_sha256$0$s4lt${key}"), Malformed("pbkdf2")),
            (
                format!("pbkdf2_sha256$01000$s4lt${key}"),
                Malformed("pbkdf2"),
            ),
            (
                format!("pbkdf2_sha256$+1000$s4lt${key}"),
                Malformed("pbkdf2"),
            ),
            (format!("pbkdf2_sha256$-1$s4lt${key}"), Malformed("pbkdf2")),
            (
                format!("pbkdf2_sha256$ 1000$s4lt${key}"),
                Malformed("pbkdf2"),
            ),
            (format!("pbkdf2_sha256$$s4lt${key}"), Malformed("pbkdf2")),
            (format!("pbkdf2_sha256$1000$${key}"), Malformed("pbkdf2")),
            ("pbkdf2_sha256$1000$s4lt$".into(), Malformed("pbkdf2")),
            (
                "pbkdf2_sha256$1000$s4lt$not base64!".into(),
                Malformed("pbkdf2"),
            ),
            ("pbkdf2_sha256$1000$s4lt$AAAA".into(), Malformed("pbkdf2")),
            // A SHA-1 length key under SHA-256, and padding removed.
            (
                "pbkdf2_sha256$1000$s4lt$9Kh1nw1EZh9LEy/vKwDckm4iu6M=".into(),
                Malformed("pbkdf2"),
            ),
            (
                format!("pbkdf2_sha256$1000$s4lt${}", key.trim_end_matches('=')),
                Malformed("pbkdf2"),
            ),
            ("pbkdf2_sha256$1000".into(), Malformed("pbkdf2")),
            ("pbkdf2_sha256$".into(), Malformed("pbkdf2")),
            (
                format!("bcrypt_sha256$$2b$31${bcrypt_tail}"),
                TooCostly("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$$2b$17${bcrypt_tail}"),
                TooCostly("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$$2b$03${bcrypt_tail}"),
                Malformed("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$$2b$+4${bcrypt_tail}"),
                Malformed("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$$2x$04${bcrypt_tail}"),
                Malformed("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$$2b$04$${bcrypt_tail}"),
                Malformed("bcrypt"),
            ),
            (
                format!("bcrypt_sha256$2b$04${bcrypt_tail}"),
                Malformed("bcrypt"),
            ),
            ("bcrypt$$2b$04$".into(), Malformed("bcrypt")),
            (
                format!("bcrypt$$2b$04${}é", &bcrypt_tail[..51]),
                Malformed("bcrypt"),
            ),
            (
                format!("scrypt$1048576$s4lt$8$1${scrypt_key}"),
                TooCostly("scrypt"),
            ),
            (
                format!("scrypt$1024$s4lt$8$17${scrypt_key}"),
                TooCostly("scrypt"),
            ),
            (
                format!("scrypt$1024$s4lt$4294967297$1${scrypt_key}"),
                TooCostly("scrypt"),
            ),
            (
                format!("scrypt$1000$s4lt$8$1${scrypt_key}"),
                Malformed("scrypt"),
            ),
            (
                format!("scrypt$1$s4lt$8$1${scrypt_key}"),
                Malformed("scrypt"),
            ),
            (
                format!("scrypt$1024$s4lt$0$1${scrypt_key}"),
                Malformed("scrypt"),
            ),
            (
                format!("scrypt$1024$s4lt$8$0${scrypt_key}"),
                Malformed("scrypt"),
            ),
            (
                format!("scrypt$1024$$8$1${scrypt_key}"),
                Malformed("scrypt"),
            ),
            (format!("scrypt$1024$s4lt$8$1${key}"), Malformed("scrypt")),
            (
                format!("scrypt$1024$s4lt$8$1${scrypt_key}$extra"),
                Malformed("scrypt"),
            ),
            ("scrypt$1024$s4lt$8".into(), Malformed("scrypt")),
        ];
        for (stored, why) in cases {
            assert_eq!(DjangoHash::parse(&stored), Err(why), "{stored:?}");
        }
    }
}
