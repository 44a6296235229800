//! The downstream kit (`tessera-verify`) against running Tessera instances: what it accepts and
//! refuses, JWKS caching and key rotation, the poem and tower adapters, the example service.
use std::{
    convert::Infallible,
    future::Ready,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use poem::{
    Endpoint, EndpointExt, Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::Data,
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tessera_verify::{
    JwksOptions, Policy, TokenType, Verifier, VerifyError,
    jsonwebtoken::Algorithm,
    tower::{Layer, Service, VerifyAccessLayer},
};

use crate::{
    forge::{claims_of, forge},
    helpers::{Backend, SIGNING_KEY, TestApp, answer, client, key},
};

#[path = "../../examples/downstream/service.rs"]
mod downstream;

on_every_backend!(
    the_kit_accepts_tessera_access_tokens_with_typed_claims,
    the_kit_refuses_what_tessera_refuses,
    jwks_keys_are_cached_and_fetched_again_on_rotation,
    the_example_service_admits_by_group,
);

const CLAIMS: [(&str, &str); 3] = [
    ("TESSERA__JWT__CLAIMS__GROUPS", "true"),
    ("TESSERA__JWT__CLAIMS__USERNAME", "true"),
    ("TESSERA__JWT__CLAIMS__IS_STAFF", "true"),
];

/// A Tessera signing with `signing` (RS256), also accepting `verifying`, with group claims.
async fn rs256(backend: Backend, signing: &str, verifying: Option<&str>) -> TestApp {
    let signing = key(signing);
    let verifying = verifying.map(key);
    let mut settings = vec![
        ("TESSERA__JWT__ALGORITHM", "RS256"),
        ("TESSERA__JWT__SIGNING_KEY_FILE", signing.as_str()),
    ];
    if let Some(file) = &verifying {
        settings.push(("TESSERA__JWT__VERIFYING_KEY_FILES", file.as_str()));
    }
    settings.extend(CLAIMS);
    TestApp::spawn_with(backend, &settings).await
}

/// Serves `endpoint` on a loopback port; the base URL.
async fn serve(endpoint: impl Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}")
}

async fn the_kit_accepts_tessera_access_tokens_with_typed_claims(backend: Backend) {
    let app = TestApp::spawn_with(backend, &CLAIMS).await;
    let alice = app.register("alice").await;
    app.add_to_group(&alice.username, "manager").await;
    let (access, _) = app.login(&alice).await;
    let verifier = Verifier::hmac(Policy::new(Algorithm::HS256), SIGNING_KEY);
    let claims = verifier.verify(&access).await.unwrap();
    assert_eq!(claims.token_type, TokenType::Access);
    assert_eq!(claims.user_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(claims.username.as_deref(), Some(alice.username.as_str()));
    assert_eq!(claims.groups, vec!["manager".to_owned()]);
    assert!(claims.in_group("manager") && !claims.in_group("admin"));
    assert!(!claims.is_staff);
    assert_eq!(claims.jti.len(), 32);
    assert_eq!(Value::Object(claims.raw), claims_of(&access));
}

async fn the_kit_refuses_what_tessera_refuses(backend: Backend) {
    let issuer = "https://tessera.test";
    let app = TestApp::spawn_with(backend, &[("TESSERA__JWT__ISSUER", issuer)]).await;
    let alice = app.register("alice").await;
    let (access, refresh) = app.login(&alice).await;
    let policy = Policy {
        issuer: Some(issuer.into()),
        ..Policy::new(Algorithm::HS256)
    };
    let verifier = Verifier::hmac(policy.clone(), SIGNING_KEY);
    assert!(verifier.verify(&access).await.is_ok());

    assert_eq!(
        verifier.verify(&refresh).await,
        Err(VerifyError::WrongType),
        "refresh tokens are not access tokens"
    );
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let mut claims = claims_of(&access);
    claims["exp"] = json!(now - 1);
    let expired = forge(&header, &claims, SIGNING_KEY.as_bytes());
    assert_eq!(verifier.verify(&expired).await, Err(VerifyError::Expired));

    let mut tampered = claims_of(&access);
    tampered["user_id"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = forge(&header, &tampered, SIGNING_KEY.as_bytes());
    let signature = access.rsplit('.').next().unwrap();
    let (unsigned, _) = forged.rsplit_once('.').unwrap();
    let tampered = format!("{unsigned}.{signature}");
    assert_eq!(verifier.verify(&tampered).await, Err(VerifyError::Invalid));

    let other_issuer = Verifier::hmac(
        Policy {
            issuer: Some("https://elsewhere.test".into()),
            ..policy.clone()
        },
        SIGNING_KEY,
    );
    assert_eq!(
        other_issuer.verify(&access).await,
        Err(VerifyError::Invalid)
    );

    let none = forge(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims_of(&access),
        b"",
    );
    assert_eq!(verifier.verify(&none).await, Err(VerifyError::Invalid));
    let wrong_key = Verifier::hmac(policy, "another key of at least thirty-two bytes!");
    assert_eq!(wrong_key.verify(&access).await, Err(VerifyError::Invalid));
    let mut no_user = claims_of(&access);
    no_user.as_object_mut().unwrap().remove("user_id");
    let no_user = forge(&header, &no_user, SIGNING_KEY.as_bytes());
    assert_eq!(verifier.verify(&no_user).await, Err(VerifyError::NoUser));
    let mut bad_groups = claims_of(&access);
    bad_groups["groups"] = json!("manager");
    let bad_groups = forge(&header, &bad_groups, SIGNING_KEY.as_bytes());
    assert_eq!(
        verifier.verify(&bad_groups).await,
        Err(VerifyError::Invalid),
        "a misshapen groups claim is never read as membership"
    );

    // RS256 over the JWKS: an unknown kid, and an HMAC token signed with the public key.
    let app = rs256(backend, "rsa1.pem", None).await;
    let user = app.register("rsa").await;
    let (access, _) = app.login(&user).await;
    let jwks = Verifier::jwks(
        Policy::new(Algorithm::RS256),
        format!("{}/.well-known/jwks.json", app.base),
        JwksOptions::default(),
    )
    .unwrap();
    assert!(jwks.verify(&access).await.is_ok());
    let unknown_kid = with_kid(&access, "not-a-published-kid");
    assert_eq!(jwks.verify(&unknown_kid).await, Err(VerifyError::Invalid));
    let public_pem = std::fs::read(key("rsa1.pub.pem")).unwrap();
    let confused = forge(&header, &claims_of(&access), &public_pem);
    assert_eq!(jwks.verify(&confused).await, Err(VerifyError::Invalid));
}

/// `token` with its header's `kid` replaced (the signature no longer matches either).
fn with_kid(token: &str, kid: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"}).to_string();
    let header = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header);
    format!("{header}.{rest}")
}

/// A JWKS endpoint in front of whichever Tessera is current, counting fetches.
struct JwksProxy {
    upstream: Mutex<String>,
    fetches: AtomicUsize,
}

#[handler]
async fn proxied_jwks(proxy: Data<&Arc<JwksProxy>>) -> poem::Response {
    proxy.fetches.fetch_add(1, Ordering::SeqCst);
    let upstream = proxy.upstream.lock().unwrap().clone();
    match client().get(upstream).send().await {
        Ok(answer) => poem::Response::builder()
            .content_type("application/json")
            .body(answer.text().await.unwrap_or_default()),
        Err(_) => poem::Response::builder()
            .status(poem::http::StatusCode::BAD_GATEWAY)
            .finish(),
    }
}

async fn jwks_keys_are_cached_and_fetched_again_on_rotation(backend: Backend) {
    let old = rs256(backend, "rsa1.pem", None).await;
    // The rotation: a new signing key, the old one still accepted (and published).
    let new = rs256(backend, "rsa2.pem", Some("rsa1.pub.pem")).await;
    let proxy = Arc::new(JwksProxy {
        upstream: Mutex::new(format!("{}/.well-known/jwks.json", old.base)),
        fetches: AtomicUsize::new(0),
    });
    let base = serve(
        Route::new()
            .at("/jwks", get(proxied_jwks))
            .data(proxy.clone()),
    )
    .await;
    let interval = Duration::from_millis(500);
    let verifier = Verifier::jwks(
        Policy::new(Algorithm::RS256),
        format!("{base}/jwks"),
        JwksOptions {
            min_refresh_interval: interval,
            ..JwksOptions::default()
        },
    )
    .unwrap();
    let fetches = || proxy.fetches.load(Ordering::SeqCst);

    let (before, _) = old.login(&old.register("old").await).await;
    for _ in 0..5 {
        verifier.verify(&before).await.unwrap();
    }
    assert_eq!(fetches(), 1, "keys are fetched once and cached");

    *proxy.upstream.lock().unwrap() = format!("{}/.well-known/jwks.json", new.base);
    tokio::time::sleep(interval).await;
    let (after, _) = new.login(&new.register("new").await).await;
    verifier.verify(&after).await.unwrap();
    assert_eq!(fetches(), 2, "an unknown kid fetches the keys again");
    verifier.verify(&before).await.unwrap();
    verifier.verify(&after).await.unwrap();
    assert_eq!(fetches(), 2, "both keys are now known");

    // Made-up kids cannot make the verifier hammer the JWKS endpoint.
    for n in 0..5 {
        let forged = with_kid(&after, &format!("made-up-{n}"));
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::Invalid));
    }
    assert_eq!(fetches(), 2, "no fetch within min_refresh_interval");

    // The JWKS endpoint down: the cached keys keep working.
    *proxy.upstream.lock().unwrap() = "http://127.0.0.1:9/".into();
    tokio::time::sleep(interval).await;
    let forged = with_kid(&after, "made-up-later");
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::Invalid));
    assert_eq!(fetches(), 3, "the unknown kid was looked up again");
    verifier.verify(&after).await.unwrap();

    // No keys ever fetched: unavailable, not invalid.
    let unreachable = Verifier::jwks(
        Policy::new(Algorithm::RS256),
        "http://127.0.0.1:9/.well-known/jwks.json",
        JwksOptions {
            timeout: Duration::from_secs(1),
            ..JwksOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(
        unreachable.verify(&after).await,
        Err(VerifyError::KeysUnavailable(_))
    ));
}

async fn the_example_service_admits_by_group(backend: Backend) {
    let tessera = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__ALGORITHM", "EdDSA"),
            ("TESSERA__JWT__SIGNING_KEY_FILE", &key("ed1.pem")),
            ("TESSERA__JWT__CLAIMS__GROUPS", "true"),
            ("TESSERA__JWT__CLAIMS__USERNAME", "true"),
        ],
    )
    .await;
    let jwks_url = format!("{}/.well-known/jwks.json", tessera.base);
    let verifier = downstream::verifier_from(|name| match name {
        "TESSERA_JWKS_URL" => Some(jwks_url.clone()),
        "TESSERA_ALGORITHM" => Some("EdDSA".into()),
        _ => None,
    })
    .unwrap();
    let service = serve(downstream::app(Arc::new(verifier), "manager")).await;
    let http = client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{service}{path}"));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send()
    };

    let response = get("/reports", None).await.unwrap();
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\""
    );
    assert_eq!(
        answer(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})
        )
    );
    let alice = tessera.register("alice").await;
    let (access, refresh) = tessera.login(&alice).await;
    let (status, body) = answer(get("/whoami", Some(&access)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"user_id": alice.id, "username": alice.username, "groups": []})
    );
    assert_eq!(
        answer(get("/reports", Some(&access)).await.unwrap()).await,
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"})
        )
    );
    // Membership shows once the token is refreshed.
    tessera.add_to_group(&alice.username, "manager").await;
    let (status, body) = answer(
        tessera
            .post_json("/api/token/refresh/", json!({"refresh": refresh}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (access, refresh) = (body["access"].as_str(), body["refresh"].as_str());
    let (status, body) = answer(get("/reports", access).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["group"], "manager");

    let (status, body) = answer(get("/whoami", refresh).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token has wrong type"}],
        })
    );
    let malformed = http
        .get(format!("{service}/whoami"))
        .header(header::AUTHORIZATION, "Bearer two parts")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(malformed).await.1["code"],
        "bad_authorization_header"
    );
}

/// A tower service answering the user id the layer admitted.
#[derive(Clone)]
struct WhoAmI;

impl Service<poem::http::Request<String>> for WhoAmI {
    type Response = poem::http::Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: poem::http::Request<String>) -> Self::Future {
        let claims = req.extensions().get::<tessera_verify::Claims>();
        let user = claims.and_then(|c| c.user_id.clone()).unwrap_or_default();
        std::future::ready(Ok(poem::http::Response::new(user)))
    }
}

#[tokio::test]
async fn the_tower_layer_admits_members_and_answers_drf_refusals() {
    let app = TestApp::spawn_with(Backend::Sqlite, &CLAIMS).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.add_to_group(&alice.username, "manager").await;
    let verifier = Arc::new(Verifier::hmac(Policy::new(Algorithm::HS256), SIGNING_KEY));
    let mut service = VerifyAccessLayer::new(verifier)
        .require_group("manager")
        .layer(WhoAmI);
    let request = |token: Option<&str>| {
        let mut request = poem::http::Request::builder();
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(String::new()).unwrap()
    };
    let (alice_access, _) = app.login(&alice).await;
    let admitted = service.call(request(Some(&alice_access))).await.unwrap();
    assert_eq!(admitted.status(), 200);
    assert_eq!(admitted.body(), &alice.id);

    let (bob_access, bob_refresh) = app.login(&bob).await;
    let refused = service.call(request(Some(&bob_access))).await.unwrap();
    assert_eq!(refused.status(), 403);
    let anonymous = service.call(request(None)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"api\""
    );
    assert_eq!(anonymous.headers()["content-type"], "application/json");
    let wrong_type = service.call(request(Some(&bob_refresh))).await.unwrap();
    let body: Value = serde_json::from_str(wrong_type.body()).unwrap();
    assert_eq!(body["messages"][0]["message"], "Token has wrong type");
}
