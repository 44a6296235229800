//! Who is calling: the `Authorization` header checked against each enabled scheme in turn,
//! with DRF's messages. `Bearer <jwt>` and `Token <key>` plug in here.
use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{Request, RequestBody, http::StatusCode};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::error::ApiError;
use crate::{
    domain::{DomainError, users::User},
    state::AppState,
};

/// The authenticated caller of an endpoint.
pub struct Caller {
    pub user: User,
}

const BASIC: &str = "basicAuth";

impl Caller {
    async fn authenticate(state: &AppState, header: Option<&str>) -> Result<Self, ApiError> {
        let header = header.unwrap_or("");
        let parts: Vec<&str> = header.split_whitespace().collect();
        match parts.first() {
            Some(scheme) if scheme.eq_ignore_ascii_case("basic") => basic(state, &parts).await,
            _ => Err(ApiError::not_authenticated()),
        }
    }
}

/// DRF's BasicAuthentication.
async fn basic(state: &AppState, parts: &[&str]) -> Result<Caller, ApiError> {
    let failed = |msg: &str| ApiError::detail(StatusCode::UNAUTHORIZED, msg);
    match parts.len() {
        1 => return Err(failed("Invalid basic header. No credentials provided.")),
        2 => {}
        _ => {
            return Err(failed(
                "Invalid basic header. Credentials string should not contain spaces.",
            ));
        }
    }
    let decoded = STANDARD.decode(parts[1]).ok().map(|bytes| {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| b as char).collect())
    });
    let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(failed(
            "Invalid basic header. Credentials not correctly base64 encoded.",
        ));
    };
    match state.users.authenticate(username, password).await {
        Ok(user) => Ok(Caller { user }),
        Err(DomainError::InvalidCredentials) => Err(failed("Invalid username/password.")),
        Err(other) => Err(other.into()),
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BASIC,
            MetaSecurityScheme {
                ty: "http",
                description: Some("Username and password (DRF's BasicAuthentication)."),
                name: None,
                key_in: None,
                scheme: Some("basic"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BASIC]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = request.data::<AppState>().ok_or_else(ApiError::internal)?;
        let header = request
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Self::authenticate(state, header).await?)
    }
}
