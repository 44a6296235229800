//! Django's template language, as Djoser's email templates use it, rewritten to the Jinja that
//! minijinja compiles. Most of it is already Jinja (`{{ var }}`, filters, `{% if %}`,
//! `{% block %}`, `{% extends %}`, `{% include %}`); what is not is rewritten here:
//!
//! - `{% load ... %}` is dropped; `{% trans "x" %}` / `{% translate %}` becomes the text `x`
//!   (there is one language: the template's) and `{% blocktrans %}...{% endblocktrans %}` its
//!   content, with `with`, `count` + `{% plural %}` (English: one is singular), `trimmed`,
//!   `asvar` and `context` understood;
//! - `|filter:arg` becomes `|filter(arg)`, `block.super` becomes `super()`;
//! - `{% with a=b c=d %}`, `{% empty %}`, `{% autoescape on|off %}`, `{% comment %}` and
//!   `{% verbatim %}` become their Jinja forms.
//!
//! Every line stays where it was, so minijinja's errors name the line of the operator's file.
//! Django tags with no Jinja form (`{% url %}`, `{% static %}`, ...) are refused with their line.

/// Why a template cannot be rewritten; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Django tags that have no Jinja form here: refused with a clear message rather than
/// minijinja's "unknown statement".
const UNSUPPORTED_TAGS: &[&str] = &[
    "url",
    "static",
    "csrf_token",
    "now",
    "cycle",
    "resetcycle",
    "firstof",
    "spaceless",
    "widthratio",
    "templatetag",
    "regroup",
    "lorem",
    "debug",
    "ifchanged",
    "ifequal",
    "ifnotequal",
    "querystring",
    "get_current_language",
    "get_current_language_bidi",
    "get_available_languages",
    "get_language_info",
    "get_language_info_list",
    "language",
    "localize",
    "localtime",
    "timezone",
    "get_static_prefix",
    "get_media_prefix",
];

/// Rewrites a Django template into Jinja, line for line.
pub fn to_jinja(source: &str) -> Result<String, SyntaxError> {
    let mut rewriter = Rewriter {
        src: source,
        pos: 0,
        out: String::with_capacity(source.len() + source.len() / 8),
    };
    rewriter.run()?;
    Ok(rewriter.out)
}

struct Rewriter<'a> {
    src: &'a str,
    pos: usize,
    out: String,
}

/// One `{% ... %}` tag: where it starts and ends in the source and its inner text.
struct Tag<'a> {
    start: usize,
    end: usize,
    inner: &'a str,
}

impl<'a> Rewriter<'a> {
    fn run(&mut self) -> Result<(), SyntaxError> {
        while let Some((start, kind)) = next_opening(self.src, self.pos) {
            self.out.push_str(&self.src[self.pos..start]);
            let close = match kind {
                b'#' => "#}",
                b'{' => "}}",
                _ => "%}",
            };
            let Some(end) = closing(self.src, start + 2, close, kind != b'#') else {
                // Unclosed: left as it is for minijinja to report.
                self.out.push_str(&self.src[start..]);
                self.pos = self.src.len();
                return Ok(());
            };
            let inner = &self.src[start + 2..end];
            self.pos = end + 2;
            match kind {
                b'#' => {
                    self.out.push_str(&self.src[start..self.pos]);
                }
                b'{' => {
                    self.out.push_str("{{");
                    self.out.push_str(&rewrite_expression(inner));
                    self.out.push_str("}}");
                }
                _ => self.tag(Tag {
                    start,
                    end: self.pos,
                    inner,
                })?,
            }
        }
        self.out.push_str(&self.src[self.pos..]);
        self.pos = self.src.len();
        Ok(())
    }

    fn tag(&mut self, tag: Tag<'a>) -> Result<(), SyntaxError> {
        let (left, body, right) = whitespace_markers(tag.inner);
        let words = split_words(body);
        let name = words.first().copied().unwrap_or("");
        let line = line_at(self.src, tag.start);
        let error = |message: String| SyntaxError { line, message };
        match name {
            "load" => {}
            "trans" | "translate" => self.trans(&words).map_err(error)?,
            "blocktrans" | "blocktranslate" => self.blocktrans(&tag, &words)?,
            "comment" => {
                let end = self.find_end(&tag, tag.end, &["endcomment"])?;
                push_newlines_of(&mut self.out, &self.src[tag.end..end.start]);
                self.pos = end.end;
            }
            "verbatim" => {
                let closer = match words.get(1) {
                    Some(label) => format!("endverbatim {label}"),
                    None => "endverbatim".to_owned(),
                };
                let end = self.find_end(&tag, tag.end, &[closer.as_str()])?;
                let content = &self.src[tag.end..end.start];
                if content.contains("endraw") {
                    return Err(error("{% verbatim %} cannot hold the word endraw".into()));
                }
                self.out.push_str("{% raw %}");
                self.out.push_str(content);
                self.out.push_str("{% endraw %}");
                self.pos = end.end;
            }
            "empty" => self.push_tag(left, "else", right),
            "autoescape" => {
                let mode = match words.get(1).copied() {
                    Some("on") => "true",
                    Some("off") => "false",
                    _ => return Err(error("{% autoescape %} takes on or off".into())),
                };
                self.push_tag(left, &format!("autoescape {mode}"), right);
            }
            "with" => {
                let pairs = assignments(&words[1..]).map_err(error)?;
                self.push_tag(left, &format!("with {}", pairs.join(", ")), right);
            }
            "include" if words.iter().any(|w| *w == "with" || *w == "only") => {
                return Err(error(
                    "{% include ... with/only %} is not supported: set the names with {% with %} around the include".into(),
                ));
            }
            "plural" | "endblocktrans" | "endblocktranslate" => {
                return Err(error(format!("{{% {name} %}} without {{% blocktrans %}}")));
            }
            _ if UNSUPPORTED_TAGS.contains(&name) => {
                return Err(error(format!(
                    "Django's {{% {name} %}} tag is not supported in mail templates"
                )));
            }
            _ => {
                self.out.push_str("{%");
                self.out.push_str(&rewrite_expression(tag.inner));
                self.out.push_str("%}");
            }
        }
        Ok(())
    }

    fn push_tag(&mut self, left: &str, body: &str, right: &str) {
        self.out.push_str("{%");
        self.out.push_str(left);
        self.out.push(' ');
        self.out.push_str(body);
        self.out.push(' ');
        self.out.push_str(right);
        self.out.push_str("%}");
    }

    /// `{% trans "text" [noop] [context "c"] [as name] %}`, or a variable instead of the text.
    fn trans(&mut self, words: &[&str]) -> Result<(), String> {
        let value = words
            .get(1)
            .ok_or("{% trans %} needs a text or a variable")?;
        let mut target = None;
        let mut i = 2;
        while i < words.len() {
            match words[i] {
                "noop" => i += 1,
                "context" if i + 1 < words.len() => i += 2,
                "as" if i + 1 < words.len() => {
                    target = Some(words[i + 1]);
                    i += 2;
                }
                other => return Err(format!("{{% trans %}} does not understand '{other}'")),
            }
        }
        let expression = match string_literal(value) {
            Some(text) => jinja_string(&text),
            None => rewrite_expression(value),
        };
        match (target, string_literal(value)) {
            (Some(name), _) => {
                self.out
                    .push_str(&format!("{{% set {name} = {expression} %}}"));
            }
            (None, Some(text)) if !text.contains(['{', '}']) => self.out.push_str(&text),
            // A literal is output as it is (Django marks it safe), never read as a template.
            (None, Some(_)) => self.out.push_str(&format!("{{{{ {expression}|safe }}}}")),
            (None, None) => self.out.push_str(&format!("{{{{ {expression} }}}}")),
        }
        Ok(())
    }

    /// `{% blocktrans [with a=b ...] [count n=x] [context "c"] [trimmed] [asvar v] %}` up to
    /// its `{% endblocktrans %}`, with one `{% plural %}` when counting.
    fn blocktrans(&mut self, tag: &Tag<'a>, words: &[&str]) -> Result<(), SyntaxError> {
        let line = line_at(self.src, tag.start);
        let error = |message: String| SyntaxError { line, message };
        let mut names = Vec::new();
        let mut counter = None;
        let mut trimmed = false;
        let mut asvar = None;
        let mut i = 1;
        while i < words.len() {
            match words[i] {
                "with" => {
                    let n = assignment_len(&words[i + 1..]);
                    names.extend(assignments(&words[i + 1..i + 1 + n]).map_err(error)?);
                    i += 1 + n;
                }
                "count" => {
                    let n = match words.get(i + 1..) {
                        Some([pair, ..]) if pair.contains('=') => 1,
                        Some([_, "as", _, ..]) => 3,
                        _ => 0,
                    };
                    let pair = assignments(&words[i + 1..i + 1 + n]).map_err(error)?;
                    let Some(pair) = pair.into_iter().next() else {
                        return Err(error("{% blocktrans count %} needs name=value".into()));
                    };
                    counter = pair.split('=').next().map(str::to_owned);
                    names.push(pair);
                    i += 1 + n;
                }
                "context" if i + 1 < words.len() => i += 2,
                "trimmed" => {
                    trimmed = true;
                    i += 1;
                }
                "asvar" if i + 1 < words.len() => {
                    asvar = Some(words[i + 1]);
                    i += 2;
                }
                other => {
                    return Err(error(format!(
                        "{{% blocktrans %}} does not understand '{other}'"
                    )));
                }
            }
        }
        let ends = ["endblocktrans", "endblocktranslate"];
        let mut parts = Vec::new();
        let mut from = tag.end;
        let end = loop {
            let next = self.find_end(tag, from, &["plural", ends[0], ends[1]])?;
            parts.push(&self.src[from..next.start]);
            from = next.end;
            if split_words(whitespace_markers(next.inner).1).first() != Some(&"plural") {
                break next;
            }
        };
        match (&counter, parts.len()) {
            (None, 1) | (Some(_), 2) => {}
            (None, _) => {
                return Err(error(
                    "{% plural %} needs {% blocktrans count ... %}".into(),
                ));
            }
            (Some(_), _) => {
                return Err(error(
                    "{% blocktrans count %} needs one {% plural %}".into(),
                ));
            }
        }
        let mut dropped_lines = String::new();
        let parts: Vec<String> = parts
            .into_iter()
            .map(|part| {
                let mut jinja = to_jinja(part).map_err(|e| SyntaxError {
                    line: line_at(self.src, tag.start) + e.line - 1,
                    message: e.message,
                })?;
                if trimmed {
                    let kept = trim_whitespace(&jinja);
                    let lost = jinja
                        .matches('\n')
                        .count()
                        .saturating_sub(kept.matches('\n').count());
                    dropped_lines.push_str(&"\n".repeat(lost));
                    jinja = kept;
                }
                Ok(jinja)
            })
            .collect::<Result<_, SyntaxError>>()?;
        if let Some(name) = asvar {
            self.out.push_str(&format!("{{% set {name} %}}"));
        }
        if !names.is_empty() {
            self.out
                .push_str(&format!("{{% with {} %}}", names.join(", ")));
        }
        match (&counter, parts.as_slice()) {
            (Some(counter), [one, many]) => self.out.push_str(&format!(
                "{{% if {counter} == 1 %}}{one}{{% else %}}{many}{{% endif %}}"
            )),
            (_, parts) => self.out.push_str(&parts.concat()),
        }
        if !names.is_empty() {
            self.out.push_str("{% endwith %}");
        }
        if asvar.is_some() {
            self.out.push_str("{% endset %}");
        }
        if !dropped_lines.is_empty() {
            self.out.push_str(&format!("{{#{dropped_lines}#}}"));
        }
        self.pos = end.end;
        Ok(())
    }

    /// The first tag from `from` on named one of `names` (its words, after the markers).
    fn find_end(
        &self,
        opening: &Tag<'a>,
        from: usize,
        names: &[&str],
    ) -> Result<Tag<'a>, SyntaxError> {
        let mut pos = from;
        while let Some(start) = self.src[pos..].find("{%").map(|i| i + pos) {
            let Some(end) = closing(self.src, start + 2, "%}", true) else {
                break;
            };
            let inner = &self.src[start + 2..end];
            let words = split_words(whitespace_markers(inner).1).join(" ");
            if names.contains(&words.as_str()) {
                return Ok(Tag {
                    start,
                    end: end + 2,
                    inner,
                });
            }
            if opening_is_blocktrans(opening.inner) {
                return Err(SyntaxError {
                    line: line_at(self.src, start),
                    message: "no other tag may stand inside {% blocktrans %}".into(),
                });
            }
            pos = end + 2;
        }
        Err(SyntaxError {
            line: line_at(self.src, opening.start),
            message: format!(
                "{{%{}%}} is never closed by {{% {} %}}",
                opening.inner,
                names.last().copied().unwrap_or("end")
            ),
        })
    }
}

fn opening_is_blocktrans(inner: &str) -> bool {
    matches!(
        split_words(whitespace_markers(inner).1).first(),
        Some(&"blocktrans" | &"blocktranslate")
    )
}

/// The next `{%`, `{{` or `{#` at or after `from`, and which it is.
fn next_opening(src: &str, from: usize) -> Option<(usize, u8)> {
    let bytes = src.as_bytes();
    let mut i = from;
    while let Some(offset) = src[i..].find('{') {
        let at = i + offset;
        match bytes.get(at + 1) {
            Some(&kind @ (b'%' | b'{' | b'#')) => return Some((at, kind)),
            _ => i = at + 1,
        }
    }
    None
}

/// Where `close` starts, from `from` on; with `quoted`, not inside a string literal.
fn closing(src: &str, from: usize, close: &str, quoted: bool) -> Option<usize> {
    if !quoted {
        return src[from..].find(close).map(|i| i + from);
    }
    let bytes = src.as_bytes();
    let mut quote = None;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if src[i..].starts_with(close) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

fn line_at(src: &str, pos: usize) -> usize {
    src[..pos].matches('\n').count() + 1
}

/// Keeps the line count of removed text: its newlines inside a Jinja comment.
fn push_newlines_of(out: &mut String, removed: &str) {
    let n = removed.matches('\n').count();
    if n > 0 {
        out.push_str("{#");
        out.push_str(&"\n".repeat(n));
        out.push_str("#}");
    }
}

/// Jinja's whitespace markers (`{%- ... -%}`), kept, and the tag's text between them.
fn whitespace_markers(inner: &str) -> (&str, &str, &str) {
    let left = if inner.starts_with(['-', '+']) {
        &inner[..1]
    } else {
        ""
    };
    let right = if inner.len() > left.len() && inner.ends_with(['-', '+']) {
        &inner[inner.len() - 1..]
    } else {
        ""
    };
    (left, &inner[left.len()..inner.len() - right.len()], right)
}

/// Splits on whitespace outside string literals (Django's `smart_split`).
fn split_words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push(&text[s..i]);
                }
            }
            None => {
                start.get_or_insert(i);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

/// How many words from the start are `name=value` pairs or legacy `value as name` triples
/// (joined by `and`).
fn assignment_len(words: &[&str]) -> usize {
    let mut i = 0;
    while i < words.len() {
        if words[i].contains('=') && !words[i].starts_with(['"', '\'']) {
            i += 1;
        } else if words.get(i + 1) == Some(&"as") && i + 2 < words.len() {
            i += 3;
        } else if words[i] == "and" && i > 0 {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// `a=b c=d` or `b as a and d as c` as Jinja's `a=b`, `c=d`.
fn assignments(words: &[&str]) -> Result<Vec<String>, String> {
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if let Some((name, value)) = words[i].split_once('=') {
            pairs.push(format!("{name}={}", rewrite_expression(value)));
            i += 1;
        } else if words.get(i + 1) == Some(&"as") && i + 2 < words.len() {
            pairs.push(format!("{}={}", words[i + 2], rewrite_expression(words[i])));
            i += 3;
        } else if words[i] == "and" {
            i += 1;
        } else {
            return Err(format!("expected name=value, found '{}'", words[i]));
        }
    }
    if pairs.is_empty() {
        return Err("expected name=value".into());
    }
    Ok(pairs)
}

/// The text of a Django string literal (`"..."` or `'...'`), if `word` is one.
fn string_literal(word: &str) -> Option<String> {
    let quote = word.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    if word.len() < 2 || !word.ends_with(quote) {
        return None;
    }
    let inner = &word[1..word.len() - 1];
    Some(
        inner
            .replace(&format!("\\{quote}"), &quote.to_string())
            .replace("\\\\", "\\"),
    )
}

/// A Jinja string literal holding `text` exactly.
fn jinja_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Django's `trim_whitespace` for `{% blocktrans trimmed %}`: lines joined by one space,
/// leading and trailing whitespace gone.
fn trim_whitespace(text: &str) -> String {
    text.trim()
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Inside `{{ }}` and tags: `|name:arg` becomes `|name(arg)`, `block.super` becomes
/// `super()`; string literals are left alone.
fn rewrite_expression(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '"' || c == '\'' {
            let end = literal_end(&chars, i);
            out.push_str(&text[at..byte_at(text, &chars, end)]);
            i = end;
        } else if c == '|' {
            out.push('|');
            i += 1;
            while i < chars.len() && chars[i].1.is_whitespace() {
                out.push(chars[i].1);
                i += 1;
            }
            let name_start = i;
            while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_') {
                i += 1;
            }
            out.push_str(&text[byte_at(text, &chars, name_start)..byte_at(text, &chars, i)]);
            if i > name_start && chars.get(i).is_some_and(|(_, c)| *c == ':') {
                i += 1;
                let arg_start = i;
                if chars.get(i).is_some_and(|(_, c)| *c == '"' || *c == '\'') {
                    i = literal_end(&chars, i);
                } else {
                    while i < chars.len()
                        && !chars[i].1.is_whitespace()
                        && !matches!(chars[i].1, '|' | ')' | ',')
                    {
                        i += 1;
                    }
                }
                out.push('(');
                out.push_str(&text[byte_at(text, &chars, arg_start)..byte_at(text, &chars, i)]);
                out.push(')');
            }
        } else if text[at..].starts_with("block.super")
            && !preceded_by_name(&out)
            && !text[at + "block.super".len()..]
                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            out.push_str("super()");
            i += "block.super".chars().count();
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn preceded_by_name(out: &str) -> bool {
    out.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
}

/// The index just past the string literal starting at `start`.
fn literal_end(chars: &[(usize, char)], start: usize) -> usize {
    let quote = chars[start].1;
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i].1 {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

fn byte_at(text: &str, chars: &[(usize, char)], index: usize) -> usize {
    chars.get(index).map_or(text.len(), |(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jinja(source: &str) -> String {
        to_jinja(source).unwrap()
    }

    #[test]
    fn load_and_trans_become_plain_text() {
        assert_eq!(jinja("{% load i18n %}\nA"), "\nA");
        assert_eq!(jinja(r#"<p>{% trans "Thanks!" %}</p>"#), "<p>Thanks!</p>");
        assert_eq!(jinja("{% translate 'It\\'s' %}"), "It's");
        assert_eq!(jinja(r#"{% trans "x" noop context "menu" %}"#), "x");
        assert_eq!(
            jinja(r#"{% trans "Hi" as greeting %}{{ greeting }}"#),
            r#"{% set greeting = "Hi" %}{{ greeting }}"#
        );
        assert_eq!(jinja("{% trans title %}"), "{{ title }}");
        // A literal that looks like a template stays text.
        assert_eq!(jinja(r#"{% trans "{{ x }}" %}"#), r#"{{ "{{ x }}"|safe }}"#);
    }

    #[test]
    fn blocktrans_keeps_its_content_and_understands_its_options() {
        assert_eq!(
            jinja("{% blocktrans %}Account activation on {{ site_name }}{% endblocktrans %}"),
            "Account activation on {{ site_name }}"
        );
        assert_eq!(
            jinja(
                "{% blocktranslate with name=user.username|upper %}Hi {{ name }}{% endblocktranslate %}"
            ),
            "{% with name=user.username|upper %}Hi {{ name }}{% endwith %}"
        );
        assert_eq!(
            jinja("{% blocktrans with a=x b=y %}{{ a }}{{ b }}{% endblocktrans %}"),
            "{% with a=x, b=y %}{{ a }}{{ b }}{% endwith %}"
        );
        assert_eq!(
            jinja("{% blocktrans with x as a and y as b %}{{ a }}{{ b }}{% endblocktrans %}"),
            "{% with a=x, b=y %}{{ a }}{{ b }}{% endwith %}"
        );
        assert_eq!(
            jinja(
                "{% blocktrans count n=items|length %}one{% plural %}{{ n }} many{% endblocktrans %}"
            ),
            "{% with n=items|length %}{% if n == 1 %}one{% else %}{{ n }} many{% endif %}{% endwith %}"
        );
        assert_eq!(
            jinja("{% blocktrans asvar t context \"x\" %}T{% endblocktrans %}{{ t }}"),
            "{% set t %}T{% endset %}{{ t }}"
        );
    }

    #[test]
    fn trimmed_blocktrans_joins_lines_and_keeps_the_line_count() {
        let out =
            jinja("{% blocktrans trimmed %}\n  First\n  second\n{% endblocktrans %}\n{{ x }}");
        assert_eq!(out, "First second{#\n\n\n#}\n{{ x }}");
        assert_eq!(out.lines().count(), 5);
    }

    #[test]
    fn filter_arguments_and_block_super_take_jinja_forms() {
        assert_eq!(
            jinja(r#"{{ user.first_name|default:"friend" }}"#),
            r#"{{ user.first_name|default("friend") }}"#
        );
        assert_eq!(jinja("{{ x|default:y|upper }}"), "{{ x|default(y)|upper }}");
        assert_eq!(
            jinja(r#"{% if name|default:"a:b" == "c|d:e" %}"#),
            r#"{% if name|default("a:b") == "c|d:e" %}"#
        );
        assert_eq!(jinja("{{ block.super }}"), "{{ super() }}");
        assert_eq!(jinja("{{ myblock.super }}"), "{{ myblock.super }}");
        assert_eq!(jinja("{{ url|safe }}"), "{{ url|safe }}");
    }

    #[test]
    fn other_django_tags_take_jinja_forms_line_for_line() {
        assert_eq!(
            jinja("{% for x in xs %}{{ x }}{% empty %}none{% endfor %}"),
            "{% for x in xs %}{{ x }}{% else %}none{% endfor %}"
        );
        assert_eq!(
            jinja("{% autoescape off %}{{ x }}{% endautoescape %}"),
            "{% autoescape false %}{{ x }}{% endautoescape %}"
        );
        assert_eq!(
            jinja("{% with a=b c=d %}{% endwith %}"),
            "{% with a=b, c=d %}{% endwith %}"
        );
        assert_eq!(
            jinja("a{% comment \"why\" %}\n{{ broken\n{% endcomment %}b"),
            "a{#\n\n#}b"
        );
        assert_eq!(
            jinja("{% verbatim %}{{ raw }}{% endverbatim %}"),
            "{% raw %}{{ raw }}{% endraw %}"
        );
        assert_eq!(
            jinja("{%- if x -%}{# note #}{% endif %}"),
            "{%- if x -%}{# note #}{% endif %}"
        );
        assert_eq!(
            jinja("{% block subject %}S{% endblock subject %}"),
            "{% block subject %}S{% endblock subject %}"
        );
    }

    #[test]
    fn djangos_other_tags_and_broken_blocktrans_name_their_line() {
        let err = to_jinja("a\n\n{% url 'home' %}").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("{% url %}"), "{err}");
        let err = to_jinja("\n{% blocktrans %}never closed").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("endblocktrans"), "{err}");
        let err = to_jinja("{% blocktrans %}{% if x %}{% endif %}{% endblocktrans %}").unwrap_err();
        assert!(err.message.contains("inside"), "{err}");
        let err = to_jinja("{% blocktrans %}a{% plural %}b{% endblocktrans %}").unwrap_err();
        assert!(err.message.contains("count"), "{err}");
        let err = to_jinja("{% include 'x.html' with a=1 %}").unwrap_err();
        assert!(err.message.contains("include"), "{err}");
        assert!(to_jinja("{% plural %}").is_err());
    }

    #[test]
    fn a_djoser_style_template_keeps_its_lines() {
        let source = "{% load i18n %}\n\n{% block subject %}\n{% blocktrans %}Account activation on {{ site_name }}{% endblocktrans %}\n{% endblock subject %}\n\n{% block text_body %}\n{% trans \"Go:\" %}\n{{ protocol }}://{{ domain }}/{{ url|safe }}\n{% endblock text_body %}\n";
        let out = jinja(source);
        assert_eq!(out.lines().count(), source.lines().count());
        assert!(!out.contains("trans"), "{out}");
        assert!(out.contains("{{ protocol }}://{{ domain }}/{{ url|safe }}"));
    }
}
