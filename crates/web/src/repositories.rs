//! Registers (IMI repositories): those the authority may read, a register's entries, a
//! new entry, and the owner's withdrawal of an entry.
use crate::Web;
use crate::html::{Notice, esc, url};
use crate::pages::{answer_value, coded_inputs, coded_values, html, items, str_of};
use crate::session;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Params = Query<BTreeMap<String, String>>;

/// `GET /web/repositories`.
pub async fn list(State(web): State<Web>, headers: HeaderMap) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let here = "/web/repositories";
    let v = match web
        .get(&c, here, &format!("/api/v1/repositories?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, here);
    let mut b = format!("<p>{}</p>", p.t("repositories_intro"));
    let list = items(&v);
    if list.is_empty() {
        b.push_str(&format!("<p>{}</p>", p.t("no_repositories")));
    } else {
        b.push_str("<ul class=\"results\">");
        for r in list {
            let n = r
                .get("fields")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            b.push_str(&format!(
                r#"<li><a href="/web/repositories/{code}">{name}</a> <span class="code">({code})</span> · {fields}</li>"#,
                code = esc(str_of(r, "code")),
                name = esc(r.get("name").and_then(Value::as_str).unwrap_or("")),
                fields = p.tf("repository_fields", &[("count", &n.to_string())]),
            ));
        }
        b.push_str("</ul>");
    }
    html(StatusCode::OK, p.render(&p.t("repositories_title"), &b))
}

/// The catalogue area that holds procedure `code` (for its questions' options).
async fn area_of(web: &Web, c: &crate::pages::Ctx, code: &str) -> Value {
    let cat = web
        .call(
            axum::http::Method::GET,
            &format!("/api/v1/catalogue?lang={}", c.lang),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await
        .json;
    let area = cat
        .get("areas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|a| crate::pages::procedure_in(a, code).is_some())
        .map(|a| str_of(a, "code").to_owned())
        .unwrap_or_default();
    web.call(
        axum::http::Method::GET,
        &format!("/api/v1/catalogue/{}?lang={}", url(&area), c.lang),
        &c.s.token,
        c.lang,
        None,
        None,
    )
    .await
    .json
}

/// `GET /web/repositories/{code}`: the entries, the form for a new one.
pub async fn entries(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Params,
) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let code = url(&code);
    let here = format!("/web/repositories/{code}");
    // A page of the entries; the pager's link carries the next page's cursor (an id).
    let cursor = q
        .get("cursor")
        .and_then(|c| crate::pages::token_like(c))
        .map_or_else(String::new, |c| format!("&cursor={}", url(c)));
    let v = match web
        .get(
            &c,
            &here,
            &format!(
                "/api/v1/repositories/{code}/entries?lang={}{cursor}",
                c.lang
            ),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let def = v.get("repository").unwrap_or(&Value::Null);
    let fields: Vec<Value> = def
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut b = crate::pages::refused_notice(&p, &q);
    match q.get("done").map(String::as_str) {
        Some("create") => b.push_str(&p.notice(Notice::Ok, &p.t("entry_added"))),
        Some("withdraw") => b.push_str(&p.notice(Notice::Ok, &p.t("entry_withdrawn_done"))),
        _ => {}
    }
    let list = items(&v);
    if list.is_empty() {
        b.push_str(&format!("<p>{}</p>", p.t("no_entries")));
    } else {
        let mut head = String::new();
        for f in &fields {
            head.push_str(&format!(
                r#"<th scope="col">{}{}</th>"#,
                esc(f.get("text").and_then(Value::as_str).unwrap_or("")),
                if f.get("public").and_then(Value::as_bool) == Some(true) {
                    format!(" {}", p.t("field_public"))
                } else {
                    String::new()
                }
            ));
        }
        b.push_str(&format!(
            r#"<table class="cases" id="entries"><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th>{head}<th scope="col">{}</th></tr></thead><tbody>"#,
            p.t("repositories_title"),
            p.t("col_owner"),
            p.t("col_version"),
            p.t("col_updated"),
            p.t("actions_title"),
        ));
        for e in list {
            let id = str_of(e, "id");
            let withdrawn = e.get("withdrawn").and_then(Value::as_bool).unwrap_or(false);
            let mut cells = String::new();
            for f in &fields {
                let value = e
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|x| str_of(x, "question") == str_of(f, "code"))
                    .map_or_else(String::new, |x| answer_value(&p, x));
                cells.push_str(&format!("<td>{value}</td>"));
            }
            let action = if withdrawn {
                format!(
                    r#"<strong class="badge">{}</strong>"#,
                    p.t("entry_withdrawn")
                )
            } else if str_of(e, "owner") == c.s.authority {
                format!(
                    r#"<form method="post" action="/web/repositories/{code}/entries/{id}/withdraw" enctype="multipart/form-data">{}<button type="submit" aria-label="{} {id}">{}</button></form>"#,
                    p.csrf(),
                    p.t("entry_withdraw"),
                    p.t("entry_withdraw"),
                    id = esc(id),
                )
            } else {
                String::new()
            };
            b.push_str(&format!(
                r#"<tr><th scope="row"><code>{owner}</code></th><td>{version}</td><td>{updated}</td>{cells}<td>{action}</td></tr>"#,
                owner = esc(str_of(e, "owner")),
                version = e.get("version").and_then(Value::as_u64).unwrap_or(0),
                updated = p.time(str_of(e, "updated")),
            ));
        }
        b.push_str("</tbody></table>");
    }
    if let Some(next) = v
        .get("next_cursor")
        .and_then(Value::as_str)
        .and_then(crate::pages::token_like)
    {
        b.push_str(&format!(
            r#"<p class="pager"><a href="/web/repositories/{code}?cursor={}" rel="next">{}</a></p>"#,
            url(next),
            p.t("next_page")
        ));
    }
    // A new entry.
    let detail = area_of(&web, &c, &code).await;
    let required: Vec<&str> = Vec::new();
    b.push_str(&format!(
        r#"<section aria-labelledby="h-new"><h2 id="h-new">{title}</h2><form method="post" action="/web/repositories/{code}/entries" enctype="multipart/form-data" class="stack" id="entry">{csrf}<input type="hidden" name="idem" value="{idem}">{inputs}<button type="submit">{send}</button></form></section>"#,
        title = p.t("new_entry"),
        csrf = p.csrf(),
        idem = session::random_token(),
        inputs = coded_inputs(&p, "rf", &fields_as_questions(&fields), &detail, &required, false),
        send = p.t("entry_send"),
    ));
    let title = format!(
        "{} ({code})",
        def.get("name").and_then(Value::as_str).unwrap_or("")
    );
    html(StatusCode::OK, p.render(&title, &b))
}

/// A register's field definitions as the question objects [`coded_inputs`] takes.
fn fields_as_questions(fields: &[Value]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| {
            json!({
                "code": str_of(f, "code"),
                "text": f.get("text").and_then(Value::as_str).unwrap_or(""),
                "answer_type": str_of(f, "answer_type"),
            })
        })
        .collect()
}

/// `POST /web/repositories/{code}/entries`: a new entry.
pub async fn create(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(code): Path<String>,
    mp: Multipart,
) -> Response {
    let (c, form) = match web.session_form(&headers, &uri, mp).await {
        Ok(cf) => cf,
        Err(r) => return r,
    };
    let code = url(&code);
    let r = web
        .post(
            &c,
            &format!("/api/v1/repositories/{code}/entries"),
            &json!({"fields": coded_values(&form)}),
            form.idempotency_key(),
        )
        .await;
    if r.ok() {
        tracing::info!(user = %c.s.user, repository = %code, "web: register entry added");
    }
    web.after_step(&c, &format!("/web/repositories/{code}"), &r, "done=create")
}

/// `POST /web/repositories/{code}/entries/{id}/withdraw`, by the owner.
pub async fn withdraw(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path((code, id)): Path<(String, String)>,
    mp: Multipart,
) -> Response {
    let c = match web.session_form(&headers, &uri, mp).await {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let (code, id) = (url(&code), url(&id));
    let r = web
        .post(
            &c,
            &format!("/api/v1/repositories/{code}/entries/{id}/withdraw"),
            &json!({}),
            None,
        )
        .await;
    if r.ok() {
        tracing::info!(user = %c.s.user, repository = %code, entry = %id, "web: register entry withdrawn");
    }
    web.after_step(
        &c,
        &format!("/web/repositories/{code}"),
        &r,
        "done=withdraw",
    )
}
