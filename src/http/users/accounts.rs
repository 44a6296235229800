//! Djoser's account actions under `/auth/users/`: activation, password and username changes and
//! the reset flows mailed to the user.
use poem::web::Data;
use poem_openapi::OpenApi;

use super::{
    Tag,
    bodies::{
        ActivationRequest, EmailRequest, ResetPasswordConfirmRequest, ResetUsernameConfirmRequest,
        SetPasswordRequest, SetUsernameRequest,
    },
};
use crate::{
    http::{
        answer::{Answer, InvalidOrBare, NoContent, Stale, Unavailable},
        body::Body,
        caller::Caller,
    },
    state::AppState,
};

#[derive(Default)]
pub struct AccountsApi;

#[OpenApi(tag = "Tag::Users")]
impl AccountsApi {
    /// Activate an account
    ///
    /// With the `uid` and `token` from the activation email (Djoser). An unknown uid or a wrong
    /// token is a field error; an account that is already active answers 403 `stale_token`.
    #[oai(
        path = "/auth/users/activation/",
        method = "post",
        operation_id = "auth_users_activation_create"
    )]
    async fn activation(
        &self,
        state: Data<&AppState>,
        body: Body<ActivationRequest>,
    ) -> Answer<NoContent, (Stale, Unavailable)> {
        state.accounts.activate(&body.0.uid, &body.0.token).await?;
        Ok(NoContent::Done)
    }

    /// Mail the activation link again
    ///
    /// Only inactive accounts get a mail; unknown emails answer 204 all the same. A missing or
    /// invalid `email` is a field error; while activation emails are off, Djoser's bare 400.
    #[oai(
        path = "/auth/users/resend_activation/",
        method = "post",
        operation_id = "auth_users_resend_activation_create"
    )]
    async fn resend_activation(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent, (InvalidOrBare, Unavailable)> {
        state.accounts.resend_activation(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Change the caller's password
    ///
    /// Needs `current_password` (a wrong one counts toward the login lockout) and a
    /// `new_password` that passes Django's validators. With `logout_on_password_change` (the
    /// default), every earlier token and key of the caller is revoked.
    #[oai(
        path = "/auth/users/set_password/",
        method = "post",
        operation_id = "auth_users_set_password_create"
    )]
    async fn set_password(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<SetPasswordRequest>,
    ) -> Answer<NoContent> {
        let b = body.0;
        state
            .accounts
            .set_password(
                &caller.user,
                &b.current_password,
                &b.new_password,
                b.re_new_password.as_deref(),
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// Mail a password reset link
    ///
    /// To an active account with this email; unknown emails answer 204 too, unless
    /// `accounts.password_reset_show_email_not_found` is on.
    #[oai(
        path = "/auth/users/reset_password/",
        method = "post",
        operation_id = "auth_users_reset_password_create"
    )]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent, Unavailable> {
        state.accounts.reset_password(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Set a new password from a reset link
    ///
    /// With the `uid` and `token` of the reset email and a `new_password` that passes Django's
    /// validators; the token is bound to this flow and single-use.
    #[oai(
        path = "/auth/users/reset_password_confirm/",
        method = "post",
        operation_id = "auth_users_reset_password_confirm_create"
    )]
    async fn reset_password_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetPasswordConfirmRequest>,
    ) -> Answer<NoContent, Unavailable> {
        let b = body.0;
        state
            .accounts
            .reset_password_confirm(
                &b.uid,
                &b.token,
                &b.new_password,
                b.re_new_password.as_deref(),
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// Change the caller's username
    ///
    /// Needs `current_password` (a wrong one counts toward the login lockout); the new
    /// username must be free regardless of case.
    #[oai(
        path = "/auth/users/set_username/",
        method = "post",
        operation_id = "auth_users_set_username_create"
    )]
    async fn set_username(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<SetUsernameRequest>,
    ) -> Answer<NoContent> {
        state
            .accounts
            .set_username(&caller.user, &body.0.current_password, &body.0.new_username)
            .await?;
        Ok(NoContent::Done)
    }

    /// Mail a username reset link
    ///
    /// To an active account with this email; unknown emails answer 204 too, unless
    /// `accounts.username_reset_show_email_not_found` is on.
    #[oai(
        path = "/auth/users/reset_username/",
        method = "post",
        operation_id = "auth_users_reset_username_create"
    )]
    async fn reset_username(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent, Unavailable> {
        state.accounts.reset_username(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Set a new username from a reset link
    ///
    /// With the `uid` and `token` of the username reset email; a taken username is reported
    /// before the token is checked.
    #[oai(
        path = "/auth/users/reset_username_confirm/",
        method = "post",
        operation_id = "auth_users_reset_username_confirm_create"
    )]
    async fn reset_username_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetUsernameConfirmRequest>,
    ) -> Answer<NoContent, Unavailable> {
        let b = body.0;
        state
            .accounts
            .reset_username_confirm(&b.uid, &b.token, &b.new_username)
            .await?;
        Ok(NoContent::Done)
    }
}
