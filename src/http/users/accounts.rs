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
        answer::{Answer, NoContent},
        body::Body,
        caller::Caller,
    },
    state::AppState,
};

pub struct AccountsApi;

#[OpenApi(tag = "Tag::Users")]
impl AccountsApi {
    /// Activate an account with the uid and token from the activation email.
    #[oai(path = "/auth/users/activation/", method = "post")]
    async fn activation(
        &self,
        state: Data<&AppState>,
        body: Body<ActivationRequest>,
    ) -> Answer<NoContent> {
        state.accounts.activate(&body.0.uid, &body.0.token).await?;
        Ok(NoContent::Done)
    }

    /// Mail the activation link again (only to inactive accounts; 400 when activation is off).
    #[oai(path = "/auth/users/resend_activation/", method = "post")]
    async fn resend_activation(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent> {
        state.accounts.resend_activation(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Change the caller's password; by default every earlier token of the caller is revoked.
    #[oai(path = "/auth/users/set_password/", method = "post")]
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

    /// Mail a password reset link (204 for unknown emails too, unless configured otherwise).
    #[oai(path = "/auth/users/reset_password/", method = "post")]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent> {
        state.accounts.reset_password(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Set a new password with the uid and token from the reset email.
    #[oai(path = "/auth/users/reset_password_confirm/", method = "post")]
    async fn reset_password_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetPasswordConfirmRequest>,
    ) -> Answer<NoContent> {
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

    /// Change the caller's username.
    #[oai(path = "/auth/users/set_username/", method = "post")]
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

    /// Mail a username reset link.
    #[oai(path = "/auth/users/reset_username/", method = "post")]
    async fn reset_username(
        &self,
        state: Data<&AppState>,
        body: Body<EmailRequest>,
    ) -> Answer<NoContent> {
        state.accounts.reset_username(&body.0.email).await?;
        Ok(NoContent::Done)
    }

    /// Set a new username with the uid and token from the username reset email.
    #[oai(path = "/auth/users/reset_username_confirm/", method = "post")]
    async fn reset_username_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetUsernameConfirmRequest>,
    ) -> Answer<NoContent> {
        let b = body.0;
        state
            .accounts
            .reset_username_confirm(&b.uid, &b.token, &b.new_username)
            .await?;
        Ok(NoContent::Done)
    }
}
