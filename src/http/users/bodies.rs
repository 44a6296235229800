//! The request and response bodies of `/auth/users/`: Djoser's serializers as OpenAPI schemas.
use std::borrow::Cow;

use poem_openapi::{
    Object,
    registry::{MetaSchema, MetaSchemaRef},
    types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use uuid::Uuid;

use crate::domain::{
    roles::ShownUser,
    users::{User, UserRef, UserService},
};

/// A user's public id: a UUID string, or an integer under `accounts.user_id = "integer"`
/// (Django's `pk`, so the ids a DRF service stored still name the same users).
pub struct PublicId(pub UserRef);

impl Type for PublicId {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "user_id".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            one_of: vec![
                MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "uuid"))),
                MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("integer", "int64"))),
            ],
            description: Some("A UUID, or an integer when `accounts.user_id` is `integer`."),
            ..MetaSchema::ANY
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for PublicId {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let text = match value.unwrap_or_default() {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => return Err(ParseError::expected_type(other)),
        };
        UserRef::parse(&text)
            .map(PublicId)
            .ok_or_else(|| ParseError::custom("not a user id"))
    }
}

impl ToJSON for PublicId {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self.0 {
            UserRef::Id(id) => id.to_string().into(),
            UserRef::Number(n) => n.into(),
        })
    }
}

/// A user as Djoser's UserSerializer shows it, with its roles unless
/// `accounts.show_user_roles` is off.
#[derive(Object)]
#[oai(rename = "User", example)]
pub struct UserBody {
    pub email: String,
    pub id: PublicId,
    pub username: String,
    /// Names of the user's groups, sorted. Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub groups: Option<Vec<String>>,
    /// Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_staff: Option<bool>,
    /// Absent when `accounts.show_user_roles` is off.
    #[oai(read_only, skip_serializing_if_is_none)]
    pub is_superuser: Option<bool>,
}

impl Example for UserBody {
    fn example() -> Self {
        let u = UserSummaryBody::example();
        Self {
            email: u.email,
            id: u.id,
            username: u.username,
            groups: Some(vec!["manager".into()]),
            is_staff: Some(false),
            is_superuser: Some(false),
        }
    }
}

impl From<ShownUser> for UserBody {
    fn from(shown: ShownUser) -> Self {
        let u = shown.user;
        let roles = shown.roles;
        Self {
            email: u.email,
            id: PublicId(shown.id),
            username: u.username,
            is_staff: roles.as_ref().map(|r| r.is_staff),
            is_superuser: roles.as_ref().map(|r| r.is_superuser),
            groups: roles.map(|r| r.groups),
        }
    }
}

/// A user's `{email, id, username}` only, as Djoser's UserCreateSerializer answers a
/// registration (also the members of a group).
#[derive(Object)]
#[oai(rename = "UserSummary", example)]
pub struct UserSummaryBody {
    pub email: String,
    pub id: PublicId,
    pub username: String,
}

impl Example for UserSummaryBody {
    fn example() -> Self {
        Self {
            email: "alice@example.com".into(),
            id: PublicId(UserRef::Id(Uuid::from_u128(
                0x019a_a7c8_8d34_7c1e_9b3f_2a1d_5e6f_7a8b,
            ))),
            username: "alice".into(),
        }
    }
}

impl UserSummaryBody {
    /// `user` with the public id `accounts.user_id` gives it.
    pub fn of(users: &UserService, user: User) -> Self {
        Self {
            id: PublicId(users.public_id(&user)),
            email: user.email,
            username: user.username,
        }
    }
}

request_body! {
    /// A registration (Djoser's UserCreateSerializer).
    #[oai(rename = "UserCreate", example)]
    pub struct RegisterRequest {
        /// Letters, digits and @/./+/-/_ only; at most 150; unique regardless of case.
        pub username: String = |f| f.required("username"), example: "alice".into();
        /// Checked by Django's four default validators.
        #[oai(write_only)]
        pub password: String = |f| f.required("password"), example: "correct horse battery".into();
        /// Optional; may be blank.
        pub email: Option<String> = |f| f.optional("email", true), example: Some("alice@example.com".into());
        /// Required when `accounts.user_create_password_retype` is on.
        #[oai(write_only)]
        pub re_password: Option<String> = |f| f.optional("re_password", true), example: None;
    }
}

request_body! {
    /// Profile changes; `id`, `username` and the roles are read-only and ignored.
    #[oai(rename = "UserUpdate", example)]
    pub struct UpdateRequest {
        pub email: Option<String> = |f| f.optional("email", true), example: Some("alice@example.org".into());
    }
}

request_body! {
    /// Deletion needs the caller's own password.
    #[oai(rename = "UserDelete", example)]
    pub struct DeleteRequest {
        #[oai(write_only)]
        pub current_password: String = |f| f.required("current_password"), example: "correct horse battery".into();
    }
}

request_body! {
    /// Djoser's action bodies; each reads only its own fields.
    #[oai(rename = "Activation", example)]
    pub struct ActivationRequest {
        pub uid: String = |f| f.required("uid"), example: "MDE5YWE3YzgtOGQzNC03YzFlLTliM2YtMmExZDVlNmY3YThi".into();
        pub token: String = |f| f.required("token"), example: "t5kq2s-0f6c2e7b4a1d9e8f3c5b7a6d4e2f1a0b".into();
    }
}

request_body! {
    #[oai(rename = "SendEmailReset", example)]
    pub struct EmailRequest {
        /// Checked like Django's EmailField.
        pub email: String = |f| f.email("email"), example: "alice@example.com".into();
    }
}

request_body! {
    #[oai(rename = "SetPassword", example)]
    pub struct SetPasswordRequest {
        #[oai(write_only)]
        pub current_password: String = |f| f.required("current_password"), example: "correct horse battery".into();
        #[oai(write_only)]
        pub new_password: String = |f| f.required("new_password"), example: "staple battery horse".into();
        /// Required when `accounts.set_password_retype` is on.
        #[oai(write_only)]
        pub re_new_password: Option<String> = |f| f.optional("re_new_password", true), example: None;
    }
}

request_body! {
    #[oai(rename = "PasswordResetConfirm", example)]
    pub struct ResetPasswordConfirmRequest {
        pub uid: String = |f| f.required("uid"), example: ActivationRequest::example().uid;
        pub token: String = |f| f.required("token"), example: ActivationRequest::example().token;
        #[oai(write_only)]
        pub new_password: String = |f| f.required("new_password"), example: "staple battery horse".into();
        /// Required when `accounts.password_reset_confirm_retype` is on.
        #[oai(write_only)]
        pub re_new_password: Option<String> = |f| f.optional("re_new_password", true), example: None;
    }
}

request_body! {
    #[oai(rename = "SetUsername", example)]
    pub struct SetUsernameRequest {
        #[oai(write_only)]
        pub current_password: String = |f| f.required("current_password"), example: "correct horse battery".into();
        pub new_username: String = |f| f.required("new_username"), example: "alice2".into();
    }
}

request_body! {
    #[oai(rename = "UsernameResetConfirm", example)]
    pub struct ResetUsernameConfirmRequest {
        pub uid: String = |f| f.required("uid"), example: ActivationRequest::example().uid;
        pub token: String = |f| f.required("token"), example: ActivationRequest::example().token;
        pub new_username: String = |f| f.required("new_username"), example: "alice2".into();
    }
}
