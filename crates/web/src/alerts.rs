//! Alerts: the authority's alerts (sent, received as coordinator, forwarded to it), an
//! alert with the professional's identity where the alert was routed to the reader, and
//! the coordinator's forwarding and the sender's closing.
use crate::Web;
use crate::html::{Notice, esc, url};
use crate::pages::{
    answer_value, chosen_type, coded_inputs, coded_values, hidden, html, items, procedure_in,
    procedure_questions, see_other, str_of,
};
use crate::session;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Params = Query<BTreeMap<String, String>>;

/// `GET /web/alerts`.
pub async fn list(State(web): State<Web>, headers: HeaderMap) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let here = "/web/alerts";
    let v = match web
        .get(&c, here, &format!("/api/v1/alerts?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, here);
    let mut b = format!(
        r#"<p>{}</p><p><a href="/web/alerts/new">{}</a></p>"#,
        p.t("alerts_intro"),
        p.t("new_alert")
    );
    let list = items(&v);
    if list.is_empty() {
        b.push_str(&format!("<p>{}</p>", p.t("no_alerts")));
    } else {
        b.push_str(&format!(
            r#"<table class="cases"><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            p.t("alerts_title"),
            p.t("col_type"),
            p.t("col_sender"),
            p.t("col_decided"),
            p.t("col_valid_until"),
            p.t("col_my_role"),
            p.t("col_state"),
        ));
        for a in list {
            let ty = a.get("type").unwrap_or(&Value::Null);
            let closed = a.get("closed").is_some_and(|c| !c.is_null());
            b.push_str(&format!(
                r#"<tr><th scope="row"><a href="/web/alerts/{id}">{name}</a> <span class="code">({code})</span></th><td><code>{sender}</code></td><td>{decided}</td><td>{until}</td><td>{role}</td><td>{state}</td></tr>"#,
                id = esc(str_of(a, "id")),
                name = esc(ty.get("name").and_then(Value::as_str).unwrap_or("")),
                code = esc(str_of(ty, "code")),
                sender = esc(str_of(a.get("sender").unwrap_or(&Value::Null), "id")),
                decided = p.date(str_of(a, "decided")),
                until = a.get("valid_until").and_then(Value::as_str).map_or_else(String::new, |d| p.date(d)),
                role = p.t(&format!("alert_role_{}", str_of(a, "role"))),
                state = if closed { p.t("state_closed") } else { String::new() },
            ));
        }
        b.push_str("</tbody></table>");
    }
    html(StatusCode::OK, p.render(&p.t("alerts_title"), &b))
}

/// `GET /web/alerts/{id}`.
pub async fn read(
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
    let here = format!("/web/alerts/{id}");
    let a = match web
        .get(&c, &here, &format!("/api/v1/alerts/{id}?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let mut b = String::new();
    b.push_str(&crate::pages::refused_notice(&p, &q));
    match q.get("done").map(String::as_str) {
        Some("sent") => b.push_str(&p.notice(Notice::Ok, &p.tf("alert_sent", &[("id", &id)]))),
        Some("forward") => b.push_str(&p.notice(Notice::Ok, &p.t("alert_forwarded"))),
        Some("close") => b.push_str(&p.notice(Notice::Ok, &p.t("alert_closed_done"))),
        _ => {}
    }
    let ty = a.get("type").unwrap_or(&Value::Null);
    let sender = a.get("sender").unwrap_or(&Value::Null);
    let closed = a.get("closed").filter(|c| !c.is_null());
    let late = a.get("late").and_then(Value::as_bool).unwrap_or(false);
    let mut facts = format!(
        r#"<dt>{l_t}</dt><dd>{t} <span class="code">({tc})</span></dd><dt>{l_p}</dt><dd><code>{prof}</code></dd><dt>{l_s}</dt><dd><code>{sid}</code> ({scc})</dd><dt>{l_d}</dt><dd>{decided}</dd><dt>{l_at}</dt><dd>{at}{late}</dd><dt>{l_u}</dt><dd>{until}</dd><dt>{l_r}</dt><dd>{countries}</dd><dt>{l_role}</dt><dd>{role}</dd>"#,
        l_t = p.t("alert_type"),
        t = esc(ty.get("name").and_then(Value::as_str).unwrap_or("")),
        tc = esc(str_of(ty, "code")),
        l_p = p.t("alert_profession"),
        prof = esc(a.get("profession").and_then(Value::as_str).unwrap_or("")),
        l_s = p.t("alert_sender"),
        sid = esc(str_of(sender, "id")),
        scc = esc(str_of(sender, "country")),
        l_d = p.t("col_decided"),
        decided = p.date(str_of(&a, "decided")),
        l_at = p.t("alert_sent_at"),
        at = p.time(str_of(&a, "sent_at")),
        late = if late {
            format!(r#" <strong class="badge">{}</strong>"#, p.t("alert_late"))
        } else {
            String::new()
        },
        l_u = p.t("col_valid_until"),
        until = a
            .get("valid_until")
            .and_then(Value::as_str)
            .map_or_else(String::new, |d| p.date(d)),
        l_r = p.t("alert_recipients"),
        countries = a
            .get("recipient_countries")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(esc)
            .collect::<Vec<_>>()
            .join(", "),
        l_role = p.t("col_my_role"),
        role = p.t(&format!("alert_role_{}", str_of(&a, "role"))),
    );
    if let Some(rev) = a.get("revision").and_then(Value::as_u64).filter(|r| *r > 0) {
        facts.push_str(&format!(
            "<dt></dt><dd>{}</dd>",
            p.tf(
                "alert_revision",
                &[
                    ("count", &rev.to_string()),
                    (
                        "date",
                        &crate::i18n::time(c.lang, str_of(&a, "modified_at"))
                    ),
                ]
            )
        ));
    }
    b.push_str(&format!(r#"<dl class="facts">{facts}</dl>"#));
    if let Some(cl) = closed {
        b.push_str(&p.notice(
            Notice::Ok,
            &p.tf(
                "alert_closed",
                &[
                    ("date", &crate::i18n::time(c.lang, str_of(cl, "at"))),
                    ("ended", &crate::i18n::date(c.lang, str_of(cl, "ended"))),
                ],
            ),
        ));
    }
    // The measure.
    let mut fields = String::new();
    for f in a
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        fields.push_str(&format!(
            r#"<dt>{} <span class="code">({})</span></dt><dd>{}</dd>"#,
            esc(f.get("question_text").and_then(Value::as_str).unwrap_or("")),
            esc(str_of(f, "question")),
            answer_value(&p, f)
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-fields"><h2 id="h-fields">{}</h2><dl class="answers">{fields}</dl></section>"#,
        p.t("notification_fields")
    ));
    // The professional.
    let who = match a.get("professional").filter(|x| !x.is_null()) {
        Some(pr) => {
            let mut s = format!(
                "<dt>{}</dt><dd>{}</dd>",
                p.t("subject_name"),
                esc(str_of(pr, "name"))
            );
            if let Some(d) = pr.get("date_of_birth").and_then(Value::as_str) {
                s.push_str(&format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    p.t("subject_dob"),
                    p.date(d)
                ));
            }
            format!(r#"<dl class="facts">{s}</dl>"#)
        }
        None if a.get("identity_erased").and_then(Value::as_bool) == Some(true) => {
            format!("<p>{}</p>", p.t("alert_identity_erased"))
        }
        None => format!("<p>{}</p>", p.t("alert_identity_sealed")),
    };
    b.push_str(&format!(
        r#"<section aria-labelledby="h-who"><h2 id="h-who">{}</h2>{who}</section>"#,
        p.t("alert_professional")
    ));
    // What the reader may do.
    let role = str_of(&a, "role");
    let mut act = String::new();
    if closed.is_none() && role == "coordinator" {
        act.push_str(&format!(
            r#"<form method="post" action="/web/alerts/{id}/forward" enctype="multipart/form-data" class="action stack" id="form-forward"><h3>{t}</h3>{csrf}<label for="forward-to">{l}</label><input id="forward-to" name="authorities" required aria-describedby="forward-help" spellcheck="false"><p id="forward-help" class="help">{help}</p><button type="submit">{t}</button></form>"#,
            t = p.t("alert_forward"),
            csrf = p.csrf(),
            l = p.t("recipient_authorities"),
            help = p.t("alert_forward_help"),
        ));
    }
    if closed.is_none() && role == "sender" {
        act.push_str(&format!(
            r#"<form method="post" action="/web/alerts/{id}/close" enctype="multipart/form-data" class="action stack" id="form-close"><h3>{t}</h3>{csrf}<label for="close-ended">{l}</label><input type="date" id="close-ended" name="ended" required><button type="submit">{t}</button></form>"#,
            t = p.t("alert_close"),
            csrf = p.csrf(),
            l = p.t("alert_ended"),
        ));
    }
    if !act.is_empty() {
        b.push_str(&format!(
            r#"<section aria-labelledby="h-actions"><h2 id="h-actions">{}</h2>{act}</section>"#,
            p.t("actions_title")
        ));
    }
    b.push_str(&format!(
        r#"<p><a href="/web/alerts">{}</a></p>"#,
        p.t("alerts_title")
    ));
    html(
        StatusCode::OK,
        p.render(&p.tf("alert_title", &[("id", &id)]), &b),
    )
}

/// `POST /web/alerts/{id}/{forward|close}`.
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
    let body = match action.as_str() {
        "forward" => json!({
            "authorities": form
                .get("authorities")
                .split([',', ';', ' ', '\n'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .take(200)
                .collect::<Vec<_>>(),
        }),
        "close" => json!({"ended": form.get("ended")}),
        _ => return crate::pages::status_page(&web, &headers, StatusCode::NOT_FOUND),
    };
    let r = web
        .post(&c, &format!("/api/v1/alerts/{id}/{action}"), &body, None)
        .await;
    if r.ok() {
        tracing::info!(user = %c.s.user, alert = %id, action = %action, "web: alert step");
    }
    web.after_step(
        &c,
        &format!("/web/alerts/{id}"),
        &r,
        &format!("done={action}"),
    )
}

/// `GET /web/alerts/new?type=`: choose the type, then the form.
pub async fn new(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let here = "/web/alerts/new";
    let (procedure, detail) = match chosen_type(
        &web,
        &c,
        &q,
        "alert",
        here,
        "alert_choose_type",
        "new_alert",
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = web.page(&c, here);
    let code = str_of(&procedure, "code");
    let professions = match web
        .get(
            &c,
            here,
            &format!("/api/v1/vocabularies/professions?lang={}", c.lang),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let questions = procedure_in(&detail, code)
        .map(|pr| procedure_questions(&detail, pr))
        .unwrap_or_default();
    let mut prof = format!(
        r#"<option value="">{}</option>"#,
        p.t("alert_no_profession")
    );
    for x in items(&professions) {
        prof.push_str(&format!(
            r#"<option value="{v}">{n}</option>"#,
            v = esc(str_of(x, "code")),
            n = esc(str_of(x, "name"))
        ));
    }
    let mut states = String::new();
    let own = c.s.authority.split('-').next().unwrap_or("");
    for (i, n) in imi_protocol::NodeId::ALL
        .iter()
        .filter(|n| **n != imi_protocol::NodeId::EU && n.as_str() != own)
        .enumerate()
    {
        states.push_str(&format!(
            r#"<div class="check"><input type="checkbox" id="ms-{i}" name="member_states" value="{cc}"><label for="ms-{i}">{cc}</label></div>"#,
            cc = n.as_str()
        ));
    }
    let required: Vec<&str> = questions.iter().map(|q| str_of(q, "code")).collect();
    let b = format!(
        r#"<dl class="facts"><dt>{l_t}</dt><dd>{t} <span class="code">({code})</span> <a href="/web/alerts/new" class="change">{change}</a></dd></dl><form method="post" action="/web/alerts/new" enctype="multipart/form-data" class="stack" id="alert">{csrf}{h_type}<input type="hidden" name="idem" value="{idem}"><label for="alert-profession">{l_p}</label><select id="alert-profession" name="profession">{prof}</select><fieldset><legend>{l_f}</legend>{fields}</fieldset><label for="alert-decided">{l_d}</label><input type="date" id="alert-decided" name="decided" required><label for="alert-until">{l_u} {opt}</label><input type="date" id="alert-until" name="valid_until"><fieldset><legend>{l_who}</legend><label for="alert-name">{l_name}</label><input id="alert-name" name="name" required autocomplete="off"><label for="alert-dob">{l_dob}</label><input type="date" id="alert-dob" name="date_of_birth"></fieldset><fieldset class="states"><legend>{l_ms}</legend><p class="help">{ms_help}</p>{states}</fieldset><div class="check"><input type="checkbox" id="alert-commission" name="commission" value="1"><label for="alert-commission">{l_ec}</label></div><button type="submit">{send}</button></form>"#,
        l_t = p.t("alert_type"),
        t = esc(str_of(&procedure, "name")),
        code = esc(code),
        change = p.t("change"),
        csrf = p.csrf(),
        h_type = hidden("type", code),
        idem = session::random_token(),
        l_p = p.t("alert_profession"),
        l_f = p.t("notification_fields"),
        fields = coded_inputs(&p, "af", &questions, &detail, &required, false),
        l_d = p.t("col_decided"),
        l_u = p.t("col_valid_until"),
        opt = p.t("field_optional"),
        l_who = p.t("alert_professional"),
        l_name = p.t("subject_name"),
        l_dob = p.t("subject_dob"),
        l_ms = p.t("alert_member_states"),
        ms_help = p.t("alert_member_states_help"),
        l_ec = p.t("alert_commission"),
        send = p.t("alert_send"),
    );
    html(StatusCode::OK, p.render(&p.t("new_alert"), &b))
}

/// `POST /web/alerts/new`: sends the alert through the API.
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
    let mut professional = serde_json::Map::new();
    professional.insert("name".into(), json!(form.get("name")));
    if !form.get("date_of_birth").is_empty() {
        professional.insert("date_of_birth".into(), json!(form.get("date_of_birth")));
    }
    let mut body = serde_json::Map::new();
    body.insert("type".into(), json!(form.get("type")));
    body.insert("profession".into(), json!(form.get("profession")));
    body.insert("fields".into(), json!(coded_values(&form)));
    body.insert("decided".into(), json!(form.get("decided")));
    if !form.get("valid_until").is_empty() {
        body.insert("valid_until".into(), json!(form.get("valid_until")));
    }
    body.insert("professional".into(), Value::Object(professional));
    body.insert("member_states".into(), json!(form.all("member_states")));
    body.insert("commission".into(), json!(form.get("commission") == "1"));
    let r = web
        .post(
            &c,
            "/api/v1/alerts",
            &Value::Object(body),
            form.idempotency_key(),
        )
        .await;
    if r.ok() {
        let id = url(str_of(&r.json, "id"));
        tracing::info!(user = %c.s.user, alert = %id, "web: alert sent");
        return see_other(&format!("/web/alerts/{id}?done=sent#main"));
    }
    let back = format!("/web/alerts/new?type={}", url(form.get("type")));
    web.creation_refused(&c, &back, "new_alert", &r)
}
