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

on_every_backend!(
    no_token_of_an_ended_session_survives_a_refresh_burst,
    a_rotation_committing_while_the_family_closes_is_closed_too,
);

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
            assert!(
                matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_FOUND),
                "{body}"
            );
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
        // Access tokens first (checking them changes nothing), then the refresh tokens newest
        // first: presenting an older one would be reuse, which revokes the family by itself.
        for (access, _) in &tokens {
            let (status, _) = me(&app, &bearer(access)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "round {round}: an access token lives on"
            );
        }
        for (_, refresh) in tokens.iter().rev() {
            let (status, body) =
                post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "round {round}: a refresh token lives on: {body}"
            );
        }
        assert_eq!(
            sessions_of(&app, &bearer(&keeper)).await.len(),
            1,
            "round {round}"
        );
    }
}

/// The burst above rarely lands a rotation's commit inside the end's closing pass; this holds a
/// rotation open (parent claimed, child inserted, not committed) while the family is revoked,
/// then commits it: the child must come out closed, its one grace use spent.
async fn a_rotation_committing_while_the_family_closes_is_closed_too(backend: Backend) {
    use sea_orm::{
        ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr,
    };
    use tessera::store::entities::outstanding_token as ledger;

    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("TESSERA__JWT__REUSE_GRACE", "30s"));
    let app = sessions_app_with(backend, &settings).await;
    let user = app.register("holder").await;
    let (access, refresh) = jwt_login(&app, &user, "Racer").await;
    let family = uuid::Uuid::parse_str(&sid(&access)).unwrap();
    let parent = crate::forge::claims_of(&refresh)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    // The child a rotation of `parent` is recording, as a signed refresh token.
    let now = chrono::Utc::now();
    let child = uuid::Uuid::new_v4().simple().to_string();
    let child_token = crate::forge::forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"token_type": "refresh", "exp": now.timestamp() + 3600, "iat": now.timestamp(),
                "jti": child, "user_id": user.id}),
        SIGNING_KEY.as_bytes(),
    );

    let db = &app.app_state.database;
    let rotation = db.begin().await.unwrap();
    ledger::Entity::update_many()
        .col_expr(ledger::Column::RotatedAt, Expr::value(now))
        .filter(ledger::Column::Jti.eq(parent.clone()))
        .exec(&rotation)
        .await
        .unwrap();
    ledger::Entity::insert(ledger::ActiveModel {
        jti: Set(child.clone()),
        user_id: Set(uuid::Uuid::parse_str(&user.id).unwrap()),
        family: Set(family),
        parent_jti: Set(Some(parent)),
        access_jti: Set(String::new()),
        access_expires_at: Set(now),
        token_sha256: Set(tessera::crypto::sha256_hex(&child_token)),
        created_at: Set(now),
        expires_at: Set(now + chrono::TimeDelta::hours(1)),
        rotated_at: Set(None),
        grace_used: Set(false),
    })
    .exec_without_returning(&rotation)
    .await
    .unwrap();
    let tokens = app.app_state.tokens.clone();
    let closing = tokio::spawn(async move { tokens.revoke_family(family).await });
    // The close is now waiting for the rotation's row lock (or SQLite's write lock).
    tokio::time::sleep(Duration::from_millis(300)).await;
    rotation.commit().await.unwrap();
    closing.await.unwrap().unwrap();

    let row = ledger::Entity::find_by_id(child)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.rotated_at.is_some() && row.grace_used,
        "the child is closed: {row:?}"
    );
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": child_token})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the racing child lives on: {body}"
    );
}

async fn sessions_app_with(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(backend, settings).await
}
