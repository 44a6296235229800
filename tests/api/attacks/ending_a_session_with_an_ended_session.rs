//! An access token whose session was ended, used to end the others: it authenticates nothing.
use reqwest::{Method, StatusCode};

use crate::helpers::*;
use crate::sessions::*;

on_every_backend!(an_ended_sessions_access_token_ends_nothing);

async fn an_ended_sessions_access_token_ends_nothing(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("ghost").await;
    let (stolen, _) = jwt_login(&app, &user, "Stolen").await;
    let (access, refresh) = jwt_login(&app, &user, "Mine").await;
    let path = format!("/auth/sessions/{}/", sid(&stolen));
    let (status, _) = with_auth(&app, &bearer(&access), Method::DELETE, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mine = format!("/auth/sessions/{}/", sid(&access));
    for (method, path) in [
        (Method::DELETE, "/auth/sessions/"),
        (Method::DELETE, mine.as_str()),
        (Method::GET, "/auth/sessions/"),
    ] {
        let (status, body) = with_auth(&app, &bearer(&stolen), method, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["code"], "token_not_valid");
    }
    jwt_works(&app, &access, &refresh).await;
}
