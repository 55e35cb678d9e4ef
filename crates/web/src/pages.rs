//! The pages: sign-in and sign-out, the language, the case list, a case with its actions,
//! a new request, the auditor's page. Each handler calls the API's routes with the user's
//! token ([`Web::call`]) and renders what they answer.
// A handler's early return is the response itself (a redirect or an error page), handed
// back once per request: its size does not matter.
#![allow(clippy::result_large_err)]

use crate::forms::{self, Form, Refusal};
use crate::html::{Notice, Page, esc, url};
use crate::i18n;
use crate::session::{self, COOKIE, LANG_COOKIE, LOGIN_COOKIE, Session};
use crate::{Reply, Web, cookies};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Params = Query<BTreeMap<String, String>>;

/// A signed-in request: the session's cookie value, the session and the language.
pub(crate) struct Ctx {
    pub(crate) id: String,
    pub(crate) s: Session,
    pub(crate) lang: &'static str,
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A value safe to put back in a query string: a problem code, an action, a state.
pub(crate) fn token_like(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
    .then_some(s)
}

pub(crate) fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

impl Web {
    /// The language of a browser that is not signed in.
    pub(crate) fn anon_lang(&self, headers: &HeaderMap) -> &'static str {
        i18n::negotiate(
            session::cookie(cookies(headers), LANG_COOKIE),
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        )
    }

    /// The signed-in request, or the redirect to the sign-in page.
    pub(crate) fn ctx(&self, headers: &HeaderMap) -> Result<Ctx, Response> {
        let id =
            session::cookie(cookies(headers), COOKIE).ok_or_else(|| see_other("/web/sign-in"))?;
        let s = self
            .sessions
            .get(id, self.now())
            .ok_or_else(|| see_other("/web/sign-in?ended=1"))?;
        let lang = i18n::negotiate(
            s.lang.as_deref(),
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        Ok(Ctx {
            id: id.to_owned(),
            s,
            lang,
        })
    }

    pub(crate) fn page<'a>(&'a self, c: &'a Ctx, here: &str) -> Page<'a> {
        Page {
            web: self,
            lang: c.lang,
            session: Some(&c.s),
            here: here.to_owned(),
        }
    }

    /// A GET of the API; an error becomes the page to show (401 ends the session).
    pub(crate) async fn get(&self, c: &Ctx, here: &str, path: &str) -> Result<Value, Response> {
        let r = self
            .call(Method::GET, path, &c.s.token, c.lang, None, None)
            .await;
        if r.ok() {
            return Ok(r.json);
        }
        Err(self.failed(c, here, &r))
    }

    /// The page for an API error.
    pub(crate) fn failed(&self, c: &Ctx, here: &str, r: &Reply) -> Response {
        if r.status == StatusCode::UNAUTHORIZED {
            self.sessions.end(&c.id);
            tracing::info!(user = %c.s.user, "web: the API refused the session's token; session ended");
            return with_cookie(
                see_other("/web/sign-in?ended=1"),
                &session::set_cookie(COOKIE, "", 0),
            );
        }
        let p = self.page(c, here);
        let body = format!(
            "{}<p><a href=\"/web/cases\">{}</a></p>",
            p.notice(Notice::Error, &error_text(&p, r.status.as_u16(), r.code())),
            p.t("back_to_cases")
        );
        let status = if r.status.is_client_error() || r.status.is_server_error() {
            r.status
        } else {
            StatusCode::BAD_GATEWAY
        };
        html(status, p.render(&p.t("error_title"), &body))
    }

    /// A state-changing form of a signed-in user: the session, then [`Web::form`]'s checks.
    /// Without a session the form is still read before the answer ([`forms::discard`]).
    pub(crate) async fn session_form(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        mp: Multipart,
    ) -> Result<(Ctx, Form), Response> {
        let c = match self.ctx(headers) {
            Ok(c) => c,
            Err(r) => {
                forms::discard(mp).await;
                return Err(r);
            }
        };
        let form = self.form(&c, headers, uri, mp).await?;
        Ok((c, form))
    }

    /// The checks of a state-changing form: same origin, a readable form, the CSRF token.
    pub(crate) async fn form(
        &self,
        c: &Ctx,
        headers: &HeaderMap,
        uri: &Uri,
        mp: Multipart,
    ) -> Result<Form, Response> {
        let refusal = |r: Refusal| {
            let p = self.page(c, "/web/cases");
            let (status, text) = match r {
                Refusal::Forged => (StatusCode::FORBIDDEN, p.t("error_csrf")),
                Refusal::Malformed => (StatusCode::BAD_REQUEST, p.t("error_400")),
                Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, p.t("error_413")),
            };
            if r == Refusal::Forged {
                tracing::warn!(user = %c.s.user, "web: form refused (cross-site or without its CSRF token)");
            }
            html(
                status,
                p.render(&p.t("error_title"), &p.notice(Notice::Error, &text)),
            )
        };
        let form = forms::read_same_origin(headers, uri, mp)
            .await
            .map_err(refusal)?;
        if !session::same_secret(form.get("csrf"), &c.s.csrf) {
            return Err(refusal(Refusal::Forged));
        }
        Ok(form)
    }
}

impl Web {
    /// A POST of the API with a JSON body and the form's idempotency key.
    pub(crate) async fn post(
        &self,
        c: &Ctx,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Reply {
        self.call(
            Method::POST,
            path,
            &c.s.token,
            c.lang,
            Some(body),
            idempotency_key,
        )
        .await
    }

    /// The answer to a step on the object whose page is `page`: back to the page with
    /// `done` (a query string) when the API took it, or with the problem's code when it
    /// refused it; the session's end or the object's 404 page when that is what the API
    /// said.
    pub(crate) fn after_step(&self, c: &Ctx, page: &str, r: &Reply, done: &str) -> Response {
        if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::NOT_FOUND {
            return self.failed(c, page, r);
        }
        if r.ok() {
            return see_other(&format!("{page}?{done}#main"));
        }
        let code = r.code().and_then(token_like).unwrap_or("error");
        see_other(&format!(
            "{page}?error={code}&status={}#main",
            r.status.as_u16()
        ))
    }

    /// The page of a refused creation (a new request, a new notification): the problem in
    /// the user's language and a way back to the form, `back`.
    pub(crate) fn creation_refused(
        &self,
        c: &Ctx,
        back: &str,
        title_key: &str,
        r: &Reply,
    ) -> Response {
        if r.status == StatusCode::UNAUTHORIZED {
            return self.failed(c, back, r);
        }
        let p = self.page(c, back);
        let body = format!(
            r#"{}<p><a href="{}">{}</a></p>"#,
            p.notice(Notice::Error, &error_text(&p, r.status.as_u16(), r.code())),
            esc(back),
            p.t("change")
        );
        html(r.status, p.render(&p.t(title_key), &body))
    }
}

/// The notice of a refused step, from the page's query (`error=<code>&status=<n>`, as
/// [`Web::after_step`] redirects), or nothing.
pub(crate) fn refused_notice(p: &Page<'_>, q: &BTreeMap<String, String>) -> String {
    match q.get("error").map(String::as_str).and_then(token_like) {
        Some(code) => {
            let status = q
                .get("status")
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(422);
            p.notice(Notice::Error, &error_text(p, status, Some(code)))
        }
        None => String::new(),
    }
}

/// An API error as a sentence in the page's language, with its code.
pub fn error_text(p: &Page<'_>, status: u16, code: Option<&str>) -> String {
    let m = &p.web.messages;
    let specific = code.map(|c| format!("code_{c}")).filter(|k| m.has(k));
    let key = specific.unwrap_or_else(|| {
        let k = format!("error_{status}");
        if m.has(&k) {
            k
        } else if status >= 500 {
            "error_500".into()
        } else {
            "error_400".into()
        }
    });
    let mut s = p.t(&key);
    if let Some(c) = code {
        s.push_str(&format!(
            " <span class=\"code\">{}</span>",
            p.tf("error_code", &[("code", c)])
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------
// Sign-in, sign-out, language
// ---------------------------------------------------------------------------------------

/// `GET /web/sign-in`.
pub async fn sign_in_form(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let lang = web.anon_lang(&headers);
    let notice = if q.contains_key("ended") {
        Some((Notice::Error, "session_ended"))
    } else if q.contains_key("out") {
        Some((Notice::Ok, "signed_out"))
    } else {
        None
    };
    sign_in_page(&web, lang, StatusCode::OK, notice)
}

fn sign_in_page(
    web: &Web,
    lang: &'static str,
    status: StatusCode,
    notice: Option<(Notice, &str)>,
) -> Response {
    let p = Page {
        web,
        lang,
        session: None,
        here: "/web/sign-in".into(),
    };
    let login = session::random_token();
    let mut body = String::new();
    if let Some((kind, key)) = notice {
        body.push_str(&p.notice(kind, &p.t(key)));
    }
    body.push_str(&format!(
        r#"<p>{intro}</p><form method="post" action="/web/sign-in" enctype="multipart/form-data" class="stack"><input type="hidden" name="login" value="{login}"><label for="token">{label}</label><input id="token" name="token" type="password" autocomplete="off" required aria-describedby="token-help" spellcheck="false"><p id="token-help" class="help">{help}</p><button type="submit">{submit}</button></form>"#,
        intro = p.t("signin_intro"),
        label = p.t("signin_token"),
        help = p.t("signin_token_help"),
        submit = p.t("signin_submit"),
    ));
    let r = html(status, p.render(&p.t("signin_title"), &body));
    with_cookie(r, &session::set_cookie(LOGIN_COOKIE, &login, 600))
}

/// `POST /web/sign-in`.
pub async fn sign_in(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    mp: Multipart,
) -> Response {
    let lang = web.anon_lang(&headers);
    let expected = session::cookie(cookies(&headers), LOGIN_COOKIE).unwrap_or("");
    let forged = |why: &str| {
        tracing::warn!(why, "web: sign-in form refused");
        sign_in_page(
            &web,
            lang,
            StatusCode::FORBIDDEN,
            Some((Notice::Error, "error_csrf")),
        )
    };
    let form = match forms::read_same_origin(&headers, &uri, mp).await {
        Ok(form) => form,
        Err(Refusal::Forged) => return forged("cross-site"),
        Err(_) => return forged("unreadable form"),
    };
    if expected.is_empty() {
        return forged("no sign-in cookie");
    }
    if !session::same_secret(form.get("login"), expected) {
        return forged("the sign-in cookie does not match the form");
    }
    let token = form.get("token");
    if !token.starts_with(imi_api::users::TOKEN_PREFIX) || token.len() > 128 {
        return sign_in_page(
            &web,
            lang,
            StatusCode::UNAUTHORIZED,
            Some((Notice::Error, "signin_failed")),
        );
    }
    let me = web
        .call(Method::GET, "/api/v1/me", token, lang, None, None)
        .await;
    if !me.ok() {
        return sign_in_page(
            &web,
            lang,
            StatusCode::UNAUTHORIZED,
            Some((Notice::Error, "signin_failed")),
        );
    }
    let role = str_of(&me.json, "role").to_owned();
    let s = Session {
        token: token.to_owned(),
        user: str_of(&me.json, "id").to_owned(),
        authority: str_of(&me.json, "authority").to_owned(),
        authority_name: me
            .json
            .get("authority_name")
            .and_then(Value::as_str)
            .unwrap_or(str_of(&me.json, "authority"))
            .to_owned(),
        role: role.clone(),
        csrf: session::random_token(),
        lang: session::cookie(cookies(&headers), LANG_COOKIE).map(str::to_owned),
        created: 0,
        seen: 0,
    };
    tracing::info!(user = %s.user, "web: signed in");
    let id = web.sessions.start(s, web.now());
    let home = if role == "auditor" {
        "/web/audit"
    } else {
        "/web/cases"
    };
    let r = with_cookie(
        see_other(home),
        &session::set_cookie(COOKIE, &id, session::MAX_AGE_MS / 1000),
    );
    with_cookie(r, &session::set_cookie(LOGIN_COOKIE, "", 0))
}

/// `POST /web/sign-out`.
pub async fn sign_out(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    mp: Multipart,
) -> Response {
    let c = match web.session_form(&headers, &uri, mp).await {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    web.sessions.end(&c.id);
    tracing::info!(user = %c.s.user, "web: signed out");
    with_cookie(
        see_other("/web/sign-in?out=1"),
        &session::set_cookie(COOKIE, "", 0),
    )
}

/// `POST /web/language`: the language choice, kept in the session and a cookie.
pub async fn language(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    mp: Multipart,
) -> Response {
    let form = match web.ctx(&headers) {
        Ok(c) => match web.form(&c, &headers, &uri, mp).await {
            Ok(f) => {
                if let Some(l) = i18n::LANGUAGES.iter().find(|l| **l == f.get("lang")) {
                    web.sessions.set_lang(&c.id, l);
                }
                f
            }
            Err(r) => return r,
        },
        Err(_) => match forms::read_same_origin(&headers, &uri, mp).await {
            Ok(f) => f,
            Err(Refusal::Forged) => return StatusCode::FORBIDDEN.into_response(),
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        },
    };
    let back = form.get("back");
    let back = if back.starts_with("/web/") && !back.contains("//") && !back.contains('\\') {
        back
    } else {
        "/web/cases"
    };
    match i18n::LANGUAGES.iter().find(|l| **l == form.get("lang")) {
        Some(l) => with_cookie(
            see_other(back),
            &session::set_cookie(LANG_COOKIE, l, 365 * 86_400),
        ),
        None => see_other(back),
    }
}

/// Any other path under `/web/`.
pub async fn not_found(State(web): State<Web>, headers: HeaderMap) -> Response {
    status_page(&web, &headers, StatusCode::NOT_FOUND)
}

/// The page of an error status, in the user's language.
pub fn status_page(web: &Web, headers: &HeaderMap, status: StatusCode) -> Response {
    let lang = match web.ctx(headers) {
        Ok(c) => c.lang,
        Err(_) => web.anon_lang(headers),
    };
    let p = Page {
        web,
        lang,
        session: None,
        here: "/web/cases".into(),
    };
    html(
        status,
        p.render(
            &p.t("error_title"),
            &format!(
                "{}<p><a href=\"/web/cases\">{}</a></p>",
                p.notice(Notice::Error, &error_text(&p, status.as_u16(), None)),
                p.t("back_to_cases")
            ),
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

const STATES: [&str; 8] = [
    "sent",
    "accepted",
    "deadline_proposed",
    "info_requested",
    "answered",
    "referred",
    "closed",
    "withdrawn",
];

/// Legal areas and procedures by code, in the user's language.
pub(crate) async fn names(web: &Web, c: &Ctx) -> BTreeMap<String, String> {
    let r = web
        .call(
            Method::GET,
            &format!("/api/v1/catalogue?lang={}", c.lang),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await;
    let mut m = BTreeMap::new();
    for a in r
        .json
        .get("areas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.insert(str_of(a, "code").to_owned(), str_of(a, "name").to_owned());
        for p in a
            .get("procedures")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.insert(str_of(p, "code").to_owned(), str_of(p, "name").to_owned());
        }
    }
    m
}

/// `GET /web/cases`: incoming and outgoing cases, filtered, a page at a time.
pub async fn cases(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let role = q
        .get("role")
        .map(String::as_str)
        .filter(|r| ["requester", "responder"].contains(r));
    let state = q
        .get("state")
        .map(String::as_str)
        .filter(|s| STATES.contains(s));
    let overdue = q.get("overdue").is_some_and(|v| v == "1");
    let cursor = q.get("cursor").map(String::as_str).and_then(token_like);
    let mut path = "/api/v1/requests?limit=25".to_owned();
    let mut here = "/web/cases?".to_owned();
    if let Some(r) = role {
        path.push_str(&format!("&role={r}"));
        here.push_str(&format!("role={r}&"));
    }
    if let Some(s) = state {
        path.push_str(&format!("&status={s}"));
        here.push_str(&format!("state={s}&"));
    }
    if overdue {
        path.push_str("&overdue=true");
        here.push_str("overdue=1&");
    }
    // A coordinator sees the overdue cases of the whole box first, in a list of their own
    // (on the first page), then the others page by page.
    let split = c.s.role == "coordinator" && !overdue;
    if split {
        path.push_str("&overdue=false");
    }
    let filters = here.clone();
    if let Some(cur) = cursor {
        path.push_str(&format!("&cursor={cur}"));
        here.push_str(&format!("cursor={cur}"));
    }
    let list = match web.get(&c, &here, &path).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let late = if split && cursor.is_none() {
        let late_path = path
            .replace("&overdue=false", "&overdue=true")
            .replace("limit=25", "limit=200");
        match web.get(&c, &here, &late_path).await {
            Ok(v) => v,
            Err(r) => return r,
        }
    } else {
        Value::Null
    };
    let names = names(&web, &c).await;
    let p = web.page(&c, &here);
    let rows: Vec<&Value> = items(&list).iter().collect();
    let late_rows: Vec<&Value> = items(&late).iter().collect();
    let mut b = String::new();
    if c.s.role == "coordinator" {
        b.push_str(&format!("<p>{}</p>", p.t("cases_coordinator_intro")));
    }
    // The filter form.
    let opt = |value: &str, label: String, selected: bool| {
        format!(
            r#"<option value="{}"{}>{}</option>"#,
            esc(value),
            if selected { " selected" } else { "" },
            label
        )
    };
    let mut dir = opt("", p.t("direction_all"), role.is_none());
    dir.push_str(&opt(
        "responder",
        p.t("direction_incoming"),
        role == Some("responder"),
    ));
    dir.push_str(&opt(
        "requester",
        p.t("direction_outgoing"),
        role == Some("requester"),
    ));
    let mut st = opt("", p.t("state_any"), state.is_none());
    for s in STATES {
        st.push_str(&opt(s, p.t(&format!("state_{s}")), state == Some(s)));
    }
    b.push_str(&format!(
        r#"<form method="get" action="/web/cases" class="filters"><fieldset><legend>{legend}</legend><div><label for="f-role">{l_dir}</label><select id="f-role" name="role">{dir}</select></div><div><label for="f-state">{l_state}</label><select id="f-state" name="state">{st}</select></div><div class="check"><input type="checkbox" id="f-overdue" name="overdue" value="1"{checked}><label for="f-overdue">{l_over}</label></div><button type="submit">{apply}</button></fieldset></form>"#,
        legend = p.t("filter_legend"),
        l_dir = p.t("filter_direction"),
        l_state = p.t("filter_state"),
        checked = if overdue { " checked" } else { "" },
        l_over = p.t("filter_overdue"),
        apply = p.t("filter_apply"),
    ));
    if !late_rows.is_empty() {
        b.push_str(&format!(
            r#"<h2 id="h-overdue">{}</h2>{}"#,
            p.t("overdue"),
            case_table(&p, &late_rows, &names)
        ));
        if late.get("next_cursor").is_some_and(|n| !n.is_null()) {
            b.push_str(&format!(
                r#"<p><a href="{}overdue=1">{}</a></p>"#,
                esc(&filters),
                p.t("next_page")
            ));
        }
        b.push_str(&format!(r#"<h2 id="h-others">{}</h2>"#, p.t("cases_title")));
    }
    if rows.is_empty() {
        b.push_str(&format!("<p>{}</p>", p.t("no_cases")));
    } else {
        b.push_str(&case_table(&p, &rows, &names));
    }
    let mut nav = String::new();
    if cursor.is_some() {
        nav.push_str(&format!(
            r#"<a href="{}">{}</a> "#,
            esc(&filters),
            p.t("first_page")
        ));
    }
    if let Some(next) = list
        .get("next_cursor")
        .and_then(Value::as_str)
        .and_then(token_like)
    {
        nav.push_str(&format!(
            r#"<a href="{}cursor={}" rel="next">{}</a>"#,
            esc(&filters),
            url(next),
            p.t("next_page")
        ));
    }
    if !nav.is_empty() {
        b.push_str(&format!(r#"<p class="pager">{nav}</p>"#));
    }
    html(StatusCode::OK, p.render(&p.t("cases_title"), &b))
}

// ---------------------------------------------------------------------------------------
// The catalogue as the API renders it
// ---------------------------------------------------------------------------------------

/// The strings of the array `key` of `v` (empty when absent).
pub(crate) fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The procedures of kind `kind` (`notification`, `alert`, ...) in `GET /api/v1/catalogue`,
/// each with its legal area.
pub(crate) fn procedures_of_kind<'a>(cat: &'a Value, kind: &str) -> Vec<(&'a Value, &'a Value)> {
    cat.get("areas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|a| {
            a.get("procedures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(move |p| str_of(p, "kind") == kind)
                .map(move |p| (a, p))
        })
        .collect()
}

/// The procedure `code` of an area (`GET /api/v1/catalogue/{area}`).
pub(crate) fn procedure_in<'a>(area: &'a Value, code: &str) -> Option<&'a Value> {
    area.get("procedures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|x| str_of(x, "code") == code)
}

/// The question `code` of an area (`GET /api/v1/catalogue/{area}`).
pub(crate) fn question_in<'a>(area: &'a Value, code: &str) -> Option<&'a Value> {
    area.get("questions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|x| str_of(x, "code") == code)
}

/// The question objects of a procedure of an area, in the procedure's order.
pub(crate) fn procedure_questions(area: &Value, procedure: &Value) -> Vec<Value> {
    strings(procedure, "questions")
        .into_iter()
        .filter_map(|q| question_in(area, q).cloned())
        .collect()
}

/// The first steps of a new notification or alert (a procedure of kind `kind`), on the page
/// `here`: the type the query names, else the page to choose one (titled `title_key`, the
/// choice headed `legend_key`); then the type (as the list of `GET /api/v1/catalogue` has
/// it) and its legal area's catalogue (`GET /api/v1/catalogue/{area}`: the procedure's
/// questions, optional ones and Commission rule; the questions' texts and options).
pub(crate) async fn chosen_type(
    web: &Web,
    c: &Ctx,
    q: &BTreeMap<String, String>,
    kind: &str,
    here: &str,
    legend_key: &str,
    title_key: &str,
) -> Result<(Value, Value), Response> {
    let cat = web
        .get(c, here, &format!("/api/v1/catalogue?lang={}", c.lang))
        .await?;
    let all = procedures_of_kind(&cat, kind);
    let chosen = q
        .get("type")
        .and_then(|t| all.iter().find(|(_, pr)| str_of(pr, "code") == t));
    let Some((area, procedure)) = chosen else {
        let p = web.page(c, here);
        return Err(choose_type_page(&p, here, legend_key, title_key, &all));
    };
    let detail = web
        .get(
            c,
            here,
            &format!(
                "/api/v1/catalogue/{}?lang={}",
                url(str_of(area, "code")),
                c.lang
            ),
        )
        .await?;
    Ok(((*procedure).clone(), detail))
}

/// The first step of a new notification or alert: a radio button per type (`types`, from
/// [`procedures_of_kind`]), submitted to `action` as `type`.
pub(crate) fn choose_type_page(
    p: &Page<'_>,
    action: &str,
    legend_key: &str,
    title_key: &str,
    types: &[(&Value, &Value)],
) -> Response {
    let mut radios = String::new();
    for (i, (a, pr)) in types.iter().enumerate() {
        radios.push_str(&format!(
            r#"<div class="check"><input type="radio" id="type-{i}" name="type" value="{v}" required><label for="type-{i}">{n} <span class="code">({v}, {area})</span></label></div>"#,
            v = esc(str_of(pr, "code")),
            n = esc(str_of(pr, "name")),
            area = esc(str_of(a, "name")),
        ));
    }
    let b = format!(
        r#"<form method="get" action="{action}" class="stack"><fieldset><legend>{}</legend>{radios}</fieldset><button type="submit">{}</button></form>"#,
        p.t(legend_key),
        p.t("continue")
    );
    html(StatusCode::OK, p.render(&p.t(title_key), &b))
}

/// A table of case summaries (no personal data), overdue ones marked.
fn case_table(p: &Page<'_>, rows: &[&Value], names: &BTreeMap<String, String>) -> String {
    let mut b = format!(
        r#"<table class="cases"><caption>{caption}</caption><thead><tr><th scope="col">{c1}</th><th scope="col">{c2}</th><th scope="col">{c3}</th><th scope="col">{c4}</th><th scope="col">{c5}</th><th scope="col">{c6}</th><th scope="col">{c7}</th><th scope="col">{c8}</th></tr></thead><tbody>"#,
        caption = p.tf(
            "cases_count",
            &[("count", &i18n::number(p.lang, rows.len() as u64))]
        ),
        c1 = p.t("col_case"),
        c2 = p.t("col_area"),
        c3 = p.t("col_procedure"),
        c4 = p.t("col_counterpart"),
        c5 = p.t("col_role"),
        c6 = p.t("col_state"),
        c7 = p.t("col_answer_by"),
        c8 = p.t("col_updated"),
    );
    for v in rows {
        let id = str_of(v, "id");
        let over = v.get("overdue").and_then(Value::as_bool).unwrap_or(false);
        let name = |code: &str| esc(names.get(code).map_or(code, String::as_str));
        b.push_str(&format!(
            r#"<tr{cls}><th scope="row"><a href="/web/cases/{id}"><code>{short}</code><span class="sr-only"> {aria}</span></a></th><td>{area}</td><td>{proc}</td><td>{country}</td><td>{role}</td><td>{state}{over}</td><td>{by}</td><td>{upd}</td></tr>"#,
            cls = if over { r#" class="overdue""# } else { "" },
            id = esc(id),
            aria = p.tf("open_case", &[("id", id)]),
            short = esc(id.get(..8).unwrap_or(id)),
            area = name(str_of(v, "area")),
            proc = name(str_of(v, "procedure")),
            country = esc(str_of(v, "counterpart_country")),
            role = p.t(&format!("role_{}", str_of(v, "my_role"))),
            state = p.t(&format!("state_{}", str_of(v, "state"))),
            over = if over {
                format!(r#" <strong class="badge">{}</strong>"#, p.t("overdue"))
            } else {
                String::new()
            },
            by = p.date(str_of(v, "answer_by")),
            upd = p.time(str_of(v, "updated")),
        ));
    }
    b.push_str("</tbody></table>");
    b
}

/// The text of one rendered answer.
pub(crate) fn answer_value(p: &Page<'_>, a: &Value) -> String {
    match str_of(a, "type") {
        "bool" => match a.get("value").and_then(Value::as_bool) {
            Some(true) => p.t("answer_yes"),
            Some(false) => p.t("answer_no"),
            None => String::new(),
        },
        "date" => p.date(str_of(a, "value")),
        "not_available" => p.t("answer_not_available"),
        "choice" | "choices" => esc(a
            .get("value_text")
            .and_then(Value::as_str)
            .unwrap_or_else(|| str_of(a, "value"))),
        "number" => a
            .get("value")
            .and_then(Value::as_i64)
            .map_or_else(String::new, |n| {
                let s = i18n::number(p.lang, n.unsigned_abs());
                if n < 0 { format!("-{s}") } else { s }
            }),
        _ => esc(str_of(a, "value")),
    }
}

pub(crate) fn attachment_list(p: &Page<'_>, base: &str, list: Option<&Value>) -> String {
    let list = list
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if list.is_empty() {
        return String::new();
    }
    let mut s = String::from(r#"<ul class="files">"#);
    for a in list {
        let name = str_of(a, "name");
        let size = a.get("size").and_then(Value::as_u64).unwrap_or(0);
        s.push_str(&format!(
            r#"<li><a href="{base}/attachments/{sha}?name={uname}">{label}</a></li>"#,
            base = esc(base),
            sha = esc(str_of(a, "sha256")),
            uname = url(name),
            label = p.tf(
                "attachment_download",
                &[("name", name), ("size", &i18n::number(p.lang, size))]
            ),
        ));
    }
    s.push_str("</ul>");
    s
}

pub(crate) fn field_text(id: &str, label: &str, required: bool) -> String {
    format!(
        r#"<label for="{id}">{label}</label><textarea id="{id}" name="{name}" rows="3"{req}></textarea>"#,
        name = id.split_once('-').map_or(id, |(_, n)| n),
        req = if required { " required" } else { "" },
    )
}

pub(crate) fn field_file(id: &str, label: &str) -> String {
    format!(r#"<label for="{id}">{label}</label><input type="file" id="{id}" name="attachment">"#)
}

/// The five ratings by score, 1 (very dissatisfied) to 5 (very satisfied), as the API
/// numbers them (`imi_domain::Rating::score`); each names its message `rating_<name>`.
const RATINGS: [&str; 5] = [
    "very_dissatisfied",
    "dissatisfied",
    "neutral",
    "satisfied",
    "very_satisfied",
];

fn rating_select(p: &Page<'_>, id: &str, label: &str) -> String {
    let mut o = format!(r#"<option value="">{}</option>"#, p.t("rating_none"));
    for (i, k) in RATINGS.iter().enumerate().rev() {
        o.push_str(&format!(
            r#"<option value="{n}">{}</option>"#,
            p.t(&format!("rating_{k}")),
            n = i + 1
        ));
    }
    format!(
        r#"<label for="{id}">{label}</label><select id="{id}" name="{name}">{o}</select>"#,
        name = id.trim_start_matches("close-"),
    )
}

/// The inputs of the answer form: one per question of the case, typed by its answer type.
fn answer_inputs(p: &Page<'_>, view: &Value, catalogue: &Value) -> String {
    let questions: Vec<Value> = view
        .get("questions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    coded_inputs(p, "ans", &questions, catalogue, &[], true)
}

/// One input per coded question (`code`, `text`, `answer_type` as the catalogue has them),
/// its options from the area's `catalogue`; a code in `required` is marked required, and
/// "not available" is offered when `not_available`. The
/// values come back as `a:<code>` with the API's type in `t:<code>` ([`coded_values`]).
pub(crate) fn coded_inputs(
    p: &Page<'_>,
    prefix: &str,
    questions: &[Value],
    catalogue: &Value,
    required: &[&str],
    not_available: bool,
) -> String {
    let mut s = String::new();
    let options_of = |code: &str| -> Vec<(String, String)> {
        catalogue
            .get("questions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|q| str_of(q, "code") == code)
            .and_then(|q| q.get("options"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|o| (str_of(o, "code").to_owned(), str_of(o, "text").to_owned()))
            .collect()
    };
    for (i, q) in questions.iter().enumerate() {
        let code = str_of(q, "code");
        let ty = str_of(q, "answer_type");
        let id = format!("{prefix}-{i}");
        let mark = if required.contains(&code) {
            format!(" {}", p.t("field_required"))
        } else if !required.is_empty() {
            format!(" {}", p.t("field_optional"))
        } else {
            String::new()
        };
        let label = format!(
            r#"{} <span class="code">({})</span>{mark}"#,
            esc(str_of(q, "text")),
            esc(code)
        );
        let name = format!("a:{code}");
        let skip = format!(r#"<option value="">{}</option>"#, p.t("answer_skip"));
        let na = if not_available {
            format!(
                r#"<option value="!na">{}</option>"#,
                p.t("answer_not_available")
            )
        } else {
            String::new()
        };
        // The catalogue's answer type, and the API's for the value.
        let api_ty = match ty {
            "yes_no" | "bool" => "bool",
            "free_text" | "text" => "text",
            "attachment" => continue_attachment(&mut s, &label),
            other => other,
        };
        if api_ty.is_empty() {
            continue;
        }
        s.push_str(r#"<div class="q">"#);
        match api_ty {
            "bool" => s.push_str(&format!(
                r#"<label for="{id}">{label}</label><select id="{id}" name="{n}">{skip}<option value="true">{y}</option><option value="false">{no}</option>{na}</select>"#,
                n = esc(&name),
                y = p.t("answer_yes"),
                no = p.t("answer_no"),
            )),
            "choice" => {
                let mut o = skip.clone();
                for (c, t) in options_of(code) {
                    o.push_str(&format!(r#"<option value="{}">{}</option>"#, esc(&c), esc(&t)));
                }
                o.push_str(&na);
                s.push_str(&format!(
                    r#"<label for="{id}">{label}</label><select id="{id}" name="{n}">{o}</select>"#,
                    n = esc(&name)
                ));
            }
            "choices" => {
                s.push_str(&format!(r#"<fieldset><legend>{label}</legend>"#));
                for (j, (c, t)) in options_of(code).into_iter().enumerate() {
                    s.push_str(&format!(
                        r#"<div class="check"><input type="checkbox" id="{id}-{j}" name="{n}" value="{v}"><label for="{id}-{j}">{t}</label></div>"#,
                        n = esc(&name),
                        v = esc(&c),
                        t = esc(&t)
                    ));
                }
                s.push_str("</fieldset>");
            }
            "date" => s.push_str(&format!(
                r#"<label for="{id}">{label}</label><input type="date" id="{id}" name="{n}">"#,
                n = esc(&name)
            )),
            "number" => s.push_str(&format!(
                r#"<label for="{id}">{label}</label><input type="number" step="1" id="{id}" name="{n}">"#,
                n = esc(&name)
            )),
            _ => s.push_str(&format!(
                r#"<label for="{id}">{label}</label><textarea id="{id}" name="{n}" rows="2"></textarea>"#,
                n = esc(&name)
            )),
        }
        s.push_str(&format!(
            r#"<input type="hidden" name="t:{}" value="{}"></div>"#,
            esc(code),
            esc(api_ty)
        ));
    }
    s
}

/// A question answered by a file: said in the form (the file goes with the answer's
/// attachments); no input of its own.
fn continue_attachment(s: &mut String, label: &str) -> &'static str {
    s.push_str(&format!(r#"<p class="q">{label}</p>"#));
    ""
}

/// `GET /web/cases/{id}`: the case in the reader's language, its timeline and the actions
/// open to the reader.
pub async fn case(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = url(&id);
    let here = format!("/web/cases/{id}");
    let v = match web
        .get(&c, &here, &format!("/api/v1/requests/{id}?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let mut b = String::new();
    // What the last action did.
    b.push_str(&crate::pages::refused_notice(&p, &q));
    if let Some(done) = q.get("done").map(String::as_str).and_then(token_like) {
        let action = p.t(&format!("action_{}", done.replace('-', "_")));
        let mut msg = if done == "create" {
            p.tf("created", &[("id", str_of(&v, "id"))])
        } else {
            p.tf("done", &[("action", &action)])
        };
        match q.get("delivery").map(String::as_str) {
            Some("delivered") => msg.push_str(&format!(" {}", p.t("delivered"))),
            Some("pending") => msg.push_str(&format!(" {}", p.t("delivery_pending"))),
            _ => {}
        }
        b.push_str(&p.notice(Notice::Ok, &msg));
    }
    let state = str_of(&v, "state");
    let party = |k: &str| {
        let x = v.get(k).unwrap_or(&Value::Null);
        format!(
            "{} <span class=\"code\">({})</span>",
            esc(str_of(x, "name")),
            esc(str_of(x, "id"))
        )
    };
    let coded = |k: &str| {
        let x = v.get(k).unwrap_or(&Value::Null);
        format!(
            "{} <span class=\"code\">({})</span>",
            esc(x.get("text").and_then(Value::as_str).unwrap_or("")),
            esc(str_of(x, "code"))
        )
    };
    let mut state_line = p.t(&format!("state_{state}"));
    let detail = v.get("state_detail").unwrap_or(&Value::Null);
    match state {
        "deadline_proposed" => state_line.push_str(&format!(
            " — {}",
            p.tf(
                "case_proposed_deadline",
                &[("date", &i18n::date(c.lang, str_of(detail, "proposed")))]
            )
        )),
        "info_requested" => state_line.push_str(&format!(
            " — {}",
            p.tf(
                "case_info_requested_by",
                &[(
                    "party",
                    web.messages
                        .get(c.lang, &format!("role_{}", str_of(detail, "by")))
                )]
            )
        )),
        "referred" => state_line.push_str(&format!(
            " — {}",
            p.tf(
                "case_referred",
                &[
                    (
                        "party",
                        web.messages
                            .get(c.lang, &format!("role_{}", str_of(detail, "by")))
                    ),
                    ("country", str_of(detail, "coordinator_country")),
                ]
            )
        )),
        _ => {}
    }
    if v.get("overdue").and_then(Value::as_bool).unwrap_or(false) {
        state_line.push_str(&format!(
            r#" <strong class="badge">{}</strong>"#,
            p.t("overdue")
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-summary"><h2 id="h-summary">{h}</h2><dl class="facts"><dt>{l1}</dt><dd>{requester}</dd><dt>{l2}</dt><dd>{responder}</dd><dt>{l3}</dt><dd>{area}</dd><dt>{l4}</dt><dd>{procedure}</dd><dt>{l5}</dt><dd>{state_line}</dd><dt>{l6}</dt><dd>{answer_by}</dd><dt>{l7}</dt><dd>{requested}</dd><dt>{l8}</dt><dd>{created}</dd></dl></section>"#,
        h = p.t("case_summary"),
        l1 = p.t("case_requester"),
        requester = party("requester"),
        l2 = p.t("case_responder"),
        responder = party("responder"),
        l3 = p.t("case_area"),
        area = coded("area"),
        l4 = p.t("case_procedure"),
        procedure = coded("procedure"),
        l5 = p.t("case_state"),
        l6 = p.t("case_answer_by"),
        answer_by = p.date(str_of(&v, "answer_by")),
        l7 = p.t("case_requested_answer_by"),
        requested = p.date(str_of(&v, "requested_answer_by")),
        l8 = p.t("case_created"),
        created = p.time(str_of(&v, "created")),
    ));
    // Subject.
    let subject = v.get("subject").unwrap_or(&Value::Null);
    let mut subj = format!(
        "<dt>{}</dt><dd>{}</dd>",
        p.t("subject_name"),
        esc(str_of(subject, "name"))
    );
    if let Some(d) = subject.get("date_of_birth").and_then(Value::as_str) {
        subj.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            p.t("subject_dob"),
            p.date(d)
        ));
    }
    if let Some(m) = subject
        .get("details")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    {
        let d: Vec<String> = m
            .iter()
            .map(|(k, x)| format!("{}: {}", esc(k), esc(x.as_str().unwrap_or(""))))
            .collect();
        subj.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            p.t("subject_details"),
            d.join("<br>")
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-subject"><h2 id="h-subject">{}</h2><dl class="facts">{subj}</dl></section>"#,
        p.t("subject_title")
    ));
    // Questions and the request's text and files.
    let mut qs = String::from("<ol class=\"questions\">");
    for q in v
        .get("questions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        qs.push_str(&format!(
            r#"<li>{} <span class="code">({})</span></li>"#,
            esc(q.get("text").and_then(Value::as_str).unwrap_or("")),
            esc(str_of(q, "code"))
        ));
    }
    qs.push_str("</ol>");
    let free = str_of(&v, "free_text");
    if !free.is_empty() {
        qs.push_str(&format!(
            r#"<h3>{}</h3><p class="text">{}</p>"#,
            p.t("free_text"),
            esc(free)
        ));
    }
    qs.push_str(&attachment_list(
        &p,
        &format!("/web/cases/{id}"),
        v.get("attachments"),
    ));
    b.push_str(&format!(
        r#"<section aria-labelledby="h-questions"><h2 id="h-questions">{}</h2>{qs}</section>"#,
        p.t("questions_title")
    ));
    // Answers.
    let rounds = v
        .get("answers")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut ans = String::new();
    if rounds.is_empty() {
        ans.push_str(&format!("<p>{}</p>", p.t("no_answer_yet")));
    }
    for r in rounds {
        ans.push_str(&format!(
            "<h3>{}</h3><dl class=\"answers\">",
            p.tf(
                "answer_round",
                &[("date", &i18n::time(c.lang, str_of(r, "at")))]
            )
        ));
        for a in r
            .get("answers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            ans.push_str(&format!(
                r#"<dt>{} <span class="code">({})</span></dt><dd>{}</dd>"#,
                esc(a.get("question_text").and_then(Value::as_str).unwrap_or("")),
                esc(str_of(a, "question")),
                answer_value(&p, a)
            ));
        }
        ans.push_str("</dl>");
        let t = str_of(r, "free_text");
        if !t.is_empty() {
            ans.push_str(&format!(r#"<p class="text">{}</p>"#, esc(t)));
        }
        ans.push_str(&attachment_list(
            &p,
            &format!("/web/cases/{id}"),
            r.get("attachments"),
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-answers"><h2 id="h-answers">{}</h2>{ans}</section>"#,
        p.t("answers_title")
    ));
    // Notes.
    let notes = v
        .get("notes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if !notes.is_empty() {
        let mut n = String::from("<ul class=\"notes\">");
        for x in notes {
            n.push_str(&format!(
                r#"<li><p><strong>{}</strong> · <code>{}</code></p><p class="text">{}</p>{}</li>"#,
                p.time(str_of(x, "at")),
                esc(str_of(x, "by")),
                esc(str_of(x, "text")),
                attachment_list(&p, &format!("/web/cases/{id}"), x.get("attachments"))
            ));
        }
        n.push_str("</ul>");
        b.push_str(&format!(
            r#"<section aria-labelledby="h-notes"><h2 id="h-notes">{}</h2>{n}</section>"#,
            p.t("notes_title")
        ));
    }
    // Ratings of a closed case.
    let ratings = v.get("ratings").unwrap_or(&Value::Null);
    let rating = |k: &str| {
        ratings.get(k).and_then(Value::as_u64).map(|n| {
            let key = RATINGS
                .get(n.saturating_sub(1) as usize)
                .copied()
                .unwrap_or("neutral");
            p.t(&format!("rating_{key}"))
        })
    };
    if let (t, e) = (rating("timeliness"), rating("efforts"))
        && (t.is_some() || e.is_some())
    {
        b.push_str(&format!(
            r#"<section aria-labelledby="h-ratings"><h2 id="h-ratings">{}</h2><dl class="facts"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl></section>"#,
            p.t("ratings_title"),
            p.t("rating_timeliness"),
            t.unwrap_or_else(|| p.t("rating_none")),
            p.t("rating_efforts"),
            e.unwrap_or_else(|| p.t("rating_none")),
        ));
    }
    // Actions.
    let actions: Vec<&str> = v
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let catalogue = if actions.contains(&"answer") {
        let area = v.get("area").map_or("", |a| str_of(a, "code"));
        web.call(
            Method::GET,
            &format!("/api/v1/catalogue/{}?lang={}", url(area), c.lang),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await
        .json
    } else {
        Value::Null
    };
    let mut act = String::new();
    if actions.is_empty() {
        act.push_str(&format!("<p>{}</p>", p.t("no_actions")));
    }
    for a in &actions {
        let key = a.replace('-', "_");
        let fields = match *a {
            "forward" | "reassign" => format!(
                r#"<label for="{a}-to">{}</label><input id="{a}-to" name="to" required autocomplete="off" spellcheck="false">"#,
                p.t("field_authority")
            ),
            "propose-deadline" => format!(
                r#"<label for="{a}-date">{}</label><input type="date" id="{a}-date" name="answer_by" required>"#,
                p.t("field_deadline")
            ),
            "answer" => format!(
                "{}{}{}",
                answer_inputs(&p, &v, &catalogue),
                field_text("answer-free_text", &p.t("field_answer_free_text"), false),
                field_file("answer-file", &p.t("field_attachment")),
            ),
            "request-info" => field_text("request_info-text", &p.t("field_text"), true),
            "provide-info" => format!(
                "{}{}",
                field_text("provide_info-text", &p.t("field_text"), false),
                field_file("provide_info-file", &p.t("field_attachment"))
            ),
            "close" => format!(
                "{}{}",
                rating_select(&p, "close-timeliness", &p.t("rating_timeliness")),
                rating_select(&p, "close-efforts", &p.t("rating_efforts"))
            ),
            "withdraw" => field_text("withdraw-reason", &p.t("field_reason"), true),
            "refer" => field_text("refer-reason", &p.t("field_reason"), true),
            "resolve" => field_text("resolve-note", &p.t("field_note"), false),
            _ => String::new(),
        };
        act.push_str(&format!(
            r#"<form method="post" action="/web/cases/{id}/{a}" enctype="multipart/form-data" class="action stack" id="form-{a}"><h3 id="h-{a}">{title}</h3>{csrf}<input type="hidden" name="idem" value="{idem}">{fields}<button type="submit" name="do" value="{a}" aria-describedby="h-{a}">{title}</button></form>"#,
            title = p.t(&format!("action_{key}")),
            csrf = p.csrf(),
            idem = session::random_token(),
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-actions"><h2 id="h-actions">{}</h2>{act}</section>"#,
        p.t("actions_title")
    ));
    // Timeline.
    let mut tl = format!(
        r#"<table class="timeline"><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        p.t("timeline_title"),
        p.t("timeline_time"),
        p.t("timeline_actor"),
        p.t("timeline_step"),
        p.t("recipient_delivery")
    );
    let deliveries = v
        .get("history_delivery")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, h) in v
        .get("history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let kind = str_of(h, "kind");
        let label = if kind == "create" {
            p.t("state_sent")
        } else {
            p.t(&format!("action_{kind}"))
        };
        let coord = if h
            .get("coordinator")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            format!(" ({})", p.t("timeline_as_coordinator"))
        } else {
            String::new()
        };
        // Where the step's signed envelope stands: the other node's receipt back or not.
        let d = deliveries.get(i).unwrap_or(&Value::Null);
        let when = d
            .get("at")
            .and_then(Value::as_str)
            .map_or_else(String::new, |t| format!(" · {}", p.time(t)));
        let delivery = match str_of(d, "state") {
            "delivered" => format!("{}{when}", p.t("delivery_accepted")),
            "received" => format!("{}{when}", p.t("notification_received_at")),
            "rejected" => format!("{}{when}", p.tf("delivery_rejected", &[("code", "—")])),
            "pending" => format!(
                r#"<strong class="badge">{}</strong>"#,
                p.t("delivery_pending_short")
            ),
            _ => "—".to_owned(),
        };
        tl.push_str(&format!(
            r#"<tr><td>{}</td><td><code>{}</code>{coord}</td><td>{label} <span class="code">({})</span></td><td class="delivery">{delivery}</td></tr>"#,
            p.time(str_of(h, "at")),
            esc(str_of(h, "actor")),
            esc(kind)
        ));
    }
    tl.push_str("</tbody></table>");
    b.push_str(&format!(
        r#"<section aria-labelledby="h-timeline"><h2 id="h-timeline">{}</h2>{tl}</section>"#,
        p.t("timeline_title")
    ));
    b.push_str(&format!(
        r#"<p><a href="/web/cases">{}</a></p>"#,
        p.t("back_to_cases")
    ));
    html(
        StatusCode::OK,
        p.render(&p.tf("case_title", &[("id", str_of(&v, "id"))]), &b),
    )
}

/// Files of a form as the API's `attachments`.
pub(crate) fn attachments(form: &Form) -> Value {
    Value::Array(
        form.files
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "content_base64": base64::engine::general_purpose::STANDARD.encode(&f.bytes),
                })
            })
            .collect(),
    )
}

/// The JSON body of an action from its form.
fn action_body(action: &str, form: &Form) -> Value {
    let rating = |k: &str| {
        form.get(k)
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=5).contains(n))
    };
    match action {
        "forward" | "reassign" => json!({"to": form.get("to")}),
        "propose-deadline" => json!({"answer_by": form.get("answer_by")}),
        "request-info" => json!({"text": form.get("text")}),
        "provide-info" => json!({"text": form.get("text"), "attachments": attachments(form)}),
        "withdraw" | "refer" => json!({"reason": form.get("reason")}),
        "resolve" => json!({"note": form.get("note")}),
        "close" => {
            let mut o = serde_json::Map::new();
            if let Some(n) = rating("timeliness") {
                o.insert("timeliness".into(), json!(n));
            }
            if let Some(n) = rating("efforts") {
                o.insert("efforts".into(), json!(n));
            }
            Value::Object(o)
        }
        "answer" => {
            let answers = coded_values(form);
            json!({
                "answers": answers,
                "free_text": form.get("free_text"),
                "attachments": attachments(form),
            })
        }
        _ => json!({}),
    }
}

/// The coded values of a form made by [`coded_inputs`], as the API's `{question, type,
/// value}` list; a question left empty is left out.
pub(crate) fn coded_values(form: &Form) -> Vec<Value> {
    let mut answers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (k, _) in &form.fields {
        let Some(code) = k.strip_prefix("a:") else {
            continue;
        };
        if !seen.insert(code.to_owned()) {
            continue;
        }
        let ty = form.get(&format!("t:{code}"));
        let values = form.all(k);
        let first = values.first().map_or("", |v| v.trim());
        if first == "!na" {
            answers.push(json!({"question": code, "type": "not_available", "value": null}));
            continue;
        }
        let value = match ty {
            "choices" if values.is_empty() => continue,
            "choices" => json!(values),
            _ if first.is_empty() => continue,
            "bool" => json!(first == "true"),
            "number" => match first.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => json!(first),
            },
            _ => json!(first),
        };
        answers.push(json!({"question": code, "type": ty, "value": value}));
    }
    answers
}

/// Whether every recipient's receipt came back accepted.
pub(crate) fn delivery(reply: &Value) -> &'static str {
    let d = reply.get("delivery").and_then(Value::as_array);
    match d {
        Some(list)
            if !list.is_empty()
                && list
                    .iter()
                    .all(|x| ["accepted", "duplicate"].contains(&str_of(x, "outcome"))) =>
        {
            "delivered"
        }
        _ => "pending",
    }
}

/// `POST /web/cases/{id}/{action}`: one step of the case through the API.
pub async fn act(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    mp: Multipart,
) -> Response {
    let (c, form) = match web.session_form(&headers, &uri, mp).await {
        Ok(cf) => cf,
        Err(r) => return r,
    };
    let id = url(&id);
    if !imi_api::ACTIONS.contains(&action.as_str()) {
        return not_found(State(web), headers).await;
    }
    let body = action_body(&action, &form);
    let r = web
        .post(
            &c,
            &format!("/api/v1/requests/{id}/{action}?wait=delivered"),
            &body,
            form.idempotency_key(),
        )
        .await;
    if r.ok() {
        tracing::info!(user = %c.s.user, case = %id, action = %action, "web: step sent");
    }
    web.after_step(
        &c,
        &format!("/web/cases/{id}"),
        &r,
        &format!("done={action}&delivery={}", delivery(&r.json)),
    )
}

/// `GET /web/cases/{id}/attachments/{sha}`: a file of the case, as a download.
pub async fn attachment(
    State(web): State<Web>,
    headers: HeaderMap,
    Path((id, sha)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (id, sha) = (url(&id), url(&sha));
    let here = format!("/web/cases/{id}");
    let r = web
        .call(
            Method::GET,
            &format!("/api/v1/requests/{id}/attachments/{sha}"),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await;
    if !r.ok() {
        return web.failed(&c, &here, &r);
    }
    download(
        r.bytes,
        q.get("name").map_or("attachment", String::as_str),
        "application/octet-stream",
    )
}

pub(crate) fn download(
    bytes: axum::body::Bytes,
    name: &str,
    content_type: &'static str,
) -> Response {
    let safe: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let safe = if safe.is_empty() {
        "attachment".into()
    } else {
        safe
    };
    let mut r = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

// ---------------------------------------------------------------------------------------
// New request
// ---------------------------------------------------------------------------------------

pub(crate) fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        esc(name),
        esc(value)
    )
}

/// `GET /web/new`: a new request, step by step (legal area, procedure, authority), then
/// the form that sends it.
pub async fn new_request(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pick = |k: &str| {
        q.get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && s.len() <= 200)
    };
    let area = pick("area");
    let procedure = pick("procedure");
    let responder = pick("responder");
    let text = pick("q");
    let country =
        pick("country").filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()));
    let here = "/web/new".to_owned();
    let cat = match web
        .get(&c, &here, &format!("/api/v1/catalogue?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let areas = cat
        .get("areas")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let area_v = area.and_then(|a| areas.iter().find(|x| str_of(x, "code") == a));
    let procs: Vec<&Value> = area_v
        .and_then(|a| a.get("procedures"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|x| str_of(x, "kind") == "request")
        .collect();
    let proc_v = procedure.and_then(|pc| procs.iter().find(|x| str_of(x, "code") == pc).copied());
    let mut b = format!("<p>{}</p>", p.t("new_intro"));
    let change = |keep: &[(&str, &str)]| {
        let qs: Vec<String> = keep
            .iter()
            .map(|(k, v)| format!("{k}={}", url(v)))
            .collect();
        format!(
            r#" <a href="/web/new?{}" class="change">{}</a>"#,
            esc(&qs.join("&")),
            p.t("change")
        )
    };
    // 1. Legal area.
    let Some(area_v) = area_v else {
        let mut radios = String::new();
        for (i, a) in areas.iter().enumerate() {
            radios.push_str(&format!(
                r#"<div class="check"><input type="radio" id="area-{i}" name="area" value="{v}" required><label for="area-{i}">{n} <span class="code">({v})</span></label></div>"#,
                v = esc(str_of(a, "code")),
                n = esc(str_of(a, "name")),
            ));
        }
        b.push_str(&format!(
            r#"<form method="get" action="/web/new" class="stack">{}<fieldset><legend>{}</legend>{radios}</fieldset><button type="submit">{}</button></form>"#,
            responder.map_or_else(String::new, |r| hidden("responder", r)),
            p.t("step_area"),
            p.t("continue")
        ));
        return html(StatusCode::OK, p.render(&p.t("new_title"), &b));
    };
    let area = str_of(area_v, "code");
    b.push_str(&format!(
        r#"<dl class="facts"><dt>{}</dt><dd>{}{}</dd>"#,
        p.t("step_area"),
        esc(str_of(area_v, "name")),
        change(&[])
    ));
    // 2. Procedure.
    let Some(proc_v) = proc_v else {
        b.push_str("</dl>");
        let mut radios = String::new();
        for (i, x) in procs.iter().enumerate() {
            radios.push_str(&format!(
                r#"<div class="check"><input type="radio" id="proc-{i}" name="procedure" value="{v}" required><label for="proc-{i}">{n} <span class="code">({v})</span></label></div>"#,
                v = esc(str_of(x, "code")),
                n = esc(str_of(x, "name")),
            ));
        }
        b.push_str(&format!(
            r#"<form method="get" action="/web/new" class="stack">{}{}<fieldset><legend>{}</legend>{radios}</fieldset><button type="submit">{}</button></form>"#,
            hidden("area", area),
            responder.map_or_else(String::new, |r| hidden("responder", r)),
            p.t("step_procedure"),
            p.t("continue")
        ));
        return html(StatusCode::OK, p.render(&p.t("new_title"), &b));
    };
    let procedure = str_of(proc_v, "code");
    b.push_str(&format!(
        r#"<dt>{}</dt><dd>{}{}</dd>"#,
        p.t("step_procedure"),
        esc(str_of(proc_v, "name")),
        change(&[("area", area)])
    ));
    // 3. The authority asked: a directory search or a country's list.
    let Some(responder) = responder else {
        b.push_str("</dl>");
        let mut countries = format!(
            r#"<option value="">{}</option>"#,
            p.t("authority_any_country")
        );
        for cc in imi_protocol::NodeId::ALL
            .iter()
            .filter(|n| **n != imi_protocol::NodeId::EU)
        {
            let cc = cc.as_str();
            countries.push_str(&format!(
                r#"<option value="{cc}"{}>{cc}</option>"#,
                if country == Some(cc) { " selected" } else { "" }
            ));
        }
        b.push_str(&format!(
            r#"<form method="get" action="/web/new" class="stack" role="search">{}{}<label for="q">{}</label><input id="q" name="q" type="search" value="{}"><label for="country">{}</label><select id="country" name="country">{countries}</select><button type="submit">{}</button></form>"#,
            hidden("area", area),
            hidden("procedure", procedure),
            p.t("authority_search"),
            esc(text.unwrap_or("")),
            p.t("authority_country"),
            p.t("authority_search_submit"),
        ));
        let found = if let Some(t) = text {
            let mut path = format!(
                "/api/v1/directory/search?q={}&procedure={}&limit=20&lang={}",
                url(t),
                url(procedure),
                c.lang
            );
            if let Some(cc) = country {
                path.push_str(&format!("&country={cc}"));
            }
            Some(
                web.call(Method::GET, &path, &c.s.token, c.lang, None, None)
                    .await,
            )
        } else if let Some(cc) = country {
            Some(
                web.call(
                    Method::GET,
                    &format!(
                        "/api/v1/authorities?country={cc}&area={}&limit=50&lang={}",
                        url(area),
                        c.lang
                    ),
                    &c.s.token,
                    c.lang,
                    None,
                    None,
                )
                .await,
            )
        } else {
            None
        };
        if let Some(r) = found {
            if !r.ok() {
                b.push_str(&p.notice(Notice::Error, &error_text(&p, r.status.as_u16(), r.code())));
            } else {
                let mine = c.s.authority.as_str();
                let list: Vec<&Value> = items(&r.json)
                    .iter()
                    .filter(|a| {
                        str_of(a, "id") != mine
                            && !a.get("retired").and_then(Value::as_bool).unwrap_or(false)
                    })
                    .collect();
                if list.is_empty() {
                    b.push_str(&format!("<p>{}</p>", p.t("no_authorities")));
                } else {
                    let mut radios = String::new();
                    for (i, a) in list.iter().enumerate() {
                        radios.push_str(&format!(
                            r#"<div class="check"><input type="radio" id="auth-{i}" name="responder" value="{v}" required><label for="auth-{i}">{n} <span class="code">({v}, {cc})</span></label></div>"#,
                            v = esc(str_of(a, "id")),
                            n = esc(str_of(a, "name")),
                            cc = esc(str_of(a, "country")),
                        ));
                    }
                    b.push_str(&format!(
                        r#"<form method="get" action="/web/new" class="stack">{}{}<fieldset><legend>{}</legend>{radios}</fieldset><button type="submit">{}</button></form>"#,
                        hidden("area", area),
                        hidden("procedure", procedure),
                        p.t("authority_pick"),
                        p.t("continue")
                    ));
                }
            }
        }
        return html(StatusCode::OK, p.render(&p.t("new_title"), &b));
    };
    let auth = web
        .call(
            Method::GET,
            &format!("/api/v1/authorities/{}?lang={}", url(responder), c.lang),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await;
    if !auth.ok() {
        b.push_str("</dl>");
        b.push_str(&p.notice(
            Notice::Error,
            &error_text(&p, auth.status.as_u16(), auth.code()),
        ));
        return html(StatusCode::OK, p.render(&p.t("new_title"), &b));
    }
    b.push_str(&format!(
        r#"<dt>{}</dt><dd>{} <span class="code">({})</span>{}</dd></dl>"#,
        p.t("step_authority"),
        esc(str_of(&auth.json, "name")),
        esc(responder),
        change(&[("area", area), ("procedure", procedure)])
    ));
    // 4-6. Questions, subject, date: the form that sends.
    let detail = match web
        .get(
            &c,
            &here,
            &format!("/api/v1/catalogue/{}?lang={}", url(area), c.lang),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let codes: Vec<&str> = procedure_in(&detail, procedure)
        .map(|x| strings(x, "questions"))
        .unwrap_or_default();
    let mut checks = String::new();
    for (i, code) in codes.iter().enumerate() {
        let text = question_in(&detail, code).map_or("", |x| str_of(x, "text"));
        checks.push_str(&format!(
            r#"<div class="check"><input type="checkbox" id="question-{i}" name="questions" value="{v}"><label for="question-{i}">{t} <span class="code">({v})</span></label></div>"#,
            v = esc(code),
            t = esc(text),
        ));
    }
    b.push_str(&format!(
        r#"<form method="post" action="/web/new" enctype="multipart/form-data" class="stack" id="send">{csrf}{h1}{h2}{h3}<input type="hidden" name="idem" value="{idem}"><fieldset><legend>{l_q}</legend><p class="help">{l_pick}</p>{checks}</fieldset><label for="free_text">{l_free}</label><textarea id="free_text" name="free_text" rows="3"></textarea><fieldset><legend>{l_subj}</legend><label for="subject_name">{l_name}</label><input id="subject_name" name="subject_name" required autocomplete="off"><label for="subject_dob">{l_dob}</label><input type="date" id="subject_dob" name="subject_dob"></fieldset><label for="new-file">{l_file}</label><input type="file" id="new-file" name="attachment"><label for="answer_by">{l_date}</label><input type="date" id="answer_by" name="answer_by" required><button type="submit">{send}</button></form>"#,
        csrf = p.csrf(),
        h1 = hidden("area", area),
        h2 = hidden("procedure", procedure),
        h3 = hidden("responder", responder),
        idem = session::random_token(),
        l_q = p.t("step_questions"),
        l_pick = p.t("questions_pick"),
        l_free = p.t("free_text"),
        l_subj = p.t("step_subject"),
        l_name = p.t("subject_name"),
        l_dob = p.t("subject_dob"),
        l_file = p.t("field_attachment"),
        l_date = p.t("step_date"),
        send = p.t("send_request"),
    ));
    html(StatusCode::OK, p.render(&p.t("new_title"), &b))
}

/// `POST /web/new`: sends the request through the API.
pub async fn create(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    mp: Multipart,
) -> Response {
    let (c, form) = match web.session_form(&headers, &uri, mp).await {
        Ok(cf) => cf,
        Err(r) => return r,
    };
    let mut subject = serde_json::Map::new();
    subject.insert("name".into(), json!(form.get("subject_name")));
    if !form.get("subject_dob").is_empty() {
        subject.insert("date_of_birth".into(), json!(form.get("subject_dob")));
    }
    let body = json!({
        "responder": form.get("responder"),
        "area": form.get("area"),
        "procedure": form.get("procedure"),
        "questions": form.all("questions"),
        "free_text": form.get("free_text"),
        "subject": subject,
        "answer_by": form.get("answer_by"),
        "attachments": attachments(&form),
    });
    let r = web
        .post(
            &c,
            "/api/v1/requests?wait=delivered",
            &body,
            form.idempotency_key(),
        )
        .await;
    if r.ok() {
        let id = url(str_of(&r.json, "id"));
        tracing::info!(user = %c.s.user, case = %id, "web: request created");
        return see_other(&format!(
            "/web/cases/{id}?done=create&delivery={}#main",
            delivery(&r.json)
        ));
    }
    let back = format!(
        "/web/new?area={}&procedure={}&responder={}",
        url(form.get("area")),
        url(form.get("procedure")),
        url(form.get("responder"))
    );
    web.creation_refused(&c, &back, "new_title", &r)
}

// ---------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------

/// `GET /web/audit`: witness alarms, the access log and the evidence bundle download.
pub async fn audit(State(web): State<Web>, headers: HeaderMap) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let here = "/web/audit";
    let alarms = match web.get(&c, here, "/api/v1/audit/alarms?limit=50").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let access = match web.get(&c, here, "/api/v1/audit/access-log?limit=50").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, here);
    let mut b = format!("<p>{}</p>", p.t("audit_intro"));
    b.push_str(&format!(
        r#"<section aria-labelledby="h-bundle"><h2 id="h-bundle">{}</h2><form method="get" action="/web/audit/bundle" class="stack"><label for="bundle-case">{}</label><input id="bundle-case" name="case" required autocomplete="off" spellcheck="false"><button type="submit">{}</button></form></section>"#,
        p.t("bundle_title"),
        p.t("bundle_case"),
        p.t("bundle_submit")
    ));
    let mut a = String::new();
    let list = items(&alarms);
    if list.is_empty() {
        a.push_str(&format!("<p>{}</p>", p.t("no_alarms")));
    } else {
        a.push_str(&format!(
            r#"<table><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            p.t("alarms_title"),
            p.t("alarm_time"),
            p.t("alarm_origin"),
            p.t("alarm_kind")
        ));
        for x in list {
            let at = x
                .get("at")
                .and_then(Value::as_u64)
                .map(imi_protocol::dates::rfc3339);
            a.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                at.map_or_else(String::new, |t| p.time(&t)),
                esc(str_of(x, "node")),
                esc(str_of(x, "kind"))
            ));
        }
        a.push_str("</tbody></table>");
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-alarms"><h2 id="h-alarms">{}</h2>{a}</section>"#,
        p.t("alarms_title")
    ));
    let mut l = String::new();
    let list = items(&access);
    if list.is_empty() {
        l.push_str(&format!("<p>{}</p>", p.t("no_access")));
    } else {
        l.push_str(&format!(
            r#"<table><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            p.t("access_title"),
            p.t("access_time"),
            p.t("access_user"),
            p.t("access_case"),
            p.t("access_action")
        ));
        for x in list {
            l.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                p.time(str_of(x, "at")),
                esc(str_of(x, "user")),
                esc(str_of(x, "case")),
                esc(str_of(x, "action"))
            ));
        }
        l.push_str("</tbody></table>");
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-access"><h2 id="h-access">{}</h2>{l}</section>"#,
        p.t("access_title")
    ));
    html(StatusCode::OK, p.render(&p.t("audit_title"), &b))
}

/// `GET /web/audit/bundle?case=ID`: the case's evidence bundle as a JSON download.
pub async fn bundle(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let case = url(q.get("case").map_or("", |s| s.trim()));
    let r = web
        .call(
            Method::GET,
            &format!("/api/v1/audit/bundle?case={case}"),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await;
    if !r.ok() {
        return web.failed(&c, "/web/audit", &r);
    }
    download(r.bytes, &format!("bundle-{case}.json"), "application/json")
}
