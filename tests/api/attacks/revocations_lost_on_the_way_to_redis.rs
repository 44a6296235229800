//! A revocation that reached SQL but not Redis (the writing instance's Redis write failed, and
//! only that instance knew): every other instance kept trusting a Redis that lacked it.
use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, sea_query::Expr};
use serde_json::json;
use tessera::store::entities::{revocation_sequence, revoked_jti};

use crate::{
    forge::claims_of,
    helpers::{Backend, TestApp, eventually, post},
};

on_every_backend!(a_revocation_only_sql_holds_is_honoured_within_a_second);

async fn a_revocation_only_sql_holds_is_honoured_within_a_second(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("lost").await;
    let (_, refresh) = app.login(&user).await;
    let verify = || post(&app, "/api/token/verify/", json!({"token": refresh}));
    // Redis (where there is one) is rebuilt and trusted before the write goes missing.
    eventually(Duration::from_secs(5), "Redis is trusted", || async {
        verify().await.0 == StatusCode::OK && redis_ready(&app).await
    })
    .await;

    // What another instance wrote: the revocation and the sequence, in SQL only.
    let jti = claims_of(&refresh)["jti"].as_str().unwrap().to_owned();
    let db = &app.app_state.database;
    let now = chrono::Utc::now();
    revoked_jti::Model {
        jti: jti.clone(),
        user_id: Some(user.id.parse().unwrap()),
        revoked_at: now,
        expires_at: now + chrono::TimeDelta::days(2),
    }
    .into_active_model()
    .insert(db)
    .await
    .unwrap();
    revocation_sequence::Entity::update_many()
        .col_expr(
            revocation_sequence::Column::Value,
            sea_orm::sea_query::ExprTrait::add(Expr::col(revocation_sequence::Column::Value), 1),
        )
        .exec(db)
        .await
        .unwrap();

    // SimpleJWT answers a blacklisted token at verify with a 400 field error.
    let blacklisted = (
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": ["Token is blacklisted"]}),
    );
    eventually(
        Duration::from_secs(3),
        "the revocation is honoured",
        || async { verify().await == blacklisted },
    )
    .await;
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    if app.redis_prefix.is_some() {
        eventually(Duration::from_secs(3), "Redis is rebuilt", || async {
            app.redis_keys().await.contains(&format!("revoked:{jti}"))
        })
        .await;
    }
}

/// Redis holds the epoch marker: the app trusts it (nothing to wait for without Redis).
async fn redis_ready(app: &TestApp) -> bool {
    match &app.redis_prefix {
        None => true,
        Some(_) => app.redis_keys().await.contains(&"epoch".to_owned()),
    }
}
