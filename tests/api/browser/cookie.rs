//! The refresh cookie as a browser keeps it (`jwt.cookie`, with `omit_from_body`): a page on a
//! listed origin of Tessera's site logs in with `credentials: "include"`, never sees the refresh
//! token (not in the body, not in `document.cookie`), and refreshes with the `X-CSRF-Token`
//! header it copies from the `csrftoken` cookie. Forms posted from another site carry no cookie
//! (SameSite), and those from another port of the same host (same site, so the cookies go
//! along) are refused by the CSRF check: no new pair either way.
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Chromium, PageServer, Visit, page};
use crate::helpers::{Backend, PASSWORD, TestApp};

on_every_backend!(a_page_refreshes_from_a_cookie_it_cannot_read_and_forms_from_elsewhere_cannot,);

/// `?step=login`: registers, logs in, refreshes from the cookie with the double-submit header
/// and reads `me` with the new access token. `?step=again`: refreshes once more.
const FRONTEND: &str = r#"
const { call, json, params } = tessera;
const username = params.get('username'), password = params.get('password');
const csrf = () => {
  const pair = document.cookie.split('; ').find((c) => c.startsWith('csrftoken='));
  return pair ? pair.slice('csrftoken='.length) : null;
};
const refresh = () => call('/api/token/refresh/', {
  method: 'POST', credentials: 'include', headers: { 'X-CSRF-Token': csrf() },
});
tessera.run(async () => {
  if (params.get('step') === 'again') {
    return { cookies: document.cookie, refreshed: await refresh() };
  }
  const register = await call('/auth/users/', json('POST', { username, password }));
  const login = await call('/api/token/', { ...json('POST', { username, password }), credentials: 'include' });
  const cookies = document.cookie;
  const csrf_token = csrf();
  const refreshed = await refresh();
  const access = refreshed.body && refreshed.body.access;
  const me = await call('/auth/users/me/', { headers: { Authorization: `Bearer ${access}` } });
  return { register, login, cookies, csrf_token, refreshed, me };
});
"#;

/// What a page elsewhere can try against the cookie: forms posted into a hidden frame and into
/// a new window (a top-level navigation), a credentialed `no-cors` fetch carrying the CSRF
/// token it may read (the header is dropped: not safelisted), and a CORS fetch with it (stopped
/// at the preflight).
const INTRUDER: &str = r#"
const { call } = tessera;
const pair = document.cookie.split('; ').find((c) => c.startsWith('csrftoken='));
const stolen = pair ? pair.slice('csrftoken='.length) : 'none';
tessera.run(async () => ({
  cookies: document.cookie,
  frame: await tessera.submitForm('/api/token/refresh/', {}, 'iframe'),
  popup: await tessera.submitForm('/api/token/refresh/', {}, 'popup'),
  no_cors: await call('/api/token/refresh/', {
    method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'X-CSRF-Token': stolen },
  }),
  cors: await call('/api/token/refresh/', {
    method: 'POST', credentials: 'include', headers: { 'X-CSRF-Token': stolen },
  }),
}));
"#;

fn clean(visit: &Visit) {
    assert!(visit.errors.is_empty(), "{visit:#?}");
}

async fn a_page_refreshes_from_a_cookie_it_cannot_read_and_forms_from_elsewhere_cannot(
    backend: Backend,
) {
    let test = format!(
        "browser::cookie::a_page_refreshes_from_a_cookie_it_cannot_read_and_forms_from_elsewhere_cannot ({backend:?})"
    );
    let Some(chromium) = Chromium::find(&test) else {
        return;
    };
    let frontend = PageServer::start(&[("/", page("frontend", FRONTEND))]).await;
    let intruder = [("/", page("intruder", INTRUDER))];
    let other_site = PageServer::start_as("localhost", &intruder).await;
    let same_site = PageServer::start(&intruder).await;
    let app = TestApp::spawn_with(
        backend,
        &[
            ("TESSERA__JWT__COOKIE__ENABLED", "true"),
            ("TESSERA__JWT__COOKIE__OMIT_FROM_BODY", "true"),
            ("TESSERA__CORS__ALLOWED_ORIGINS", frontend.origin.as_str()),
            ("TESSERA__CORS__ALLOW_CREDENTIALS", "true"),
        ],
    )
    .await;
    let username = format!("browser{}", &Uuid::new_v4().simple().to_string()[..8]);
    let credentials = [("username", username.as_str()), ("password", PASSWORD)];
    let step = |name: &'static str| {
        let mut params = credentials.to_vec();
        params.push(("step", name));
        frontend.url("/", &app.base, &params)
    };
    let urls = [
        step("login"),
        other_site.url("/", &app.base, &[]),
        same_site.url("/", &app.base, &[]),
        step("again"),
    ];
    let visits = chromium.visit(&urls).await;
    let refresh_url = format!("{}/api/token/refresh/", app.base);

    // The frontend: logged in, the refresh token nowhere a script can reach.
    let visit = &visits[0];
    clean(visit);
    let result = &visit.result;
    assert_eq!(result["register"]["status"], 201, "{visit:#?}");
    let login = &result["login"];
    assert_eq!(login["status"], 200, "{visit:#?}");
    let keys: Vec<&String> = login["body"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access"], "omit_from_body: {login}");
    let cookies = result["cookies"].as_str().unwrap();
    let csrf = result["csrf_token"].as_str().unwrap();
    assert_eq!(
        cookies,
        format!("csrftoken={csrf}"),
        "HttpOnly hides the refresh cookie"
    );
    assert_eq!(csrf.len(), 64);
    let refreshed = &result["refreshed"];
    assert_eq!(refreshed["status"], 200, "{visit:#?}");
    let keys: Vec<&String> = refreshed["body"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access"]);
    assert_eq!(result["me"]["status"], 200, "{visit:#?}");
    assert_eq!(result["me"]["body"]["username"], username.as_str());
    // The browser sent both cookies with the refresh (Path and SameSite let them through).
    // Tessera's status says what it got; the names of the cookies sent are checked too where
    // Chromium reports them (not for every request).
    let sent = visit.exchanges_with(&refresh_url);
    let posted: Vec<_> = sent.iter().filter(|e| e.method == "POST").collect();
    assert_eq!(posted.len(), 1, "{visit:#?}");
    let both = vec!["refresh_token".to_owned(), "csrftoken".to_owned()];
    if let Some(cookies) = &posted[0].cookies {
        assert_eq!(cookies, &both, "{visit:#?}");
    }
    assert_eq!(posted[0].status, 200);

    // Another site (localhost): the forms and the fetch are sent, without any cookie (SameSite
    // withholds them from cross-site requests), so Tessera finds no token: 400 (with the
    // cookie, the foreign Origin would have made it a 403), no pair.
    let visit = &visits[1];
    clean(visit);
    let result = &visit.result;
    assert_eq!(result["cookies"], "", "{visit:#?}");
    assert_eq!(result["frame"], "loaded", "{visit:#?}");
    assert_eq!(result["popup"], "loaded", "{visit:#?}");
    assert_eq!(
        result["no_cors"],
        json!({"status": 0, "type": "opaque", "headers": {}, "body": Value::Null})
    );
    assert_eq!(
        result["cors"],
        json!({"error": "TypeError: Failed to fetch"}),
        "{visit:#?}"
    );
    let posted: Vec<_> = visit
        .exchanges_with(&refresh_url)
        .into_iter()
        .filter(|e| e.method == "POST")
        .collect();
    assert_eq!(posted.len(), 3, "frame, popup, no-cors fetch: {visit:#?}");
    for exchange in &posted {
        // 400 `{"refresh": ["This field is required."]}`: Tessera got no cookie.
        assert_eq!(exchange.status, 400, "{exchange:?}");
        if let Some(cookies) = &exchange.cookies {
            assert!(cookies.is_empty(), "{exchange:?}");
            assert_eq!(exchange.origin.as_deref(), Some(other_site.origin.as_str()));
        }
    }

    // Another port of Tessera's host: the same site, so the cookies go along (and the page can
    // even read the CSRF cookie: cookies ignore ports), but a form cannot set the header, a
    // no-cors fetch loses it, and a CORS fetch with it is stopped at the preflight: the Origin
    // is not trusted, 403, no pair.
    let visit = &visits[2];
    clean(visit);
    let result = &visit.result;
    assert_eq!(result["cookies"], format!("csrftoken={csrf}"), "{visit:#?}");
    assert_eq!(result["frame"], "loaded", "{visit:#?}");
    assert_eq!(result["popup"], "loaded", "{visit:#?}");
    assert_eq!(
        result["cors"],
        json!({"error": "TypeError: Failed to fetch"})
    );
    let exchanges = visit.exchanges_with(&refresh_url);
    let posted: Vec<_> = exchanges.iter().filter(|e| e.method == "POST").collect();
    assert_eq!(posted.len(), 3, "frame, popup, no-cors fetch: {visit:#?}");
    for exchange in &posted {
        // 403 `CSRF Failed: Origin checking failed - ...`: the cookie came (without it the
        // answer would be a 400), the proof did not.
        assert_eq!(exchange.status, 403, "{exchange:?}");
        if let Some(cookies) = &exchange.cookies {
            assert_eq!(cookies, &both, "{exchange:?}");
            assert_eq!(exchange.origin.as_deref(), Some(same_site.origin.as_str()));
        }
    }
    // The CORS fetch never went past its preflight.
    assert!(!exchanges.iter().any(|e| e.status == 200), "{visit:#?}");

    // Back on the frontend: the cookie it holds was neither used nor replaced meanwhile.
    let visit = &visits[3];
    clean(visit);
    assert_eq!(visit.result["refreshed"]["status"], 200, "{visit:#?}");
    assert_eq!(visit.result["cookies"], format!("csrftoken={csrf}"));
}
