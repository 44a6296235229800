//! Attack tests: each module tries to get around one guarantee the way an attacker would, on
//! every backend, and is named after the attack.
mod basic_auth_is_no_password_oracle;
mod ending_a_session_with_an_ended_session;
mod ending_another_users_session;
mod forged_and_odd_claims;
mod forged_session_claims;
mod garbled_password_hashes;
mod lockout_bypass_by_parallel_guesses;
mod lockout_bypass_through_account_changes;
mod login_flood_that_gives_up;
mod mfa_codes_replayed_in_a_parallel_burst;
mod mfa_lockout_bypass_through_path_spelling;
mod mfa_token_presented_as_a_token;
mod mfa_tokens_that_outlive_their_login;
mod odd_mfa_codes;
mod odd_session_ids;
mod refresh_cookie_without_consent;
mod refreshing_while_a_session_ends;
mod revocations_lost_on_the_way_to_redis;
mod revocations_that_lapse_too_early;
mod sessions_surviving_a_credential_change;
mod stale_writes_undoing_a_change;
mod throttle_bypass_through_path_spelling;
mod unbounded_metric_labels;
mod usernames_that_change_under_normalization;
