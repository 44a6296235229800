//! Staff-only groups and their members.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp, answer, call};

on_every_backend!(
    groups_are_managed_by_staff_only,
    members_join_and_leave_groups,
    access_tokens_carry_the_configured_claims_rebuilt_on_refresh,
    by_default_tokens_carry_no_user_facts_even_for_members,
    deleting_a_user_removes_its_memberships_and_keys,
);

async fn groups_are_managed_by_staff_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    let admin = app.staff().await;
    let forbidden = json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"});
    assert_eq!(
        call(&app, &alice, Method::GET, "/auth/groups/", None).await,
        (StatusCode::FORBIDDEN, forbidden.clone())
    );
    let body = json!({"name": "manager"});
    assert_eq!(
        call(
            &app,
            &alice,
            Method::POST,
            "/auth/groups/",
            Some(body.clone())
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let anonymous = app
        .request(Method::GET, "/auth/groups/")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let created = json!({"name": "manager", "description": "Can approve orders"});
    assert_eq!(
        call(
            &app,
            &admin,
            Method::POST,
            "/auth/groups/",
            Some(created.clone())
        )
        .await,
        (StatusCode::CREATED, created.clone())
    );
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/",
        Some(json!({"name": "manager"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"name": ["group with this name already exists."]})
        )
    );
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/",
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"name": ["This field is required."]})
        )
    );
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/",
        Some(json!({"name": "auditor"})),
    )
    .await;
    let (status, list) = call(&app, &admin, Method::GET, "/auth/groups/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!([{"name": "auditor", "description": ""}, created])
    );

    assert_eq!(
        call(&app, &admin, Method::GET, "/auth/groups/manager/", None).await,
        (StatusCode::OK, created)
    );
    let (status, body) = call(
        &app,
        &admin,
        Method::PATCH,
        "/auth/groups/manager/",
        Some(json!({"description": "Approves"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"name": "manager", "description": "Approves"})
        )
    );
    let (status, body) = call(&app, &admin, Method::GET, "/auth/groups/nope/", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Not found.", "code": "not_found"})
        )
    );
    assert_eq!(
        call(&app, &admin, Method::DELETE, "/auth/groups/auditor/", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, &admin, Method::GET, "/auth/groups/auditor/", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Every group operation is refused to a user who is not staff, and changes nothing.
    let bob = app.register("bob").await;
    let members = "/auth/groups/manager/users/";
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        members,
        Some(json!({"username": bob.username})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let state = || async {
        (
            call(&app, &admin, Method::GET, "/auth/groups/", None).await,
            call(&app, &admin, Method::GET, "/auth/groups/manager/", None).await,
            call(&app, &admin, Method::GET, members, None).await,
        )
    };
    let before = state().await;
    assert_eq!(
        before.0,
        (
            StatusCode::OK,
            json!([{"name": "manager", "description": "Approves"}])
        )
    );
    let attempts = [
        (Method::GET, "/auth/groups/", None),
        (
            Method::POST,
            "/auth/groups/",
            Some(json!({"name": "intruders"})),
        ),
        (Method::GET, "/auth/groups/manager/", None),
        (
            Method::PATCH,
            "/auth/groups/manager/",
            Some(json!({"description": "Hijacked"})),
        ),
        (
            Method::PATCH,
            "/auth/groups/manager/",
            Some(json!({"name": "renamed"})),
        ),
        (Method::DELETE, "/auth/groups/manager/", None),
        (Method::GET, members, None),
        (
            Method::POST,
            members,
            Some(json!({"username": alice.username})),
        ),
        (
            Method::DELETE,
            members,
            Some(json!({"username": bob.username})),
        ),
        // A group that does not exist is refused the same way: no existence oracle.
        (Method::GET, "/auth/groups/nope/", None),
        (Method::DELETE, "/auth/groups/nope/", None),
        (Method::GET, "/auth/groups/nope/users/", None),
    ];
    for (method, path, body) in attempts {
        for who in [&alice, &bob] {
            let label = format!("{method} {path} as {}", who.username);
            assert_eq!(
                call(&app, who, method.clone(), path, body.clone()).await,
                (StatusCode::FORBIDDEN, forbidden.clone()),
                "{label}"
            );
        }
    }
    assert_eq!(state().await, before, "nothing changed");
    let (_, listed) = before.2;
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["username"].clone())
            .collect::<Vec<_>>(),
        vec![json!(bob.username)],
        "bob alone is a member"
    );
}

async fn members_join_and_leave_groups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    let admin = app.staff().await;
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/",
        Some(json!({"name": "manager"})),
    )
    .await;
    let path = "/auth/groups/manager/users/";
    let who = json!({"username": alice.username});
    let (status, body) = call(&app, &admin, Method::POST, path, Some(who.clone())).await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::CREATED, json!(alice.id))
    );
    let (status, members) = call(&app, &admin, Method::GET, path, None).await;
    assert_eq!(
        (status, members.as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    assert_eq!(members[0]["username"], json!(alice.username));
    for (target, body) in [
        ("/auth/groups/manager/users/", json!({"username": "ghost"})),
        ("/auth/groups/ghosts/users/", who.clone()),
    ] {
        let (status, answer_body) = call(&app, &admin, Method::POST, target, Some(body)).await;
        assert_eq!(
            (status, answer_body),
            (
                StatusCode::NOT_FOUND,
                json!({"detail": "Not found.", "code": "not_found"})
            ),
            "{target}"
        );
    }
    assert_eq!(
        call(&app, &alice, Method::POST, path, Some(who.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = call(&app, &admin, Method::POST, path, Some(json!({}))).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"username": ["This field is required."]})
        )
    );

    assert_eq!(
        call(&app, &admin, Method::DELETE, path, Some(who.clone()))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, &admin, Method::DELETE, path, Some(who)).await.0,
        StatusCode::NOT_FOUND,
        "no longer a member"
    );
    assert_eq!(
        call(&app, &admin, Method::GET, path, None).await.1,
        json!([])
    );
}

async fn by_default_tokens_carry_no_user_facts_even_for_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    app.add_to_group(&alice.username, "manager").await;
    let (access, _) = app.login(&alice).await;
    let claims = crate::forge::claims_of(&access);
    let mut names: Vec<&String> = claims.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["cv", "exp", "iat", "jti", "token_type", "user_id"],
        "SimpleJWT's claims and the credential version only"
    );
}

async fn access_tokens_carry_the_configured_claims_rebuilt_on_refresh(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__CLAIMS__GROUPS", "true"),
            ("TESSERA__JWT__CLAIMS__USERNAME", "true"),
            ("TESSERA__JWT__CLAIMS__EMAIL", "true"),
            ("TESSERA__JWT__CLAIMS__IS_STAFF", "true"),
            ("TESSERA__JWT__CLAIMS__IS_SUPERUSER", "true"),
        ],
    )
    .await;
    let alice = app.register("alice").await;
    let admin = app.staff().await;
    for name in ["manager", "auditor"] {
        call(
            &app,
            &admin,
            Method::POST,
            "/auth/groups/",
            Some(json!({"name": name})),
        )
        .await;
    }
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/manager/users/",
        Some(json!({"username": alice.username})),
    )
    .await;
    let (access, refresh) = app.login(&alice).await;
    let claims = crate::forge::claims_of(&access);
    assert_eq!(claims["groups"], json!(["manager"]));
    assert_eq!(claims["username"], json!(alice.username));
    assert_eq!(
        claims["email"],
        json!(format!("{}@example.com", alice.username))
    );
    assert_eq!(
        (claims["is_staff"].clone(), claims["is_superuser"].clone()),
        (json!(false), json!(false))
    );
    assert!(
        crate::forge::claims_of(&refresh).get("groups").is_none(),
        "refresh tokens stay lean"
    );

    // A group change shows on the next refresh.
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/auditor/users/",
        Some(json!({"username": alice.username})),
    )
    .await;
    let (status, body) = answer(
        app.post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let refreshed = crate::forge::claims_of(body["access"].as_str().unwrap());
    assert_eq!(refreshed["groups"], json!(["auditor", "manager"]));
}

async fn deleting_a_user_removes_its_memberships_and_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bob = app.register("bob").await;
    let admin = app.staff().await;
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/",
        Some(json!({"name": "manager"})),
    )
    .await;
    call(
        &app,
        &admin,
        Method::POST,
        "/auth/groups/manager/users/",
        Some(json!({"username": bob.username})),
    )
    .await;
    let key = answer(
        app.post_json(
            "/auth/token/login/",
            json!({"username": bob.username, "password": bob.password}),
        )
        .await,
    )
    .await;
    assert_eq!(key.0, StatusCode::OK);
    let count = || {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        use tessera::store::entities::{auth_token, user_group};
        let db = app.app_state.database.clone();
        let id: uuid::Uuid = bob.id.parse().unwrap();
        async move {
            let memberships = user_group::Entity::find()
                .filter(user_group::Column::UserId.eq(id))
                .count(&db)
                .await
                .unwrap();
            let keys = auth_token::Entity::find()
                .filter(auth_token::Column::UserId.eq(id))
                .count(&db)
                .await
                .unwrap();
            (memberships, keys)
        }
    };
    assert_eq!(count().await, (1, 1));
    let (status, _) = call(
        &app,
        &bob,
        Method::DELETE,
        "/auth/users/me/",
        Some(json!({"current_password": bob.password})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count().await, (0, 0), "nothing of the user is left behind");
}
