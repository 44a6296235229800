//! A refresh token minted elsewhere (a Django service on the shared key) that carries a `sid`
//! of its choosing: the tokens Tessera makes from it never carry that `sid` (Tessera writes the
//! claim from its ledger), so it cannot pass for another session, with or without rotation.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::forge::{claims_of, forge};
use crate::helpers::*;
use crate::sessions::*;

on_every_backend!(
    a_forged_sid_is_replaced_on_rotation,
    a_forged_sid_is_dropped_without_rotation,
);

fn django_refresh(user: &TestUser, sid: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"token_type": "refresh", "exp": now + 3600, "iat": now,
                "jti": uuid::Uuid::new_v4().simple().to_string(),
                "user_id": user.id, "sid": sid, "tenant": "acme"}),
        SIGNING_KEY.as_bytes(),
    )
}

async fn a_forged_sid_is_replaced_on_rotation(backend: Backend) {
    let app = sessions_app(backend).await;
    let user = app.register("forger").await;
    let (access, _) = jwt_login(&app, &user, "Real").await;
    let target = sid(&access);
    let (status, body) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": django_refresh(&user, &target)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for token in [&body["access"], &body["refresh"]] {
        let claims = claims_of(token.as_str().unwrap());
        assert_ne!(claims["sid"], Value::String(target.clone()), "{claims}");
        assert_eq!(
            claims["tenant"], "acme",
            "a project's own claims are still carried"
        );
    }
    // The adopted token is a session of its own, the current one for its tokens.
    let listed = sessions_of(&app, &bearer(body["access"].as_str().unwrap())).await;
    assert_eq!(listed.len(), 2);
    let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_ne!(current[0]["id"], Value::String(target));
}

async fn a_forged_sid_is_dropped_without_rotation(backend: Backend) {
    let mut settings = SESSIONS_ON.to_vec();
    settings.push(("TESSERA__JWT__ROTATE_REFRESH_TOKENS", "false"));
    let app = TestApp::spawn_with(backend, &settings).await;
    let user = app.register("forger").await;
    let (access, _) = jwt_login(&app, &user, "Real").await;
    let target = sid(&access);
    let (status, body) = post(
        &app,
        "/api/token/refresh/",
        json!({"refresh": django_refresh(&user, &target)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = claims_of(body["access"].as_str().unwrap());
    assert!(
        claims.get("sid").is_none(),
        "not in the ledger: no session, {claims}"
    );
    let listed = sessions_of(&app, &bearer(body["access"].as_str().unwrap())).await;
    assert!(listed.iter().all(|s| s["current"] == false));
}
