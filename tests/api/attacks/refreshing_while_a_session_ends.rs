//! A burst of refreshes of a session's refresh token (with a reuse grace, so a closed token
//! has a second way in) racing the session's end: afterwards no token of the family works, not
//! the ones the burst won either. A child inserted by a rotation that committed while the end
//! was closing the family must be closed too (`close_family` repeats its pass until it closes
//! nothing).
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;
use crate::sessions::*;

on_every_backend!(no_token_of_an_ended_session_survives_a_refresh_burst);

async fn no_token_of_an_ended_session_survives_a_refresh_burst(backend: Backend) {
    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("TESSERA__JWT__REUSE_GRACE", "30s"));
    let app = sessions_app_with(backend, &settings).await;
    let user = app.register("racer").await;
    let (keeper, _) = jwt_login(&app, &user, "Keeper").await;
    // Two refreshes: one rotation and one grace use, both legitimate, racing the end; sixteen:
    // reuse detection joins the race (and may end the family before the end does: 404).
    for (round, burst) in [2, 2, 2, 16, 16].into_iter().enumerate() {
        let (access, refresh) = jwt_login(&app, &user, "Racer").await;
        let path = format!("/auth/sessions/{}/", sid(&access));
        let refreshes: Vec<_> = (0..burst)
            .map(|_| {
                let send = app
                    .request(Method::POST, "/api/token/refresh/")
                    .json(&json!({"refresh": refresh}))
                    .send();
                tokio::spawn(async move { answer(send.await.unwrap()).await })
            })
            .collect();
        // Let some refreshes get ahead of the end, into the middle of their rotation.
        tokio::time::sleep(Duration::from_millis(2 * round as u64)).await;
        let (status, body) = with_auth(&app, &bearer(&keeper), Method::DELETE, &path).await;
        if burst == 2 {
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        } else {
            assert!(matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_FOUND), "{body}");
        }

        let mut tokens = vec![(access, refresh)];
        for refreshed in refreshes {
            let (status, body) = refreshed.await.unwrap();
            if status == StatusCode::OK {
                tokens.push((
                    body["access"].as_str().unwrap().to_owned(),
                    body["refresh"].as_str().unwrap().to_owned(),
                ));
            }
        }
        for (access, refresh) in &tokens {
            // Each token of the family, once more through the grace and at Bearer.
            let (status, body) =
                post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "round {round}: a refresh token lives on: {body}"
            );
            let (status, _) = me(&app, &bearer(access)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "round {round}: an access token lives on"
            );
        }
        assert_eq!(
            sessions_of(&app, &bearer(&keeper)).await.len(),
            1,
            "round {round}"
        );
    }
}

async fn sessions_app_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(backend, settings).await
}
