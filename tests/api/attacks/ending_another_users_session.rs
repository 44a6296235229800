//! Ending someone else's session by its id, in every spelling of the path: the answer is the
//! 404 of an unknown id (never a 403 that would confirm it exists), and the session still works.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;
use crate::sessions::*;

on_every_backend!(another_users_session_cannot_be_ended_or_confirmed);

async fn another_users_session_cannot_be_ended_or_confirmed(backend: Backend) {
    let app = sessions_app(backend).await;
    let victim = app.register("victim").await;
    let (access, refresh) = jwt_login(&app, &victim, "Phone").await;
    let victim_key = key_login(&app, &victim, "Laptop").await;
    let attacker = app.register("attacker").await;
    let (own, _) = jwt_login(&app, &attacker, "Evil").await;
    let listed = sessions_of(&app, &bearer(&access)).await;
    let unknown = json!({"detail": "No Session matches the given query.", "code": "not_found"});

    for session in &listed {
        let id = session["id"].as_str().unwrap();
        for path in [
            format!("/auth/sessions/{id}/"),
            format!("/auth/sessions/{id}"),
            format!("/auth/sessions/{}/", id.to_uppercase()),
            format!("/auth/sessions/{{{id}}}/"),
            format!("/auth/sessions/{}/", id.replace('-', "")),
            format!("/auth/sessions//{id}/"),
        ] {
            let (status, body) = with_auth(&app, &bearer(&own), Method::DELETE, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert!(
                body == unknown || body["detail"] == "Not found.",
                "{path}: {body}"
            );
        }
        // The same through the staff path, by a non-staff caller: 403 for every id alike.
        let path = format!("/auth/users/{}/sessions/{id}/", victim.id);
        let (status, _) = with_auth(&app, &bearer(&own), Method::DELETE, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // An unknown id answers exactly like the victim's: nothing to tell them apart.
    let path = format!("/auth/sessions/{}/", uuid::Uuid::new_v4());
    let (status, body) = with_auth(&app, &bearer(&own), Method::DELETE, &path).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, unknown));
    // "All but current" of the attacker ends only the attacker's own.
    let (status, _) = with_auth(&app, &bearer(&own), Method::DELETE, "/auth/sessions/").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    jwt_works(&app, &access, &refresh).await;
    assert_eq!(me(&app, &token(&victim_key)).await.0, StatusCode::OK);

    // The owner's own upper-case spelling names the same session (UUIDs are case-insensitive).
    let id = listed[0]["id"].as_str().unwrap().to_uppercase();
    let (status, _) = with_auth(
        &app,
        &token(&victim_key),
        Method::DELETE,
        &format!("/auth/sessions/{id}"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
