//! Djoser's email templates copied into `email.templates_dir`: rendered with Djoser's context
//! over real SMTP, HTML-escaped in the HTML part only, and refused at start when broken or when
//! they reach for a file outside the folder.
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    accounts::app_with_mail,
    helpers::{Backend, PASSWORD, TestApp, post},
};

on_every_backend!(
    a_djoser_activation_template_is_mailed_and_its_link_activates,
    usernames_are_escaped_in_the_html_part_only,
    a_broken_template_stops_the_start_naming_its_file,
    a_template_including_a_file_outside_the_folder_is_refused,
);

/// A template in the shape of Djoser's `email/activation.html`: `{% load i18n %}`,
/// `blocktrans` and `trans`, and the three blocks templated_mail reads.
const DJOSER_ACTIVATION: &str = r#"{% load i18n %}

{% block subject %}
{% blocktrans %}Account activation on {{ site_name }}{% endblocktrans %}
{% endblock subject %}

{% block text_body %}
{% blocktrans %}Welcome to {{ site_name }}!{% endblocktrans %} {{ user.username }}
{% trans "Please go to the following page to activate account:" %}
{{ protocol }}://{{ domain }}/{{ url|safe }}
uid={{ uid }} token={{ token }}
{% endblock text_body %}

{% block html_body %}
<p>{% trans "Hello" %} {{ user.username }},</p>
<p><a href="{{ protocol }}://{{ domain }}/{{ url|safe }}">{{ protocol }}://{{ domain }}/{{ url|safe }}</a></p>
{% endblock html_body %}
"#;

/// A folder holding `files` (name, content).
fn templates(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Settings for activation mails rendered from `dir`.
fn mailing_from(dir: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA__ACCOUNTS__SEND_ACTIVATION_EMAIL", "true".into()),
        (
            "TESSERA__EMAIL__TEMPLATES_DIR",
            dir.path().display().to_string(),
        ),
        ("TESSERA__EMAIL__SITE_NAME", "Shop".into()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The text and HTML parts of a multipart/alternative message, in that order.
fn parts(message: &str) -> (&str, &str) {
    let html = message
        .find("Content-Type: text/html")
        .unwrap_or_else(|| panic!("no HTML part in {message}"));
    let text = message
        .find("Content-Type: text/plain")
        .unwrap_or_else(|| panic!("no text part in {message}"));
    assert!(text < html, "{message}");
    (&message[text..html], &message[html..])
}

async fn a_djoser_activation_template_is_mailed_and_its_link_activates(backend: Backend) {
    let dir = templates(&[("activation.html", DJOSER_ACTIVATION)]);
    let settings = mailing_from(&dir);
    let (app, sink) = app_with_mail(backend, &borrowed(&settings)).await;
    let (status, _) = post(
        &app,
        "/auth/users/",
        json!({"username": "tpl", "password": PASSWORD, "email": "tpl@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let mail = sink.message(1).await;
    assert!(
        mail.contains("Subject: Account activation on Shop\n"),
        "{mail}"
    );
    let (uid, token) = sink.link(1, "https://app.example/#/activate/").await;
    let (text, html) = parts(&mail);
    assert!(text.contains("Welcome to Shop! tpl\n"), "{text}");
    assert!(
        text.contains("Please go to the following page to activate account:\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("uid={uid} token={token}")),
        "uid and token are Djoser's context names: {text}"
    );
    assert!(!text.contains("{%") && !text.contains("trans"), "{text}");
    assert!(html.contains("<p>Hello tpl,</p>"), "{html}");
    assert!(
        html.contains(&format!(
            "<a href=\"https://app.example/#/activate/{uid}/{token}\">"
        )),
        "{html}"
    );

    assert_eq!(
        post(
            &app,
            "/auth/users/activation/",
            json!({"uid": uid, "token": token})
        )
        .await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    let (status, _) = post(
        &app,
        "/api/token/",
        json!({"username": "tpl", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the mailed link activated the account"
    );
}

/// A username Tessera's registration refuses but a Django project's users table may hold
/// (written straight into the store, as an import would): Django escapes it in HTML, so does
/// Tessera, and the text part shows it as it is.
async fn usernames_are_escaped_in_the_html_part_only(backend: Backend) {
    use tessera::domain::users::{Numbering, User, UserStore};
    let dir = templates(&[("activation.html", DJOSER_ACTIVATION)]);
    let settings = mailing_from(&dir);
    let (app, sink) = app_with_mail(backend, &borrowed(&settings)).await;
    let username = "eve<script>alert(1)</script>\"&'";
    let email = format!(
        "eve-{}@example.com",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let user = User {
        id: Uuid::now_v7(),
        username: username.into(),
        email: email.clone(),
        password_hash: "!unusable".into(),
        first_name: String::new(),
        last_name: String::new(),
        is_active: false,
        is_staff: false,
        is_superuser: false,
        date_joined: chrono::Utc::now(),
        last_login: None,
        credential_version: 0,
        number: 0,
    };
    tessera::store::users::SqlUserStore::new(app.app_state.database.clone())
        .insert(&user, Numbering::Next)
        .await
        .unwrap();
    let (status, _) = post(
        &app,
        "/auth/users/resend_activation/",
        json!({"email": email}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mail = sink.message(1).await;
    let (text, html) = parts(&mail);
    assert!(
        text.contains(&format!("Welcome to Shop! {username}\n")),
        "{text}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains(
            "<p>Hello eve&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&amp;&#x27;,</p>"
        ),
        "{html}"
    );
}

async fn a_broken_template_stops_the_start_naming_its_file(backend: Backend) {
    let broken = "{% block subject %}Hi{% endblock %}\n\n{% block text_body %}\n{% if user.username %}\nno endif\n{% endblock %}\n";
    let dir = templates(&[("password_reset.html", broken)]);
    let settings = mailing_from(&dir);
    let error = TestApp::try_spawn_with(backend, &borrowed(&settings))
        .await
        .err()
        .expect("a broken template stops the start");
    let file = dir.path().join("password_reset.html").display().to_string();
    assert!(error.contains(&file), "{error}");
    assert!(
        error.contains(":6)"),
        "the line of the stray endblock: {error}"
    );

    // A Django tag with no Jinja form names its line too.
    let dir = templates(&[(
        "confirmation.html",
        "{% load static %}\n{% static 'logo.png' %}",
    )]);
    let settings = mailing_from(&dir);
    let error = TestApp::try_spawn_with(backend, &borrowed(&settings))
        .await
        .err()
        .expect("an unsupported tag stops the start");
    assert!(error.contains("confirmation.html line 2"), "{error}");
    assert!(error.contains("{% static %}"), "{error}");
}

async fn a_template_including_a_file_outside_the_folder_is_refused(backend: Backend) {
    let reaching = DJOSER_ACTIVATION.replace(
        "{% endblock text_body %}",
        "{% include \"../../etc/passwd\" %}{% endblock text_body %}",
    );
    let dir = templates(&[("activation.html", &reaching)]);
    let settings = mailing_from(&dir);
    let error = TestApp::try_spawn_with(backend, &borrowed(&settings))
        .await
        .err()
        .expect("the include stops the start");
    assert!(error.contains("\"../../etc/passwd\" refused"), "{error}");
    assert!(
        !error.contains("root:"),
        "nothing of the file shows: {error}"
    );

    // The same include on a branch the check at start does not take: refused when a mail
    // takes it, and that mail is not sent (nor sent empty); the next one is.
    let hidden = DJOSER_ACTIVATION.replace(
        "{% endblock text_body %}",
        "{% if user.username == \"mallory\" %}{% include \"../../etc/passwd\" %}{% endif %}{% endblock text_body %}",
    );
    let dir = templates(&[("activation.html", &hidden)]);
    let settings = mailing_from(&dir);
    let (app, sink) = app_with_mail(backend, &borrowed(&settings)).await;
    for name in ["mallory", "sentinel"] {
        let (status, _) = post(
            &app,
            "/auth/users/",
            json!({"username": name, "password": PASSWORD, "email": format!("{name}@example.com")}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let first = sink.message(1).await;
    assert!(first.contains("To: sentinel@example.com"), "{first}");
    assert!(!first.contains("root:"), "{first}");
}
