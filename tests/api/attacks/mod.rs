//! Attack tests: each module tries to get around one guarantee the way an attacker would, on
//! every backend, and is named after the attack.
mod basic_auth_is_no_password_oracle;
mod lockout_bypass_through_account_changes;
mod sessions_surviving_a_credential_change;
mod throttle_bypass_through_path_spelling;
