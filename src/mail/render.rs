//! Djoser's email templates: one `email/<name>.html` per message, holding
//! `{% block subject %}`, `{% block text_body %}` and `{% block html_body %}` in Django's template
//! language (rewritten to Jinja by [`super::django`], rendered by minijinja). An operator's
//! folder (`email.templates_dir`) overrides Tessera's built-ins file by file; every template is
//! compiled and rendered once at start, so a broken one stops the start, never a mail later.
use std::{
    io::Read,
    path::{Path, PathBuf},
};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value, context};

use super::django;
use crate::domain::{
    mail::{Email, EmailKind, MailLink, MailUser},
    users::UserRef,
};

/// A template file larger than this is refused (Djoser's are about 1.5 KB).
pub const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;
/// Instructions one message may run (Tessera's templates need a few hundred): a template
/// looping over a huge range fails instead of stalling the mail task.
const FUEL: u64 = 200_000;
/// Nested includes, extends and macro calls at most (a template including itself fails).
const RECURSION_LIMIT: usize = 32;

/// The compiled templates of the six messages.
pub struct MailTemplates {
    /// Subjects and text bodies: nothing escaped.
    text: Environment<'static>,
    /// HTML bodies: variables HTML-escaped (as Django does), `|safe` to opt out.
    html: Environment<'static>,
    site_name: String,
}

/// A rendered message: blocks a template lacks, or that render empty, are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// Where the templates come from: the operator's folder first, then the built-ins.
#[derive(Clone)]
struct Sources {
    /// `email.templates_dir`, canonical.
    dir: Option<PathBuf>,
}

impl MailTemplates {
    /// Compiles every template and renders each once with sample values; an error names the file
    /// (and, from minijinja, the template and line).
    pub fn load(templates_dir: Option<&str>, site_name: &str) -> Result<Self, String> {
        let dir = match templates_dir {
            None => None,
            Some(dir) => {
                let canonical = std::fs::canonicalize(dir)
                    .map_err(|e| format!("email.templates_dir {dir}: {e}"))?;
                if !canonical.is_dir() {
                    return Err(format!("email.templates_dir {dir} is not a folder"));
                }
                Some(canonical)
            }
        };
        let sources = Sources { dir };
        sources.refuse_the_old_format()?;
        let templates = Self {
            text: environment(sources.clone(), AutoEscape::None),
            html: environment(sources.clone(), AutoEscape::Html),
            site_name: site_name.to_owned(),
        };
        let mut overridden = Vec::new();
        for kind in EmailKind::ALL {
            let name = template_name(kind);
            let label = match sources.find(&name) {
                Ok(Some((label, _))) => label,
                Ok(None) => name.clone(),
                Err(e) => return Err(format!("email template {name}: {e}")),
            };
            if !label.starts_with("built-in") {
                overridden.push(label.clone());
            }
            let rendered = templates
                .render(&sample(kind))
                .map_err(|e| format!("email template {label}: {e}"))?;
            if rendered.text.is_none() && rendered.html.is_none() {
                return Err(format!(
                    "email template {label}: both {{% block text_body %}} and {{% block html_body %}} are missing or render empty"
                ));
            }
        }
        if !overridden.is_empty() {
            tracing::info!(templates = ?overridden, "email templates from email.templates_dir");
        }
        Ok(templates)
    }

    /// Renders `email`'s template: the subject on one line, the bodies trimmed (as Djoser does).
    pub fn render(&self, email: &Email) -> Result<Rendered, String> {
        let name = template_name(email.kind);
        let context = self.context(email);
        let [subject, text] = blocks(&self.text, &name, context.clone(), ["subject", "text_body"])?;
        let [html] = blocks(&self.html, &name, context, ["html_body"])?;
        let subject = subject.ok_or("{% block subject %} is missing (Djoser's format: one <name>.html with the blocks subject, text_body and html_body)")?;
        // A header is one line: Django refuses a subject with a newline, Tessera joins the lines.
        let subject = subject
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let present =
            |body: Option<String>| body.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty());
        Ok(Rendered {
            subject,
            text: present(text),
            html: present(html),
        })
    }

    /// Djoser's context: `user`, `site_name`, `protocol`, `domain`, and for messages with a link
    /// `uid`, `token` and `url`.
    fn context(&self, email: &Email) -> Value {
        let u = &email.user;
        let id = match u.id {
            UserRef::Id(id) => Value::from(id.to_string()),
            UserRef::Number(n) => Value::from(n),
        };
        // Django calls a model's methods from templates: the ones mail templates use are values.
        let full_name = format!("{} {}", u.first_name, u.last_name)
            .trim()
            .to_owned();
        let user = context! {
            pk => id.clone(),
            id => id,
            username => u.username.clone(),
            get_username => u.username.clone(),
            email => u.email.clone(),
            first_name => u.first_name.clone(),
            last_name => u.last_name.clone(),
            get_full_name => full_name,
            get_short_name => u.first_name.clone(),
        };
        let base = context! {
            user => user,
            site_name => self.site_name.clone(),
            protocol => email.protocol.clone(),
            domain => email.domain.clone(),
        };
        match &email.link {
            Some(link) => context! {
                uid => link.uid.clone(),
                token => link.token.clone(),
                url => link.url.clone(),
                ..base
            },
            None => base,
        }
    }
}

/// Djoser's template name for `kind`.
fn template_name(kind: EmailKind) -> String {
    format!("email/{}.html", kind.name())
}

fn environment(sources: Sources, escape: AutoEscape) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(move |_| escape.clone());
    // Django prints a missing variable, or an attribute of one, as "".
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.add_filter("capfirst", capfirst);
    env.add_filter("default_if_none", default_if_none);
    env.set_loader(move |name| match sources.find(name) {
        Ok(None) => Ok(None),
        Ok(Some((label, source))) => django::to_jinja(&source).map(Some).map_err(|e| {
            minijinja::Error::new(
                ErrorKind::SyntaxError,
                format!("{label} line {}: {}", e.line, e.message),
            )
        }),
        Err(e) => Err(minijinja::Error::new(ErrorKind::InvalidOperation, e)),
    });
    env
}

/// Renders the whole template once, then each named block; a block the template (or what it
/// extends) lacks is `None`.
fn blocks<const N: usize>(
    env: &Environment<'static>,
    name: &str,
    context: Value,
    names: [&str; N],
) -> Result<[Option<String>; N], String> {
    let template = env.get_template(name).map_err(|e| e.to_string())?;
    let mut captured = template
        .render_captured(context)
        .map_err(|e| e.to_string())?;
    captured.with_state_mut(|state| {
        let mut out = [const { None }; N];
        for (slot, block) in out.iter_mut().zip(names) {
            match state.render_block(block) {
                Ok(text) => *slot = Some(text),
                Err(e) if e.kind() == ErrorKind::UnknownBlock => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    })
}

impl Sources {
    /// The source of template `name`, labelled with its file (or as built in). Names are
    /// looked up in the folder as they are and, for `email/...`, also without `email/` (the
    /// folder may be a Django project's `templates/` or its `templates/email/`).
    fn find(&self, name: &str) -> Result<Option<(String, String)>, String> {
        let segments = checked_name(name)?;
        if let Some(dir) = &self.dir {
            let mut candidates = vec![segments.join("/")];
            if segments.len() > 1 && segments[0] == "email" {
                candidates.push(segments[1..].join("/"));
            }
            for candidate in candidates {
                if let Some((path, text)) = read_inside(dir, &candidate)? {
                    return Ok(Some((path.display().to_string(), text)));
                }
            }
        }
        Ok(builtin(name).map(|text| (format!("built-in {name}"), text.to_owned())))
    }

    /// The `<name>.subject` / `.txt` overrides of earlier versions would be ignored silently.
    fn refuse_the_old_format(&self) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        for kind in EmailKind::ALL {
            for extension in ["subject", "txt"] {
                let old = dir.join(format!("{}.{extension}", kind.name()));
                if old.exists() {
                    return Err(format!(
                        "{} is an override in Tessera's old format (<name>.subject, .txt, .html with {{site_name}} placeholders); templates are now Djoser's: one <name>.html with {{% block subject %}}, {{% block text_body %}} and {{% block html_body %}} (see the README)",
                        old.display()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The segments of a template name that stays inside the folder: relative, `/`-separated,
/// no empty, `.` or `..` segment, no backslash or NUL.
fn checked_name(name: &str) -> Result<Vec<&str>, String> {
    let segments: Vec<&str> = name.split('/').collect();
    let bad = name.contains(['\\', '\0'])
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..");
    if bad {
        return Err(format!(
            "template name {name:?} refused: templates are named by relative paths inside email.templates_dir (no '..', no leading '/')"
        ));
    }
    Ok(segments)
}

/// Reads `relative` in `dir` if it is there; a file whose real path (symlinks followed) leaves
/// `dir`, or larger than [`MAX_TEMPLATE_BYTES`], is refused.
fn read_inside(dir: &Path, relative: &str) -> Result<Option<(PathBuf, String)>, String> {
    let path = dir.join(relative);
    let real = match std::fs::canonicalize(&path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if !real.starts_with(dir) {
        return Err(format!(
            "{} leads outside email.templates_dir",
            path.display()
        ));
    }
    let too_big = || {
        format!(
            "{} is larger than {} KiB",
            path.display(),
            MAX_TEMPLATE_BYTES / 1024
        )
    };
    let file = std::fs::File::open(&real).map_err(|e| format!("{}: {e}", path.display()))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if metadata.len() > MAX_TEMPLATE_BYTES {
        return Err(too_big());
    }
    let mut text = String::new();
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(too_big());
    }
    Ok(Some((path, text)))
}

/// Tessera's own templates, in the same format (src/mail/templates/).
fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "email/activation.html" => include_str!("templates/activation.html"),
        "email/confirmation.html" => include_str!("templates/confirmation.html"),
        "email/password_reset.html" => include_str!("templates/password_reset.html"),
        "email/password_changed_confirmation.html" => {
            include_str!("templates/password_changed_confirmation.html")
        }
        "email/username_reset.html" => include_str!("templates/username_reset.html"),
        "email/username_changed_confirmation.html" => {
            include_str!("templates/username_changed_confirmation.html")
        }
        _ => return None,
    })
}

/// A message for trying a template at start.
fn sample(kind: EmailKind) -> Email {
    Email {
        kind,
        to: "someone@example.com".into(),
        user: MailUser {
            id: UserRef::Number(1),
            username: "someone".into(),
            email: "someone@example.com".into(),
            first_name: "Some".into(),
            last_name: "One".into(),
        },
        protocol: "https".into(),
        domain: "example.com".into(),
        link: kind.has_link().then(|| MailLink {
            uid: "MQ".into(),
            token: "sample-token".into(),
            url: "#/link/MQ/sample-token".into(),
        }),
    }
}

/// Django's `capfirst`: the first character upper-cased, the rest as it is.
fn capfirst(value: String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => value,
    }
}

/// Django's `default_if_none`: `default` for none only (not for "" or 0, unlike `default`).
fn default_if_none(value: Value, default: Value) -> Value {
    if value.is_none() { default } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Djoser's activation template, as a project would have it.
    const DJOSER_ACTIVATION: &str = r#"{% load i18n %}

{% block subject %}
{% blocktrans %}Account activation on {{ site_name }}{% endblocktrans %}
{% endblock subject %}

{% block text_body %}
{% blocktrans %}Hi {{ site_name }} user,{% endblocktrans %} {{ user.username }}
{% trans "Please go to the following page to activate account:" %}
{{ protocol }}://{{ domain }}/{{ url|safe }}
{{ uid }}/{{ token }}
{% endblock text_body %}

{% block html_body %}
<p>{% trans "Hello" %} {{ user.username }}</p>
<p><a href="{{ protocol }}://{{ domain }}/{{ url|safe }}">{{ protocol }}://{{ domain }}/{{ url|safe }}</a></p>
{% endblock html_body %}
"#;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir) -> Result<MailTemplates, String> {
        MailTemplates::load(Some(&dir.path().display().to_string()), "Shop")
    }

    fn activation_for(username: &str) -> Email {
        let mut email = sample(EmailKind::Activation);
        email.user.username = username.into();
        email
    }

    #[test]
    fn the_built_in_templates_render_every_message() {
        let templates = MailTemplates::load(None, "Shop").unwrap();
        for kind in EmailKind::ALL {
            let rendered = templates.render(&sample(kind)).unwrap();
            assert!(rendered.subject.contains("Shop"), "{rendered:?}");
            let text = rendered.text.unwrap();
            let html = rendered.html.unwrap();
            assert!(
                text.contains("someone") && html.contains("someone"),
                "{kind:?}"
            );
            if kind.has_link() {
                let link = "https://example.com/#/link/MQ/sample-token";
                assert!(text.contains(link) && html.contains(link), "{kind:?}");
            }
        }
    }

    #[test]
    fn a_djoser_template_renders_with_djosers_context() {
        let dir = folder(&[("activation.html", DJOSER_ACTIVATION)]);
        let rendered = load(&dir).unwrap().render(&activation_for("bob")).unwrap();
        assert_eq!(rendered.subject, "Account activation on Shop");
        let text = rendered.text.unwrap();
        assert!(
            text.starts_with("Hi Shop user, bob\nPlease go to"),
            "{text}"
        );
        assert!(text.contains("https://example.com/#/link/MQ/sample-token\nMQ/sample-token"));
        let html = rendered.html.unwrap();
        assert!(html.starts_with("<p>Hello bob</p>"), "{html}");
    }

    #[test]
    fn html_bodies_escape_variables_and_text_bodies_do_not() {
        let dir = folder(&[("activation.html", DJOSER_ACTIVATION)]);
        let email = activation_for("<script>x</script>");
        let rendered = load(&dir).unwrap().render(&email).unwrap();
        assert!(rendered.text.unwrap().contains("<script>x</script>"));
        let html = rendered.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn a_django_project_templates_folder_works_too_and_includes_stay_inside() {
        let dir = folder(&[
            (
                "email/password_reset.html",
                r#"{% extends "email/base.html" %}{% block subject %}Reset: {{ block.super }}{% endblock %}"#,
            ),
            (
                "email/base.html",
                "{% block subject %}{{ site_name|upper }}{% endblock %}{% block text_body %}{% include \"email/footer.txt\" %}{% endblock %}",
            ),
            (
                "email/footer.txt",
                "Bye {{ user.first_name|default:\"you\" }}",
            ),
        ]);
        let rendered = load(&dir)
            .unwrap()
            .render(&sample(EmailKind::PasswordReset))
            .unwrap();
        assert_eq!(rendered.subject, "Reset: SHOP");
        assert_eq!(rendered.text.as_deref(), Some("Bye Some"));
        assert_eq!(rendered.html, None, "no html_body: a text-only message");
    }

    #[test]
    fn names_leaving_the_folder_are_refused_at_start() {
        for include in [
            "../../etc/passwd",
            "/etc/passwd",
            "email/../../x",
            "a\\..\\b",
        ] {
            let template = format!(
                "{{% block subject %}}S{{% endblock %}}{{% block text_body %}}{{% include \"{}\" %}}{{% endblock %}}",
                include.replace('\\', "\\\\")
            );
            let dir = folder(&[("activation.html", &template)]);
            let err = load(&dir).err().unwrap();
            assert!(err.contains("refused"), "{include}: {err}");
        }
        #[cfg(unix)]
        {
            let outside = folder(&[("secret.html", "secret")]);
            let dir = folder(&[(
                "activation.html",
                "{% block subject %}S{% endblock %}{% block text_body %}{% include \"link.html\" %}{% endblock %}",
            )]);
            std::os::unix::fs::symlink(
                outside.path().join("secret.html"),
                dir.path().join("link.html"),
            )
            .unwrap();
            let err = load(&dir).err().unwrap();
            assert!(err.contains("leads outside"), "{err}");
        }
    }

    #[test]
    fn broken_templates_stop_the_start_naming_file_and_line() {
        let dir = folder(&[(
            "confirmation.html",
            "{% block subject %}S{% endblock %}\n{% block text_body %}\n{% if x %}\n{% endblock %}",
        )]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("confirmation.html"), "{err}");
        assert!(err.contains(":4)") || err.contains(":3)"), "{err}");

        let dir = folder(&[("username_reset.html", "\n\n{% url 'x' %}")]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("username_reset.html line 3"), "{err}");

        let dir = folder(&[("activation.html", "<p>Hello {username}</p>")]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("block subject"), "{err}");

        let dir = folder(&[("activation.html", "{% block subject %}S{% endblock %}")]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("text_body"), "{err}");

        let dir = folder(&[("activation.subject", "Welcome {username}")]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("old format"), "{err}");

        let big = format!(
            "{{% block subject %}}S{{% endblock %}}{{% block text_body %}}{}{{% endblock %}}",
            "x".repeat(MAX_TEMPLATE_BYTES as usize)
        );
        let dir = folder(&[("activation.html", &big)]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("larger than"), "{err}");

        let dir = folder(&[(
            "activation.html",
            "{% block subject %}S{% endblock %}{% block text_body %}{% for i in range(100000) %}{{ i }}{% endfor %}{% endblock %}",
        )]);
        let err = load(&dir).err().unwrap();
        assert!(err.contains("fuel"), "{err}");

        let err = MailTemplates::load(Some("/nonexistent/tessera-mail"), "Shop")
            .err()
            .unwrap();
        assert!(err.contains("email.templates_dir /nonexistent"), "{err}");
    }

    #[test]
    fn subjects_are_one_line_and_empty_bodies_are_absent() {
        let dir = folder(&[(
            "confirmation.html",
            "{% block subject %}\n  Hello\n  {{ user.username }}\n{% endblock %}{% block text_body %} T {% endblock %}{% block html_body %}{% if nothing %}x{% endif %}{% endblock %}",
        )]);
        let rendered = load(&dir)
            .unwrap()
            .render(&sample(EmailKind::Confirmation))
            .unwrap();
        assert_eq!(rendered.subject, "Hello someone");
        assert_eq!(rendered.text.as_deref(), Some("T"));
        assert_eq!(rendered.html, None);
    }

    #[test]
    fn djangos_filters_missing_from_jinja_are_there() {
        assert_eq!(capfirst("élan vital".into()), "Élan vital");
        assert_eq!(
            default_if_none(Value::from(()), Value::from("x")),
            Value::from("x")
        );
        assert_eq!(
            default_if_none(Value::from(""), Value::from("x")),
            Value::from("")
        );
    }
}
