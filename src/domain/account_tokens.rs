//! Stateless emailed tokens like Django's PasswordResetTokenGenerator: `<timestamp>-<hmac>`, the
//! HMAC over the user's password hash, last login, email and active state, so a token dies once
//! used (any of those changes) and with age. Unlike Django the purpose is in the HMAC too: an
//! activation token is no password-reset token.
use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;

use super::users::{User, UserRef};
use crate::crypto::{MacKey, ct_eq};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Activation,
    PasswordReset,
    UsernameReset,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Activation => b"activation",
            Purpose::PasswordReset => b"password-reset",
            Purpose::UsernameReset => b"username-reset",
        }
    }
}

pub struct AccountTokens {
    key: MacKey,
    timeout: Duration,
}

impl AccountTokens {
    pub fn new(key: MacKey, timeout: Duration) -> Self {
        Self { key, timeout }
    }

    /// The user's public id, url-safe base64 (Django's `urlsafe_base64_encode(force_bytes(pk))`).
    pub fn uid(id: UserRef) -> String {
        URL_SAFE_NO_PAD.encode(id.to_string())
    }

    pub fn parse_uid(uid: &str) -> Option<UserRef> {
        let bytes = URL_SAFE_NO_PAD.decode(uid.trim_end_matches('=')).ok()?;
        UserRef::parse(std::str::from_utf8(&bytes).ok()?)
    }

    pub fn make(&self, purpose: Purpose, user: &User) -> String {
        let timestamp = Utc::now().timestamp();
        format!(
            "{}-{}",
            base36(timestamp as u64),
            self.mac(purpose, user, timestamp)
        )
    }

    /// Whether `token` was made for this purpose and user, is unused and younger than the timeout.
    pub fn check(&self, purpose: Purpose, user: &User, token: &str) -> bool {
        let Some((stamp, mac)) = token.split_once('-') else {
            return false;
        };
        let Ok(timestamp) = i64::from_str_radix(stamp, 36) else {
            return false;
        };
        let expected = self.mac(purpose, user, timestamp);
        if !ct_eq(expected.as_bytes(), mac.as_bytes()) {
            return false;
        }
        let age = Utc::now().timestamp() - timestamp;
        age >= 0 && (age as u64) <= self.timeout.as_secs()
    }

    fn mac(&self, purpose: Purpose, user: &User, timestamp: i64) -> String {
        let last_login = user
            .last_login
            .map(|t| t.timestamp_micros().to_string())
            .unwrap_or_default();
        self.key.mac_hex(
            &[
                purpose.tag(),
                user.id.as_bytes(),
                user.password_hash.as_bytes(),
                last_login.as_bytes(),
                user.email.as_bytes(),
                if user.is_active { b"1" } else { b"0" },
                user.username.as_bytes(),
                timestamp.to_string().as_bytes(),
            ],
            16,
        )
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user() -> User {
        User {
            id: Uuid::now_v7(),
            username: "alice".into(),
            email: "a@example.com".into(),
            password_hash: "$argon2id$x".into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: Utc::now(),
            last_login: None,
            credential_version: 0,
            number: 7,
        }
    }

    #[test]
    fn tokens_are_bound_to_purpose_user_state_and_age() {
        let tokens = AccountTokens::new(MacKey::new(b"secret").unwrap(), Duration::from_secs(3600));
        let mut u = user();
        let t = tokens.make(Purpose::PasswordReset, &u);
        assert!(tokens.check(Purpose::PasswordReset, &u, &t));
        assert!(
            !tokens.check(Purpose::Activation, &u, &t),
            "bound to its purpose"
        );
        assert!(
            !tokens.check(Purpose::PasswordReset, &user(), &t),
            "bound to its user"
        );
        u.password_hash.push('!');
        assert!(
            !tokens.check(Purpose::PasswordReset, &u, &t),
            "dies once the password changes"
        );
        let expired = AccountTokens::new(MacKey::new(b"secret").unwrap(), Duration::ZERO);
        let old = format!(
            "{}-{}",
            base36(1_000),
            expired.mac(Purpose::Activation, &u, 1_000)
        );
        assert!(
            !expired.check(Purpose::Activation, &u, &old),
            "dies with age"
        );
        assert_eq!(
            AccountTokens::parse_uid(&AccountTokens::uid(UserRef::Id(u.id))),
            Some(UserRef::Id(u.id))
        );
        // Djoser's uid of pk 7.
        assert_eq!(AccountTokens::uid(UserRef::Number(7)), "Nw");
        assert_eq!(AccountTokens::parse_uid("Nw"), Some(UserRef::Number(7)));
        assert_eq!(AccountTokens::parse_uid("!!"), None);
        assert_eq!(base36(35), "z");
    }
}
