//! The request and response bodies of `/auth/users/`: Djoser's serializers as OpenAPI schemas.
use poem_openapi::{Object, types::Example};
use uuid::Uuid;

use crate::{
    domain::{roles::ShownUser, users::User},
    http::body::{Fields, FromFields},
};

/// A user as Djoser's UserSerializer shows it, with its roles unless
/// `accounts.show_user_roles` is off.
#[derive(Object)]
#[oai(rename = "User", example)]
pub struct UserBody {
    pub email: String,
    pub id: Uuid,
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
            id: u.id,
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
    pub id: Uuid,
    pub username: String,
}

impl Example for UserSummaryBody {
    fn example() -> Self {
        Self {
            email: "alice@example.com".into(),
            id: Uuid::from_u128(0x019a_a7c8_8d34_7c1e_9b3f_2a1d_5e6f_7a8b),
            username: "alice".into(),
        }
    }
}

impl From<User> for UserSummaryBody {
    fn from(u: User) -> Self {
        Self {
            email: u.email,
            id: u.id,
            username: u.username,
        }
    }
}

/// A registration (Djoser's UserCreateSerializer).
#[derive(Object)]
#[oai(rename = "UserCreate", example)]
pub struct RegisterRequest {
    /// Letters, digits and @/./+/-/_ only; at most 150; unique regardless of case.
    pub username: String,
    /// Checked by Django's four default validators.
    #[oai(write_only)]
    pub password: String,
    /// Optional; may be blank.
    pub email: Option<String>,
    /// Required when `accounts.user_create_password_retype` is on.
    #[oai(write_only)]
    pub re_password: Option<String>,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            username: "alice".into(),
            password: "correct horse battery".into(),
            email: Some("alice@example.com".into()),
            re_password: None,
        }
    }
}

impl FromFields for RegisterRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            username: f.required("username"),
            password: f.required("password"),
            email: f.optional("email", true),
            re_password: f.optional("re_password", true),
        }
    }
}

/// Profile changes; `id`, `username` and the roles are read-only and ignored.
#[derive(Object)]
#[oai(rename = "UserUpdate", example)]
pub struct UpdateRequest {
    pub email: Option<String>,
}

impl Example for UpdateRequest {
    fn example() -> Self {
        Self {
            email: Some("alice@example.org".into()),
        }
    }
}

impl FromFields for UpdateRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            email: f.optional("email", true),
        }
    }
}

/// Deletion needs the caller's own password.
#[derive(Object)]
#[oai(rename = "UserDelete", example)]
pub struct DeleteRequest {
    #[oai(write_only)]
    pub current_password: String,
}

impl Example for DeleteRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
        }
    }
}

impl FromFields for DeleteRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
        }
    }
}

/// Djoser's action bodies; each reads only its own fields.
#[derive(Object)]
#[oai(rename = "Activation", example)]
pub struct ActivationRequest {
    pub uid: String,
    pub token: String,
}

impl Example for ActivationRequest {
    fn example() -> Self {
        Self {
            uid: "MDE5YWE3YzgtOGQzNC03YzFlLTliM2YtMmExZDVlNmY3YThi".into(),
            token: "t5kq2s-0f6c2e7b4a1d9e8f3c5b7a6d4e2f1a0b".into(),
        }
    }
}

impl FromFields for ActivationRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SendEmailReset", example)]
pub struct EmailRequest {
    pub email: String,
}

impl Example for EmailRequest {
    fn example() -> Self {
        Self {
            email: "alice@example.com".into(),
        }
    }
}

impl FromFields for EmailRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            email: f.required("email"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SetPassword", example)]
pub struct SetPasswordRequest {
    #[oai(write_only)]
    pub current_password: String,
    #[oai(write_only)]
    pub new_password: String,
    /// Required when `accounts.set_password_retype` is on.
    #[oai(write_only)]
    pub re_new_password: Option<String>,
}

impl Example for SetPasswordRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
            new_password: "staple battery horse".into(),
            re_new_password: None,
        }
    }
}

impl FromFields for SetPasswordRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
            new_password: f.required("new_password"),
            re_new_password: f.optional("re_new_password", true),
        }
    }
}

#[derive(Object)]
#[oai(rename = "PasswordResetConfirm", example)]
pub struct ResetPasswordConfirmRequest {
    pub uid: String,
    pub token: String,
    #[oai(write_only)]
    pub new_password: String,
    /// Required when `accounts.password_reset_confirm_retype` is on.
    #[oai(write_only)]
    pub re_new_password: Option<String>,
}

impl Example for ResetPasswordConfirmRequest {
    fn example() -> Self {
        let a = ActivationRequest::example();
        Self {
            uid: a.uid,
            token: a.token,
            new_password: "staple battery horse".into(),
            re_new_password: None,
        }
    }
}

impl FromFields for ResetPasswordConfirmRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
            new_password: f.required("new_password"),
            re_new_password: f.optional("re_new_password", true),
        }
    }
}

#[derive(Object)]
#[oai(rename = "SetUsername", example)]
pub struct SetUsernameRequest {
    #[oai(write_only)]
    pub current_password: String,
    pub new_username: String,
}

impl Example for SetUsernameRequest {
    fn example() -> Self {
        Self {
            current_password: "correct horse battery".into(),
            new_username: "alice2".into(),
        }
    }
}

impl FromFields for SetUsernameRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            current_password: f.required("current_password"),
            new_username: f.required("new_username"),
        }
    }
}

#[derive(Object)]
#[oai(rename = "UsernameResetConfirm", example)]
pub struct ResetUsernameConfirmRequest {
    pub uid: String,
    pub token: String,
    pub new_username: String,
}

impl Example for ResetUsernameConfirmRequest {
    fn example() -> Self {
        let a = ActivationRequest::example();
        Self {
            uid: a.uid,
            token: a.token,
            new_username: "alice2".into(),
        }
    }
}

impl FromFields for ResetUsernameConfirmRequest {
    fn read(f: &mut Fields) -> Self {
        Self {
            uid: f.required("uid"),
            token: f.required("token"),
            new_username: f.required("new_username"),
        }
    }
}
