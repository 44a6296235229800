//! sea-orm entities: storage rows only; HTTP bodies and domain types are separate.
pub mod audit_event;
pub mod auth_token;
pub mod django_import;
pub mod group;
pub mod mfa_recovery_code;
pub mod mfa_token;
pub mod mfa_totp;
pub mod outstanding_token;
pub mod revocation_sequence;
pub mod revoked_jti;
pub mod session;
pub mod user;
pub mod user_cutoff;
pub mod user_group;
pub mod user_numbers;
