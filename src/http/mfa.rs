//! The TOTP second factor: enrolment and removal (`/auth/mfa/totp/`), and the completion of a
//! login that answered `mfa_required` (`/api/token/mfa/`, `/auth/token/login/mfa/`). With
//! `[mfa] enabled` off every operation here answers 404.
use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags, payload::Json, types::Example};

use super::{
    answer::{Answer, Invalid, NoContent, NotFound, Unavailable},
    body::Body,
    caller::{Caller, client_of},
    cookie::WithCookies,
    error::ApiError,
    jwt::{self, Pair},
    throttle::client_ip,
    token_login::{AuthTokenBody, LoggedIn},
};
use crate::{domain::mfa::LoginKind, state::AppState};

#[derive(Tags)]
enum Tag {
    /// Second factor (TOTP, RFC 6238)
    Mfa,
}

const SAMPLE_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SAMPLE_URI: &str =
    "otpauth://totp/Tessera:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Tessera";
const SAMPLE_MFA_TOKEN: &str = "5f2b8e0c4d7a9e1f3b6c8d0a2e4f6b8c5f2b8e0c4d7a9e1f3b6c8d0a2e4f6b8c";

/// A started enrolment: add it to an authenticator app, then confirm with a code.
#[derive(Object)]
#[oai(rename = "TotpEnrolment", example)]
pub struct EnrolmentBody {
    /// The secret in base32, for typing into the app.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code of `otpauth_uri` as an SVG document.
    pub qr_svg: String,
}

impl Example for EnrolmentBody {
    fn example() -> Self {
        Self {
            secret: SAMPLE_SECRET.into(),
            otpauth_uri: SAMPLE_URI.into(),
            qr_svg: "<?xml version=\"1.0\" standalone=\"yes\"?><svg ...>...</svg>".into(),
        }
    }
}

/// The recovery codes, shown this once: each logs in once in place of a TOTP code.
#[derive(Object)]
#[oai(rename = "TotpRecoveryCodes", example)]
pub struct RecoveryCodesBody {
    pub recovery_codes: Vec<String>,
}

impl Example for RecoveryCodesBody {
    fn example() -> Self {
        Self {
            recovery_codes: vec!["k7m2-x9qp-4hcw-t3vz".into(), "2b8e-cq4d-7ahf-3u6n".into()],
        }
    }
}

request_body! {
    /// A code from the authenticator app.
    #[oai(rename = "TotpConfirm", example)]
    pub struct ConfirmRequest {
        /// Six digits.
        pub code: String = |f| f.required("code"), example: "123456".into();
    }
}

request_body! {
    /// The password and a code (or a recovery code).
    #[oai(rename = "TotpRemove", example)]
    pub struct RemoveRequest {
        #[oai(write_only)]
        pub current_password: String = |f| f.required("current_password"), example: "correct horse battery".into();
        /// Six digits, or a recovery code.
        pub code: String = |f| f.required("code"), example: "123456".into();
    }
}

request_body! {
    /// The `mfa_token` of the `mfa_required` answer and a code (or a recovery code).
    #[oai(rename = "MfaComplete", example)]
    pub struct CompleteRequest {
        pub mfa_token: String = |f| f.required("mfa_token"), example: SAMPLE_MFA_TOKEN.into();
        /// Six digits, or a recovery code.
        pub code: String = |f| f.required("code"), example: "123456".into();
    }
}

#[derive(ApiResponse)]
pub enum Enrolled {
    /// The pending secret (replacing an earlier pending one).
    #[oai(status = 200)]
    Ok(Json<EnrolmentBody>),
}

#[derive(ApiResponse)]
pub enum Confirmed {
    /// TOTP is active.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodesBody>),
}

/// The QR code of `text` as SVG (totp-rs draws PNG only).
fn qr_svg(text: &str) -> Result<String, ApiError> {
    // Fails only for data beyond a QR code's capacity, which an otpauth URI never reaches.
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| {
        tracing::error!(error = %e, "QR code");
        ApiError::internal()
    })?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build())
}

#[derive(Default)]
pub struct MfaApi;

#[OpenApi(tag = "Tag::Mfa")]
impl MfaApi {
    /// Start TOTP enrolment
    ///
    /// A fresh secret for the caller, pending until confirmed (starting again replaces the
    /// pending one): the base32 secret, the `otpauth://` URI and its QR code as SVG. 400
    /// while TOTP is active (remove it first); 404 while `[mfa] enabled` is off.
    #[oai(
        path = "/auth/mfa/totp/",
        method = "post",
        operation_id = "auth_mfa_totp_create"
    )]
    async fn start(
        &self,
        state: Data<&AppState>,
        caller: Caller,
    ) -> Answer<Enrolled, (Invalid, NotFound)> {
        let enrolment = state.mfa.start(&caller.user).await?;
        Ok(Enrolled::Ok(Json(EnrolmentBody {
            qr_svg: qr_svg(&enrolment.uri)?,
            secret: enrolment.secret,
            otpauth_uri: enrolment.uri,
        })))
    }

    /// Confirm TOTP enrolment
    ///
    /// A code of the pending secret activates TOTP and answers 10 recovery codes, shown this
    /// once. 400 `{"code": ["Invalid code."]}` for a wrong code, `non_field_errors` when no
    /// enrolment is pending or TOTP is active already.
    #[oai(
        path = "/auth/mfa/totp/confirm/",
        method = "post",
        operation_id = "auth_mfa_totp_confirm_create"
    )]
    async fn confirm(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<ConfirmRequest>,
    ) -> Answer<Confirmed, NotFound> {
        let codes = state.mfa.confirm(&caller.user, &body.0.code).await?;
        Ok(Confirmed::Ok(Json(RecoveryCodesBody {
            recovery_codes: codes,
        })))
    }

    /// Remove TOTP
    ///
    /// Needs the password and a code (or a recovery code): 400 `{"code": ["Invalid code."]}`
    /// or `{"current_password": ["Invalid password."]}`. Codes count toward the account's
    /// lockout (429). The recovery codes and pending logins go too.
    #[oai(
        path = "/auth/mfa/totp/",
        method = "delete",
        operation_id = "auth_mfa_totp_destroy"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<RemoveRequest>,
    ) -> Answer<NoContent, NotFound> {
        state
            .mfa
            .remove(&caller.user, &body.0.current_password, &body.0.code)
            .await?;
        Ok(NoContent::Done)
    }

    /// Complete a login with a second factor (pair)
    ///
    /// After `POST /api/token/` (or `/auth/jwt/create/`) answered 401 `mfa_required`: its
    /// `mfa_token` and a code (or a recovery code) for the pair, as the login would have
    /// answered it (cookie mode included). The token is good once, for 5 minutes by default
    /// (`mfa.token_lifetime`), and dies with a password change. 400 `{"code": ["Invalid
    /// code."]}` or `{"mfa_token": [...]}`; codes count toward the account's lockout (429).
    #[oai(
        path = "/api/token/mfa/",
        method = "post",
        operation_id = "token_mfa_create"
    )]
    async fn complete_pair(
        &self,
        state: Data<&AppState>,
        body: Body<CompleteRequest>,
        req: &Request,
    ) -> Answer<WithCookies<Pair>, (NotFound, Unavailable)> {
        let user = state
            .mfa
            .complete(
                &body.0.mfa_token,
                &body.0.code,
                LoginKind::Pair,
                client_ip(req),
            )
            .await?;
        let pair = state.tokens.issue_pair(user, &client_of(req)).await?;
        Ok(jwt::answer_pair(&state, req, pair))
    }

    /// Complete a login with a second factor (opaque key)
    ///
    /// After `POST /auth/token/login/` (or `/api/api-token-auth/`) answered 401 `mfa_required`:
    /// its `mfa_token` and a code (or a recovery code) for `{"auth_token": ...}`. The same
    /// rules as `/api/token/mfa/`; an mfa_token of a pair login is refused here.
    #[oai(
        path = "/auth/token/login/mfa/",
        method = "post",
        operation_id = "auth_token_login_mfa_create"
    )]
    async fn complete_key(
        &self,
        state: Data<&AppState>,
        body: Body<CompleteRequest>,
        req: &Request,
    ) -> Answer<LoggedIn, (NotFound, Unavailable)> {
        let user = state
            .mfa
            .complete(
                &body.0.mfa_token,
                &body.0.code,
                LoginKind::Key,
                client_ip(req),
            )
            .await?;
        let key = state.opaque.key_for(&user, &client_of(req), false).await?;
        Ok(LoggedIn::Ok(Json(AuthTokenBody { auth_token: key })))
    }
}
