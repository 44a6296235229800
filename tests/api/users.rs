//! Djoser's /auth/users/ endpoints, on every backend.
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, TestUser, answer};

on_every_backend!(
    registration_returns_the_user_and_the_user_can_authenticate,
    registration_accepts_form_bodies_and_trims_fields,
    multipart_bodies_are_read_like_drfs_multipart_parser,
    registration_reports_missing_blank_and_mistyped_fields,
    registration_validates_username_and_email,
    registration_lists_every_failing_password_rule,
    registration_refuses_a_username_taken_in_any_case,
    list_shows_everyone_to_staff_and_only_themselves_to_others,
    list_paginates_when_a_page_size_is_set,
    me_can_be_read_updated_and_deleted,
    user_detail_visibility_for_owner_other_and_staff,
    deleting_others_needs_staff_and_the_staffs_own_password,
    missing_or_bad_credentials_answer_401_with_a_challenge,
    bad_bodies_answer_drf_shaped_4xx,
    health_probes_answer,
    an_unreachable_redis_degrades_readiness_unless_it_is_required,
    a_deactivation_elsewhere_shows_within_the_user_cache_ttl,
    user_bodies_show_sorted_groups_and_staff_flags,
    paginated_lists_show_roles_of_every_user_on_the_page,
    roles_sent_in_put_or_patch_are_ignored,
    show_user_roles_off_answers_djosers_three_keys,
    membership_changes_show_in_me_at_once,
);

/// Bodies with roles (`groups`, `is_staff`, `is_superuser`), which are opt-in.
const ROLES: &[(&str, &str)] = &[("TESSERA__ACCOUNTS__SHOW_USER_ROLES", "true")];

async fn registration_returns_the_user_and_the_user_can_authenticate(backend: Backend) {
    let app = TestApp::spawn_with(backend, ROLES).await;
    let (status, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "no password or other fields leak: {body}"
    );

    let (status, me) = answer(
        app.request(Method::GET, "/auth/users/me/")
            .basic_auth("alice", Some(PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        merged(&body, roles(&[], false)),
        "me is the registered user with its (read-only) roles"
    );

    // Email is optional and stored blank; extra fields such as is_staff are ignored.
    let (status, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "bob", "password": PASSWORD, "is_staff": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["email"], "");
    let (status, list) = answer(
        app.request(Method::GET, "/auth/users/")
            .basic_auth("bob", Some(PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "bob is not staff: {list}"
    );
}

/// A `multipart/form-data` body with these text parts, and a file part when `file` names one.
fn multipart(parts: &[(&str, &str)], file: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "tessera-boundary-7d3f";
    let mut body = String::new();
    for (name, value) in parts {
        body += &format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
    }
    if let Some(name) = file {
        body += &format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"p.txt\"\r\nContent-Type: text/plain\r\n\r\nsecret\r\n"
        );
    }
    body += &format!("--{boundary}--\r\n");
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

async fn multipart_bodies_are_read_like_drfs_multipart_parser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let send = |path: &'static str, (content_type, body): (String, Vec<u8>)| {
        let request = app
            .request(Method::POST, path)
            .header("Content-Type", content_type)
            .body(body);
        async move { answer(request.send().await.unwrap()).await }
    };
    let (status, body) = send(
        "/auth/users/",
        multipart(&[("username", " mona "), ("password", PASSWORD)], None),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], "mona");
    let (status, body) = send(
        "/api/token/",
        multipart(&[("username", "mona"), ("password", PASSWORD)], None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access"].is_string());
    // A file where text is expected is a field error, never read as the password.
    let (status, body) = send(
        "/api/token/",
        multipart(&[("username", "mona")], Some("password")),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"password": ["Not a valid string."]})
        )
    );
    // A broken body (no boundary, or parts that never end) is a 400 parse error, never a 500.
    for (content_type, raw) in [
        ("multipart/form-data", "username=x".to_owned()),
        (
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nx".to_owned(),
        ),
    ] {
        let (status, body) = send("/api/token/", (content_type.into(), raw.into_bytes())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type}: {body}");
        assert_eq!(body["code"], json!("parse_error"), "{body}");
    }
}

async fn registration_accepts_form_bodies_and_trims_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .request(Method::POST, "/auth/users/")
        .form(&[
            ("username", "  padme "),
            ("password", "  correct horse battery  "),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], "padme");
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .basic_auth("padme", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the stored password is the trimmed one"
    );
}

async fn registration_reports_missing_blank_and_mistyped_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = answer(app.post_json("/auth/users/", json!({})).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );

    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "  ", "password": null, "email": null}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({
            "username": ["This field may not be blank."],
            "password": ["This field may not be null."],
            "email": ["This field may not be null."],
        })
    );
    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": ["x"], "password": {"a": 1}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"username": ["Not a valid string."], "password": ["Not a valid string."]})
    );
    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "a\u{0}b", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"username": ["Null characters are not allowed."]})
    );
}

async fn registration_validates_username_and_email(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let chars = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
    for bad in ["a b", "ab!", "semi;colon"] {
        let (status, body) = answer(
            app.post_json(
                "/auth/users/",
                json!({"username": bad, "password": PASSWORD}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({"username": [chars]}), "{bad}");
    }
    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "a".repeat(151), "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"username": ["Ensure this field has no more than 150 characters."]})
    );
    let (status, _) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "b".repeat(150), "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "Jürgen.o+k@x-y_z", "password": PASSWORD}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    for bad in ["not-an-email", "x@y.z", "a@b@c.com"] {
        let (status, body) = answer(
            app.post_json(
                "/auth/users/",
                json!({"username": "carol", "password": PASSWORD, "email": bad}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"email": ["Enter a valid email address."]}),
            "{bad}"
        );
    }
    // Field errors come first; password rules run only once the fields are valid (as in DRF).
    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "a b", "password": "123", "email": "no"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"username": [chars], "email": ["Enter a valid email address."]})
    );
}

async fn registration_lists_every_failing_password_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            "bob",
            json!("123"),
            json!([
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric."
            ]),
        ),
        (
            "bob12345x",
            json!("bob12345"),
            json!([
                "The password is too similar to the username.",
                "This password is too common."
            ]),
        ),
        (
            "zebrafinch77",
            json!("ZebraFinch77"),
            json!(["The password is too similar to the username."]),
        ),
        (
            "dave",
            json!(12345678),
            json!([
                "This password is too common.",
                "This password is entirely numeric."
            ]),
        ),
        (
            "erin",
            json!("x".repeat(4096)),
            json!(["This password is too long. It must contain fewer than 4096 bytes."]),
        ),
    ];
    for (username, password, expected) in cases {
        let (status, body) = answer(
            app.post_json(
                "/auth/users/",
                json!({"username": username, "password": password}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{username}");
        assert_eq!(body, json!({"password": expected}), "{username}");
    }
    let (_, body) = answer(
        app.post_json(
            "/auth/users/",
            json!({"username": "frank", "password": "kingfisher-42", "email": "kingfisher-42@example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        body,
        json!({"password": ["The password is too similar to the email address."]})
    );
}

async fn registration_refuses_a_username_taken_in_any_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("taken").await;
    for name in [user.username.clone(), user.username.to_uppercase()] {
        let (status, body) = answer(
            app.post_json(
                "/auth/users/",
                json!({"username": name, "password": PASSWORD}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"username": ["A user with that username already exists."]})
        );
    }
    // Logins still match exactly.
    let response = app
        .request(Method::GET, "/auth/users/me/")
        .basic_auth(user.username.to_uppercase(), Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn list_shows_everyone_to_staff_and_only_themselves_to_others(backend: Backend) {
    let app = TestApp::spawn_with(backend, ROLES).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.staff().await;

    let (status, list) = answer(
        alice
            .auth(app.request(Method::GET, "/auth/users/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!([{"email": format!("{}@example.com", alice.username), "id": alice.id, "username": alice.username,
                "groups": [], "is_staff": false, "is_superuser": false}])
    );

    let (status, list) = answer(
        admin
            .auth(app.request(Method::GET, "/auth/users/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![alice.id.as_str(), bob.id.as_str(), admin.id.as_str()],
        "ordered by creation"
    );
}

async fn list_paginates_when_a_page_size_is_set(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__USERS__PAGE_SIZE", "2")]).await;
    let admin = app.staff().await;
    for _ in 0..4 {
        app.register("u").await;
    }
    let get = |path: &str| admin.auth(app.request(Method::GET, path)).send();
    let (status, page) = answer(get("/auth/users/").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["count"], 5);
    assert_eq!(page["previous"], json!(null));
    assert_eq!(
        page["next"],
        json!(format!("{}/auth/users/?page=2", app.base))
    );
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let (_, page) = answer(get("/auth/users/?page=2").await.unwrap()).await;
    assert_eq!(page["previous"], json!(format!("{}/auth/users/", app.base)));
    let (_, page) = answer(get("/auth/users/?page=last").await.unwrap()).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], json!(null));
    for bad in ["0", "4", "abc", "-1"] {
        let (status, body) = answer(get(&format!("/auth/users/?page={bad}")).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(
            body,
            json!({"detail": "Invalid page.", "code": "not_found"})
        );
    }
}

async fn me_can_be_read_updated_and_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, ROLES).await;
    let carol = app.register("carol").await;
    let me = |m: Method| carol.auth(app.request(m, "/auth/users/me/"));

    let (status, body) = answer(
        me(Method::PUT)
            .json(&json!({"email": "c@y.zz", "username": "other", "id": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"email": "c@y.zz", "id": carol.id, "username": carol.username,
               "groups": [], "is_staff": false, "is_superuser": false}),
        "id and username are read-only"
    );
    let (status, body) = answer(me(Method::PATCH).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "c@y.zz", "an empty PATCH changes nothing");
    let (status, body) = answer(
        me(Method::PATCH)
            .json(&json!({"email": "nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"email": ["Enter a valid email address."]}));
    let (status, body) = answer(
        me(Method::PATCH)
            .json(&json!({"email": ""}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["email"].clone()), (StatusCode::OK, json!("")));
    let (_, body) = answer(me(Method::GET).send().await.unwrap()).await;
    assert_eq!(body["email"], "", "the change was stored");

    let (status, body) = answer(me(Method::DELETE).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"current_password": ["This field is required."]})
    );
    let (status, body) = answer(
        me(Method::DELETE)
            .json(&json!({"current_password": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"current_password": ["Invalid password."]}));
    let response = me(Method::DELETE)
        .json(&json!({"current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = answer(me(Method::GET).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"detail": "Invalid username/password.", "code": "authentication_failed"})
    );

    let (status, body) = answer(
        app.register("dan")
            .await
            .auth(app.request(Method::POST, "/auth/users/me/"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body,
        json!({"detail": "Method \"POST\" not allowed.", "code": "method_not_allowed"})
    );
}

async fn user_detail_visibility_for_owner_other_and_staff(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.staff().await;
    let path = |id: &str| format!("/auth/users/{id}/");

    let (status, body) = answer(
        alice
            .auth(app.request(Method::GET, &path(&alice.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, json!(alice.username))
    );
    for method in [Method::GET, Method::PATCH] {
        let (status, body) = answer(
            alice
                .auth(app.request(method, &path(&bob.id)))
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"detail": "Not found.", "code": "not_found"}),
            "another user is hidden"
        );
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, body) = answer(
        alice
            .auth(app.request(Method::GET, &path(&unknown)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"detail": "No User matches the given query.", "code": "not_found"})
    );
    let (status, body) = answer(
        alice
            .auth(app.request(Method::GET, &path("abc")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Not found.", "code": "not_found"})
        )
    );

    let (status, body) = answer(
        admin
            .auth(app.request(Method::GET, &path(&bob.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(bob.id))
    );
    let (status, body) = answer(
        admin
            .auth(app.request(Method::PUT, &path(&bob.id)))
            .json(&json!({"email": "b@example.org"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["email"].clone()),
        (StatusCode::OK, json!("b@example.org"))
    );
    // Without the trailing slash the same resource answers.
    let response = admin
        .auth(app.request(Method::GET, &format!("/auth/users/{}", bob.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn deleting_others_needs_staff_and_the_staffs_own_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.staff().await;
    let delete = |who: &crate::helpers::TestUser, id: &str, password: &str| {
        who.auth(app.request(Method::DELETE, &format!("/auth/users/{id}/")))
            .json(&json!({"current_password": password}))
            .send()
    };
    let (status, body) = answer(delete(&alice, &bob.id, PASSWORD).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"})
    );
    let (status, _) = answer(delete(&admin, &bob.id, "not the admin's").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = answer(delete(&admin, &bob.id, PASSWORD).await.unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = answer(
        admin
            .auth(app.request(Method::GET, &format!("/auth/users/{}/", bob.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "No User matches the given query.", "code": "not_found"})
        )
    );
}

async fn missing_or_bad_credentials_answer_401_with_a_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.register("eve").await;
    let me = || app.request(Method::GET, "/auth/users/me/");
    let not_provided = json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"});
    let cases = [
        (me(), not_provided.clone()),
        (me().header("Authorization", ""), not_provided.clone()),
        (
            me().header("Authorization", "Digest abc"),
            not_provided.clone(),
        ),
        (
            me().header("Authorization", "Basic"),
            json!({"detail": "Invalid basic header. No credentials provided.", "code": "authentication_failed"}),
        ),
        (
            me().header("Authorization", "Basic a b"),
            json!({"detail": "Invalid basic header. Credentials string should not contain spaces.", "code": "authentication_failed"}),
        ),
        (
            me().header("Authorization", "Basic !!!x"),
            json!({"detail": "Invalid basic header. Credentials not correctly base64 encoded.", "code": "authentication_failed"}),
        ),
        (
            me().header("Authorization", "Basic bm9jb2xvbg=="),
            json!({"detail": "Invalid basic header. Credentials not correctly base64 encoded.", "code": "authentication_failed"}),
        ),
        (
            me().basic_auth(&user.username, Some("wrong")),
            json!({"detail": "Invalid username/password.", "code": "authentication_failed"}),
        ),
        (
            me().basic_auth("nobody-at-all", Some(PASSWORD)),
            json!({"detail": "Invalid username/password.", "code": "authentication_failed"}),
        ),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="api""#
        );
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(answer(response).await.1, expected);
    }
    let response = me()
        .header(
            "Authorization",
            format!("basic {}", b64(&format!("{}:{}", user.username, PASSWORD))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn bad_bodies_answer_drf_shaped_4xx(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__SERVER__BODY_LIMIT", "4096")]).await;
    let post = |content_type: &str, body: Vec<u8>| {
        app.request(Method::POST, "/auth/users/")
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let (status, body) = answer(post("application/json", b"{\"a\":".to_vec()).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{body}"
    );
    let (status, body) = answer(post("text/plain", b"hello".to_vec()).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        body,
        json!({"detail": "Unsupported media type \"text/plain\" in request.", "code": "unsupported_media_type"})
    );
    for (raw, kind) in [("[1]", "list"), ("\"x\"", "str"), ("3", "int")] {
        let (status, body) = answer(
            post("application/json", raw.as_bytes().to_vec())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {kind}.")]})
        );
    }
    let (_, body) = answer(post("application/json", b"null".to_vec()).await.unwrap()).await;
    assert_eq!(body, json!({"non_field_errors": ["No data provided"]}));
    let big = format!("{{\"username\": \"{}\"}}", "a".repeat(5000));
    let (status, body) = answer(post("application/json", big.into_bytes()).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        json!({"detail": "Request body is too large.", "code": "payload_too_large"})
    );
    // A chunked body without Content-Length is bounded too.
    assert!(
        raw_chunked_post(&app, 6000)
            .await
            .starts_with("HTTP/1.1 413")
    );
    let (status, body) = answer(
        app.request(Method::PUT, "/auth/users/")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"detail": "Method \"PUT\" not allowed.", "code": "method_not_allowed"})
        )
    );
    let (status, body) = answer(app.request(Method::GET, "/nowhere/").send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "Not found.", "code": "not_found"})
        )
    );
}

/// Sends a chunked POST by hand (no Content-Length) and returns the raw answer.
async fn raw_chunked_post(app: &TestApp, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = "POST /auth/users/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n0\r\n\r\n", "a".repeat(size));
    let _ = stream.write_all(chunk.as_bytes()).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn health_probes_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = answer(
        app.request(Method::GET, "/health/live")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, body) = answer(
        app.request(Method::GET, "/health/ready")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let expected = match backend {
        Backend::Sqlite => json!({"status": "ok", "database": "ok"}),
        Backend::Postgres => json!({"status": "ok", "database": "ok", "redis": "ok"}),
    };
    assert_eq!(body, expected);
}

async fn an_unreachable_redis_degrades_readiness_unless_it_is_required(backend: Backend) {
    // Port 9 (discard) is closed here: every Redis call fails fast.
    let redis_down = ("REDIS_URL", "redis://127.0.0.1:9/0");
    let app = TestApp::spawn_with(backend, &[redis_down]).await;
    let ready = || async {
        answer(
            app.request(Method::GET, "/health/ready")
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, body) = ready().await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "degraded", "database": "ok", "redis": "unavailable"})
        ),
        "serving from SQL: a Redis outage must not pull the instance out of the load balancer"
    );
    // The instance really serves: a registration and a login go through.
    let user = app.register("degraded").await;
    app.login(&user).await;

    let app = TestApp::spawn_with(
        backend,
        &[redis_down, ("TESSERA__HEALTH__REDIS_REQUIRED", "true")],
    )
    .await;
    let response = app
        .request(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "ok", "redis": "unavailable"})
        ),
        "health.redis_required makes Redis fatal"
    );
}

async fn a_deactivation_elsewhere_shows_within_the_user_cache_ttl(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("TESSERA__USERS__CACHE_TTL", "300ms")]).await;
    let user = app.register("cached").await;
    let (access, _) = app.login(&user).await;
    let me = || {
        app.request(Method::GET, "/auth/users/me/")
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);
    // Another instance deactivates the user: straight in SQL, around this instance's cache.
    let sql = tessera::store::users::SqlUserStore::new(app.app_state.database.clone());
    let id = user.id.parse().unwrap();
    let deactivate = tessera::domain::users::UserChange {
        is_active: Some(false),
        ..Default::default()
    };
    tessera::domain::users::UserStore::change(&sql, id, &deactivate)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let (status, body) = answer(me().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "User is inactive", "code": "user_inactive"})
        )
    );
}

/// `groups`, `is_staff` and `is_superuser` of a body, for comparisons.
fn roles(groups: &[&str], staff: bool) -> serde_json::Value {
    json!({"groups": groups, "is_staff": staff, "is_superuser": staff})
}

/// `base` with the keys of `extra` added.
fn merged(base: &serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut out = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

/// Creates the groups (as `admin`) and puts `member` into each.
async fn join_groups(app: &TestApp, admin: &TestUser, member: &TestUser, names: &[&str]) {
    for name in names {
        let (status, _) = answer(
            admin
                .auth(app.request(Method::POST, "/auth/groups/"))
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = answer(
            admin
                .auth(app.request(Method::POST, &format!("/auth/groups/{name}/users/")))
                .json(&json!({"username": member.username}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

async fn user_bodies_show_sorted_groups_and_staff_flags(backend: Backend) {
    let app = TestApp::spawn_with(backend, ROLES).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.staff().await;
    join_groups(&app, &admin, &alice, &["manager", "Auditor", "billing"]).await;
    let identity =
        |u: &TestUser, email: String| json!({"email": email, "id": u.id, "username": u.username});
    let alice_body = merged(
        &identity(&alice, format!("{}@example.com", alice.username)),
        roles(&["Auditor", "billing", "manager"], false),
    );
    let get = |who: &TestUser, path: &str| who.auth(app.request(Method::GET, path)).send();

    let (status, me) = answer(get(&alice, "/auth/users/me/").await.unwrap()).await;
    assert_eq!((status, me), (StatusCode::OK, alice_body.clone()));
    let (status, list) = answer(get(&alice, "/auth/users/").await.unwrap()).await;
    assert_eq!(
        (status, list),
        (StatusCode::OK, json!([alice_body.clone()]))
    );
    let path = format!("/auth/users/{}/", alice.id);
    let (status, detail) = answer(get(&admin, &path).await.unwrap()).await;
    assert_eq!((status, detail), (StatusCode::OK, alice_body.clone()));

    let (status, list) = answer(get(&admin, "/auth/users/").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!([
            alice_body,
            merged(
                &identity(&bob, format!("{}@example.com", bob.username)),
                roles(&[], false)
            ),
            merged(&identity(&admin, String::new()), roles(&[], true)),
        ])
    );
    let (status, me) = answer(get(&admin, "/auth/users/me/").await.unwrap()).await;
    assert_eq!(
        (status, me),
        (
            StatusCode::OK,
            merged(&identity(&admin, String::new()), roles(&[], true))
        )
    );
}

/// Group names are cached like user rows (`users.cache_ttl`); changes made through this
/// instance must show at once, not a TTL later.
async fn membership_changes_show_in_me_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[ROLES[0], ("TESSERA__USERS__CACHE_TTL", "1h")]).await;
    let alice = app.register("alice").await;
    let admin = app.staff().await;
    let groups_in_me = || async {
        let me = alice.auth(app.request(Method::GET, "/auth/users/me/"));
        answer(me.send().await.unwrap()).await.1["groups"].clone()
    };
    let staff = |method: Method, path: &str, body: Value| {
        admin.auth(app.request(method, path)).json(&body).send()
    };
    assert_eq!(groups_in_me().await, json!([]));
    join_groups(&app, &admin, &alice, &["manager"]).await;
    assert_eq!(groups_in_me().await, json!(["manager"]));
    let renamed = staff(
        Method::PATCH,
        "/auth/groups/manager/",
        json!({"name": "managers"}),
    );
    assert_eq!(renamed.await.unwrap().status(), StatusCode::OK);
    assert_eq!(groups_in_me().await, json!(["managers"]));
    let body = json!({"username": alice.username});
    let removed = staff(Method::DELETE, "/auth/groups/managers/users/", body);
    assert_eq!(removed.await.unwrap().status(), StatusCode::OK);
    assert_eq!(groups_in_me().await, json!([]));
    join_groups(&app, &admin, &alice, &["billing"]).await;
    assert_eq!(groups_in_me().await, json!(["billing"]));
    let deleted = staff(Method::DELETE, "/auth/groups/billing/", json!({}));
    assert!(deleted.await.unwrap().status().is_success());
    assert_eq!(groups_in_me().await, json!([]));
}

async fn paginated_lists_show_roles_of_every_user_on_the_page(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[ROLES[0], ("TESSERA__USERS__PAGE_SIZE", "2")]).await;
    let admin = app.staff().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    join_groups(&app, &admin, &alice, &["manager"]).await;
    join_groups(&app, &admin, &bob, &["auditor"]).await;
    let get = |path: &str| admin.auth(app.request(Method::GET, path)).send();
    let pick = |u: &serde_json::Value| {
        json!([u["username"], u["groups"], u["is_staff"], u["is_superuser"]])
    };
    let (status, page) = answer(get("/auth/users/").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let results: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(pick)
        .collect();
    assert_eq!(
        results,
        vec![
            json!([admin.username, [], true, true]),
            json!([alice.username, ["manager"], false, false]),
        ]
    );
    let (_, page) = answer(get("/auth/users/?page=2").await.unwrap()).await;
    let results: Vec<_> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(pick)
        .collect();
    assert_eq!(
        results,
        vec![json!([bob.username, ["auditor"], false, false])]
    );
}

async fn roles_sent_in_put_or_patch_are_ignored(backend: Backend) {
    let app = TestApp::spawn_with(backend, ROLES).await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let admin = app.staff().await;
    let escalation = json!({"is_staff": true, "is_superuser": true, "groups": ["admins"]});
    let attempts = [
        (&carol, Method::PATCH, "/auth/users/me/".to_owned(), &carol),
        (&carol, Method::PUT, "/auth/users/me/".to_owned(), &carol),
        (
            &carol,
            Method::PATCH,
            format!("/auth/users/{}/", carol.id),
            &carol,
        ),
        // Not even staff set the flags through the profile.
        (
            &admin,
            Method::PATCH,
            format!("/auth/users/{}/", dave.id),
            &dave,
        ),
    ];
    for (who, method, path, target) in attempts {
        let (status, body) = answer(
            who.auth(app.request(method.clone(), &path))
                .json(&escalation)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
        assert_eq!(
            (
                body["username"].clone(),
                body["groups"].clone(),
                body["is_staff"].clone(),
                body["is_superuser"].clone()
            ),
            (
                json!(target.username),
                json!([]),
                json!(false),
                json!(false)
            ),
            "{method} {path}"
        );
    }
    let form = carol
        .auth(app.request(Method::PATCH, "/auth/users/me/"))
        .form(&[("is_staff", "true"), ("email", "c@example.org")])
        .send()
        .await
        .unwrap();
    let (status, body) = answer(form).await;
    assert_eq!(
        (status, body["email"].clone(), body["is_staff"].clone()),
        (StatusCode::OK, json!("c@example.org"), json!(false))
    );
    // Still not staff where it matters: staff-only endpoints and the listing.
    for who in [&carol, &dave] {
        let response = who
            .auth(app.request(Method::GET, "/auth/groups/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let (_, list) = answer(
            who.auth(app.request(Method::GET, "/auth/users/"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list[0]["is_staff"], json!(false));
    }
}

async fn show_user_roles_off_answers_djosers_three_keys(backend: Backend) {
    // Off is the default: Djoser's exact bodies unless an operator opts in.
    for page_size in ["0", "2"] {
        let app = TestApp::spawn_with(backend, &[("TESSERA__USERS__PAGE_SIZE", page_size)]).await;
        let admin = app.staff().await;
        let (status, registered) = answer(
            app.post_json(
                "/auth/users/",
                json!({"username": "erin", "password": PASSWORD, "email": "erin@example.com"}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let erin = TestUser {
            id: registered["id"].as_str().unwrap().to_owned(),
            username: "erin".into(),
            password: PASSWORD.into(),
        };
        assert_eq!(
            registered,
            json!({"email": "erin@example.com", "id": erin.id, "username": "erin"})
        );
        join_groups(&app, &admin, &erin, &["manager"]).await;
        let detail = format!("/auth/users/{}/", erin.id);
        for (who, method, path) in [
            (&erin, Method::GET, "/auth/users/me/"),
            (&erin, Method::PATCH, "/auth/users/me/"),
            (&erin, Method::PUT, detail.as_str()),
            (&admin, Method::GET, detail.as_str()),
        ] {
            let (status, body) = answer(
                who.auth(app.request(method.clone(), path))
                    .json(&json!({"is_staff": true}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, registered.clone()),
                "{method} {path} (page size {page_size})"
            );
        }
        let (status, list) = answer(
            admin
                .auth(app.request(Method::GET, "/auth/users/"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let users = if page_size == "0" {
            list
        } else {
            list["results"].clone()
        };
        assert_eq!(
            users,
            json!([
                {"email": "", "id": admin.id, "username": admin.username},
                registered,
            ]),
            "page size {page_size}"
        );
    }
}
