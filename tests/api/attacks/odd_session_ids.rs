//! Session and user ids no UUID parser expects: huge, empty, encoded, negative, numeric. A 400
//! or 404 for each, never a 500, and nothing ended.
use reqwest::{Method, StatusCode};

use crate::helpers::*;
use crate::sessions::*;

on_every_backend!(odd_session_ids_are_not_found_and_end_nothing);

async fn odd_session_ids_are_not_found_and_end_nothing(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("odd").await;
    let (access, refresh) = jwt_login(&app, &user, "Phone").await;
    let admin = app.staff().await;
    let huge = "f".repeat(8_000);
    // (`..` and `%2e%2e` are resolved by the client's URL parser before sending: not tried.)
    let odd = [
        huge.as_str(),
        "0",
        "-1",
        "99999999999999999999999999",
        "null",
        "%00",
        "%2E%2E%2F",
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "urn:uuid:00000000-0000-0000-0000-000000000000",
        "%E2%80%8B",
        "' OR 1=1 --",
    ];
    for id in odd {
        for path in [
            format!("/auth/sessions/{id}/"),
            format!("/auth/users/{}/sessions/{id}/", user.id),
            format!("/auth/users/{id}/sessions/"),
        ] {
            let (status, body) = if path.starts_with("/auth/users/") {
                call(&app, &admin, Method::DELETE, &path, None).await
            } else {
                with_auth(&app, &bearer(&access), Method::DELETE, &path).await
            };
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
                "{}: {status} {body}",
                &path[..path.len().min(80)]
            );
        }
    }
    jwt_works(&app, &access, &refresh).await;
}
