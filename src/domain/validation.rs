//! Field rules shared by the user flows: Django's username characters and a sane email check.
use std::sync::LazyLock;

use regex::Regex;

pub const USERNAME_MAX_CHARS: usize = 150;
pub const EMAIL_MAX_CHARS: usize = 254;

pub const MSG_USERNAME_CHARS: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
pub const MSG_EMAIL: &str = "Enter a valid email address.";
pub const MSG_USERNAME_TAKEN: &str = "A user with that username already exists.";

/// Messages for a username that breaks Django's rules (letters, digits, `@.+-_`, at most 150).
pub fn username_errors(username: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        errors.push(MSG_USERNAME_CHARS.to_owned());
    }
    if username.chars().count() > USERNAME_MAX_CHARS {
        errors.push(max_chars_message(USERNAME_MAX_CHARS));
    }
    errors
}

/// Messages for an email address; the empty string is allowed (Django's `blank=True`).
pub fn email_errors(email: &str) -> Vec<String> {
    static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
        // Local part of dot-separated atoms, a domain of LDH labels with an alphabetic TLD.
        #[allow(clippy::unwrap_used)]
        Regex::new(
            r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
        )
        .unwrap()
    });
    let mut errors = Vec::new();
    if !email.is_empty() && !EMAIL.is_match(email) {
        errors.push(MSG_EMAIL.to_owned());
    }
    if email.chars().count() > EMAIL_MAX_CHARS {
        errors.push(max_chars_message(EMAIL_MAX_CHARS));
    }
    errors
}

pub fn max_chars_message(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// Django's `normalize_username`: NFKC, so `ａｄｍｉｎ` (fullwidth) and `admin` are one name
/// before any rule or uniqueness check sees it.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.nfkc().collect()
}

/// The key under which usernames are unique: `Admin` and `admin` are one name.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username_errors("alice.b+c@d-e_f").is_empty());
        assert!(username_errors("zoë").is_empty());
        assert_eq!(normalize_username("ａｄｍｉｎ"), "admin");
        assert_eq!(normalize_username("ﬁ"), "fi");
        // Lowercasing may lengthen a name: the key column is sized for it (migration 7).
        assert_eq!(username_key(&"İ".repeat(150)).chars().count(), 300);
        assert_eq!(username_errors("a b"), vec![MSG_USERNAME_CHARS]);
        assert_eq!(
            username_errors(&"a".repeat(151)),
            vec![max_chars_message(150)]
        );
        assert_eq!(username_key("Admin"), username_key("aDMIN"));
    }

    #[test]
    fn emails() {
        assert!(email_errors("").is_empty());
        assert!(email_errors("a.b+c@sub.example.org").is_empty());
        for bad in [
            "not-an-email",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@c.com",
            "a@-c.com",
        ] {
            assert_eq!(email_errors(bad), vec![MSG_EMAIL], "{bad}");
        }
    }
}
