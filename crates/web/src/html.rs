//! HTML rendering: escaping and the page frame every page shares (skip link, header with
//! the menu, the language form and sign-out, `<main>`, footer). No script anywhere: the
//! pages are plain forms and links, so they work with a keyboard, a screen reader and the
//! strict Content-Security-Policy of [`crate::SECURITY_HEADERS`].
use crate::Web;
use crate::i18n::{self, LANGUAGES};
use crate::session::Session;

/// Text escaped for HTML content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string component, percent-encoded.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a page says on top of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Something went well.
    Ok,
    /// Something was refused.
    Error,
}

/// One page being rendered.
pub struct Page<'a> {
    /// The application.
    pub web: &'a Web,
    /// The language.
    pub lang: &'a str,
    /// The signed-in user's session (`None` on the sign-in page).
    pub session: Option<&'a Session>,
    /// Where the language form returns to.
    pub here: String,
}

impl Page<'_> {
    /// The message `key` in the page's language, escaped.
    pub fn t(&self, key: &str) -> String {
        esc(self.web.messages.get(self.lang, key))
    }

    /// The message `key` with its placeholders filled (values escaped).
    pub fn tf(&self, key: &str, args: &[(&str, &str)]) -> String {
        let escaped: Vec<(&str, String)> = args.iter().map(|(k, v)| (*k, esc(v))).collect();
        let refs: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (*k, v.as_str())).collect();
        i18n::fill(&esc(self.web.messages.get(self.lang, key)), &refs)
    }

    /// A date in the page's locale.
    pub fn date(&self, iso: &str) -> String {
        esc(&i18n::date(self.lang, iso))
    }

    /// A time in the page's locale.
    pub fn time(&self, rfc3339: &str) -> String {
        esc(&i18n::time(self.lang, rfc3339))
    }

    /// The hidden CSRF field of a form.
    pub fn csrf(&self) -> String {
        match self.session {
            Some(s) => format!(
                r#"<input type="hidden" name="csrf" value="{}">"#,
                esc(&s.csrf)
            ),
            None => String::new(),
        }
    }

    /// A notice paragraph.
    pub fn notice(&self, kind: Notice, html: &str) -> String {
        match kind {
            Notice::Ok => format!(r#"<p class="notice ok" role="status">{html}</p>"#),
            Notice::Error => format!(r#"<div class="notice error" role="alert">{html}</div>"#),
        }
    }

    /// The whole document around `body` (which is trusted HTML).
    pub fn render(&self, title: &str, body: &str) -> String {
        let mut h = String::with_capacity(body.len() + 4096);
        h.push_str("<!DOCTYPE html>\n");
        h.push_str(&format!(
            r#"<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · {app}</title><link rel="stylesheet" href="/web/static/style.css"></head><body>"#,
            lang = esc(self.lang),
            title = esc(title),
            app = self.t("app_name"),
        ));
        h.push_str(&format!(
            r##"<a class="skip" href="#main">{}</a><header><div class="brand"><span class="logo" aria-hidden="true">IMI</span> <span>{}</span></div>"##,
            self.t("skip_to_content"),
            self.t("app_title"),
        ));
        if let Some(s) = self.session {
            h.push_str(&format!(
                r#"<nav aria-label="{}"><ul>"#,
                self.t("nav_label")
            ));
            if s.role == "authority_user" || s.role == "coordinator" {
                for (href, key) in [
                    ("/web/cases", "nav_cases"),
                    ("/web/new", "nav_new_request"),
                    ("/web/directory", "nav_directory"),
                    ("/web/notifications", "nav_notifications"),
                    ("/web/alerts", "nav_alerts"),
                    ("/web/repositories", "nav_repositories"),
                ] {
                    let here = self.here.as_str();
                    let current = if here == href
                        || here.starts_with(&format!("{href}/"))
                        || here.starts_with(&format!("{href}?"))
                    {
                        r#" aria-current="page""#
                    } else {
                        ""
                    };
                    h.push_str(&format!(
                        r#"<li><a href="{href}"{current}>{}</a></li>"#,
                        self.t(key)
                    ));
                }
            }
            if s.role == "auditor" {
                h.push_str(&format!(
                    r#"<li><a href="/web/audit">{}</a></li>"#,
                    self.t("nav_audit")
                ));
            }
            h.push_str("</ul></nav>");
            h.push_str(&format!(
                r#"<div class="who"><span>{}</span> <form method="post" action="/web/sign-out" enctype="multipart/form-data">{}<button type="submit">{}</button></form></div>"#,
                self.tf(
                    "signed_in_as",
                    &[("user", &s.user), ("authority", &s.authority_name)]
                ),
                self.csrf(),
                self.t("sign_out"),
            ));
        }
        h.push_str(&self.language_form());
        h.push_str("</header>");
        h.push_str(&format!(
            r#"<main id="main" tabindex="-1"><h1>{}</h1>{body}</main>"#,
            esc(title)
        ));
        h.push_str(&format!(
            "<footer><p>{}</p></footer></body></html>",
            self.tf("footer_node", &[("node", &self.web.node)])
        ));
        h
    }

    fn language_form(&self) -> String {
        let mut options = String::new();
        for l in LANGUAGES {
            options.push_str(&format!(
                r#"<option value="{l}" lang="{l}"{sel}>{name}</option>"#,
                sel = if l == self.lang { " selected" } else { "" },
                name = esc(i18n::format(l).name),
            ));
        }
        format!(
            r#"<form class="lang" method="post" action="/web/language" enctype="multipart/form-data">{csrf}<input type="hidden" name="back" value="{back}"><label for="lang-select">{label}</label> <select id="lang-select" name="lang">{options}</select> <button type="submit">{apply}</button></form>"#,
            csrf = self.csrf(),
            back = esc(&self.here),
            label = self.t("language"),
            apply = self.t("language_apply"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(url("a b/é"), "a%20b%2F%C3%A9");
    }
}
