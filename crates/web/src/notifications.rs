//! Notifications: the received and sent boxes, a notification with its recipients'
//! delivery and acknowledgements, the acknowledgement, and a new notification.
use crate::Web;
use crate::html::{Notice, esc, url};
use crate::pages::{
    attachment_list, attachments, chosen_type, coded_inputs, coded_values, delivery, download,
    hidden, html, items, procedure_in, procedure_questions, see_other, str_of, strings, token_like,
};
use crate::session;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Params = Query<BTreeMap<String, String>>;

/// `GET /web/notifications?box=inbox|sent`.
pub async fn list(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let sent = q.get("box").is_some_and(|b| b == "sent");
    let after = q.get("after").map(String::as_str).and_then(token_like);
    let which = if sent { "sent" } else { "inbox" };
    let mut path = format!("/api/v1/notifications?box={which}&limit=25&lang={}", c.lang);
    if let Some(a) = after {
        path.push_str(&format!("&after={a}"));
    }
    let here = format!("/web/notifications?box={which}");
    let v = match web.get(&c, &here, &path).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let tab = |b: &str, key: &str| {
        if b == which {
            format!(
                r#"<li><a href="/web/notifications?box={b}" aria-current="page"><strong>{}</strong></a></li>"#,
                p.t(key)
            )
        } else {
            format!(
                r#"<li><a href="/web/notifications?box={b}">{}</a></li>"#,
                p.t(key)
            )
        }
    };
    let mut b = format!(
        r#"<ul class="tabs">{}{}</ul><p><a href="/web/notifications/new">{}</a></p>"#,
        tab("inbox", "box_inbox"),
        tab("sent", "box_sent"),
        p.t("new_notification")
    );
    let list = items(&v);
    if list.is_empty() {
        b.push_str(&format!("<p>{}</p>", p.t("no_notifications")));
    } else {
        b.push_str(&format!(
            r#"<table class="cases"><caption class="sr-only">{}</caption><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            p.t(if sent { "box_sent" } else { "box_inbox" }),
            p.t("col_type"),
            p.t("col_sender"),
            p.t("col_sent"),
            p.t("col_read"),
        ));
        for n in list {
            let id = str_of(n, "id");
            let ty = n.get("type").unwrap_or(&Value::Null);
            let sender = n.get("sender").unwrap_or(&Value::Null);
            let read = n.get("read_at").and_then(Value::as_str);
            b.push_str(&format!(
                r#"<tr{cls}><th scope="row"><a href="/web/notifications/{id}">{name}</a> <span class="code">({code})</span></th><td>{sender} <span class="code">({sid})</span></td><td>{at}</td><td>{read}</td></tr>"#,
                cls = if read.is_none() && !sent { r#" class="unread""# } else { "" },
                id = esc(id),
                name = esc(ty.get("name").and_then(Value::as_str).unwrap_or("")),
                code = esc(str_of(ty, "code")),
                sender = esc(sender.get("name").and_then(Value::as_str).unwrap_or("")),
                sid = esc(str_of(sender, "id")),
                at = p.time(str_of(n, "sent_at")),
                read = match read {
                    Some(t) => p.time(t),
                    None if sent => String::new(),
                    None => format!(r#"<strong class="badge">{}</strong>"#, p.t("unread")),
                },
            ));
        }
        b.push_str("</tbody></table>");
    }
    if let Some(next) = v.get("next").and_then(Value::as_str).and_then(token_like) {
        b.push_str(&format!(
            r#"<p class="pager"><a href="/web/notifications?box={which}&amp;after={}" rel="next">{}</a></p>"#,
            url(next),
            p.t("next_page")
        ));
    }
    html(StatusCode::OK, p.render(&p.t("notifications_title"), &b))
}

/// `GET /web/notifications/{id}`.
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
    let here = format!("/web/notifications/{id}");
    let n = match web
        .get(
            &c,
            &here,
            &format!("/api/v1/notifications/{id}?lang={}", c.lang),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let mut b = String::new();
    b.push_str(&crate::pages::refused_notice(&p, &q));
    match q.get("done").map(String::as_str) {
        Some("read") => b.push_str(&p.notice(Notice::Ok, &p.t("acknowledged"))),
        Some("sent") => {
            let mut m = p.tf("notification_sent", &[("id", &id)]);
            if q.get("delivery").is_some_and(|d| d == "delivered") {
                m.push_str(&format!(" {}", p.t("delivered")));
            } else {
                m.push_str(&format!(" {}", p.t("delivery_pending")));
            }
            b.push_str(&p.notice(Notice::Ok, &m));
        }
        _ => {}
    }
    let ty = n.get("type").unwrap_or(&Value::Null);
    let sender = n.get("sender").unwrap_or(&Value::Null);
    let sent = str_of(&n, "direction") == "sent";
    let read_at = n.get("read_at").and_then(Value::as_str);
    b.push_str(&format!(
        r#"<dl class="facts"><dt>{l_t}</dt><dd>{t} <span class="code">({tc})</span></dd><dt>{l_s}</dt><dd>{s} <span class="code">({sid})</span></dd><dt>{l_at}</dt><dd>{at}</dd>{rx}{read}</dl>"#,
        l_t = p.t("notification_type"),
        t = esc(ty.get("name").and_then(Value::as_str).unwrap_or("")),
        tc = esc(str_of(ty, "code")),
        l_s = p.t("notification_sender"),
        s = esc(sender.get("name").and_then(Value::as_str).unwrap_or("")),
        sid = esc(str_of(sender, "id")),
        l_at = p.t("notification_sent_at"),
        at = p.time(str_of(&n, "sent_at")),
        rx = if sent {
            String::new()
        } else {
            format!(
                "<dt>{}</dt><dd>{}</dd>",
                p.t("notification_received_at"),
                p.time(str_of(&n, "received_at"))
            )
        },
        read = match (sent, read_at) {
            (false, Some(t)) => format!("<dt>{}</dt><dd>{}</dd>", p.t("notification_read_at"), p.time(t)),
            _ => String::new(),
        },
    ));
    let mut fields = String::new();
    for f in n
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        fields.push_str(&format!(
            r#"<dt>{} <span class="code">({})</span></dt><dd>{}</dd>"#,
            esc(f.get("question_text").and_then(Value::as_str).unwrap_or("")),
            esc(str_of(f, "question")),
            crate::pages::answer_value(&p, f)
        ));
    }
    b.push_str(&format!(
        r#"<section aria-labelledby="h-fields"><h2 id="h-fields">{}</h2><dl class="answers">{fields}</dl>{}</section>"#,
        p.t("notification_fields"),
        attachment_list(&p, &here, n.get("attachments"))
    ));
    if !sent && read_at.is_none() {
        b.push_str(&format!(
            r#"<form method="post" action="/web/notifications/{id}/read" enctype="multipart/form-data" class="action" id="form-read">{}<button type="submit">{}</button></form>"#,
            p.csrf(),
            p.t("acknowledge")
        ));
    }
    if sent {
        let mut rows = String::new();
        for r in n
            .get("recipients")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let auths: Vec<String> = r
                .get("authorities")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|a| {
                    let ack = match a.get("acknowledged_at").and_then(Value::as_str) {
                        Some(t) => p.tf(
                            "recipient_acknowledged",
                            &[("date", &crate::i18n::time(c.lang, t))],
                        ),
                        None => p.t("recipient_not_acknowledged"),
                    };
                    format!(
                        "{} <span class=\"code\">({})</span> — {ack}",
                        esc(a.get("name").and_then(Value::as_str).unwrap_or("")),
                        esc(str_of(a, "id"))
                    )
                })
                .collect();
            let delivery = match str_of(r, "delivery") {
                "accepted" | "duplicate" => p.t("delivery_accepted"),
                "rejected" => p.tf(
                    "delivery_rejected",
                    &[("code", str_of(r, "rejection_code"))],
                ),
                _ => p.t("delivery_pending_short"),
            };
            rows.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{delivery}</td></tr>",
                esc(str_of(r, "country")),
                auths.join("<br>")
            ));
        }
        b.push_str(&format!(
            r#"<section aria-labelledby="h-recipients"><h2 id="h-recipients">{}</h2><table><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>{rows}</tbody></table></section>"#,
            p.t("notification_recipients"),
            p.t("recipient_country"),
            p.t("recipient_authorities"),
            p.t("recipient_delivery"),
        ));
    }
    b.push_str(&format!(
        r#"<p><a href="/web/notifications">{}</a></p>"#,
        p.t("notifications_title")
    ));
    html(
        StatusCode::OK,
        p.render(&p.tf("notification_title", &[("id", &id)]), &b),
    )
}

/// `POST /web/notifications/{id}/read`: the acknowledgement.
pub async fn acknowledge(
    State(web): State<Web>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    mp: Multipart,
) -> Response {
    let c = match web.session_form(&headers, &uri, mp).await {
        Ok((c, _)) => c,
        Err(r) => return r,
    };
    let id = url(&id);
    let r = web
        .post(
            &c,
            &format!("/api/v1/notifications/{id}/read"),
            &json!({}),
            None,
        )
        .await;
    web.after_step(&c, &format!("/web/notifications/{id}"), &r, "done=read")
}

/// `GET /web/notifications/{id}/attachments/{sha}`.
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
    let r = web
        .call(
            Method::GET,
            &format!("/api/v1/notifications/{id}/attachments/{sha}"),
            &c.s.token,
            c.lang,
            None,
            None,
        )
        .await;
    if !r.ok() {
        return web.failed(&c, &format!("/web/notifications/{id}"), &r);
    }
    download(
        r.bytes,
        q.get("name").map_or("attachment", String::as_str),
        "application/octet-stream",
    )
}

/// `GET /web/notifications/new?type=`: choose the type, then the form.
pub async fn new(State(web): State<Web>, headers: HeaderMap, Query(q): Params) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let here = "/web/notifications/new";
    let (procedure, detail) = match chosen_type(
        &web,
        &c,
        &q,
        "notification",
        here,
        "notification_choose_type",
        "new_notification",
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = web.page(&c, here);
    let code = str_of(&procedure, "code");
    let proc_detail = procedure_in(&detail, code).cloned().unwrap_or(Value::Null);
    let codes = strings(&proc_detail, "questions");
    let optional = strings(&proc_detail, "optional");
    let questions = procedure_questions(&detail, &proc_detail);
    let required: Vec<&str> = codes
        .iter()
        .copied()
        .filter(|q| !optional.contains(q))
        .collect();
    let commission = str_of(&proc_detail, "commission");
    let commission_box = match commission {
        "required" => hidden("commission", "1"),
        "optional" => format!(
            r#"<div class="check"><input type="checkbox" id="commission" name="commission" value="1"><label for="commission">{}</label></div>"#,
            p.t("notification_commission")
        ),
        _ => String::new(),
    };
    let b = format!(
        r#"<dl class="facts"><dt>{l_t}</dt><dd>{t} <span class="code">({code})</span> <a href="/web/notifications/new" class="change">{change}</a></dd></dl><form method="post" action="/web/notifications/new" enctype="multipart/form-data" class="stack" id="notify">{csrf}{h_type}<input type="hidden" name="idem" value="{idem}"><label for="recipients">{l_r}</label><textarea id="recipients" name="recipients" rows="3" required aria-describedby="recipients-help" spellcheck="false"></textarea><p id="recipients-help" class="help">{help}</p>{commission_box}<fieldset><legend>{l_f}</legend>{fields}</fieldset><label for="notify-file">{l_file}</label><input type="file" id="notify-file" name="attachment"><button type="submit">{send}</button></form>"#,
        l_t = p.t("notification_type"),
        t = esc(str_of(&procedure, "name")),
        code = esc(code),
        change = p.t("change"),
        csrf = p.csrf(),
        h_type = hidden("type", code),
        idem = session::random_token(),
        l_r = p.t("notification_recipients"),
        help = p.t("notification_recipients_help"),
        l_f = p.t("notification_fields"),
        fields = coded_inputs(&p, "nf", &questions, &detail, &required, false),
        l_file = p.t("field_attachment"),
        send = p.t("notification_send"),
    );
    html(StatusCode::OK, p.render(&p.t("new_notification"), &b))
}

/// `POST /web/notifications/new`: sends the notification through the API.
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
    // Recipients: authority ids grouped by their country prefix, in the order given.
    let mut by_country: Vec<(String, Vec<String>)> = Vec::new();
    for a in form
        .get("recipients")
        .split([',', ';', '\n', '\r', ' '])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .take(1000)
    {
        let cc = a.split('-').next().unwrap_or("").to_ascii_uppercase();
        let a = a.to_ascii_uppercase();
        match by_country.iter_mut().find(|(c, _)| *c == cc) {
            Some((_, list)) if !list.contains(&a) => list.push(a),
            Some(_) => {}
            None => by_country.push((cc, vec![a])),
        }
    }
    if form.get("commission") == "1" && !by_country.iter().any(|(c, _)| c == "EU") {
        by_country.push(("EU".into(), vec!["EU-COMMISSION".into()]));
    }
    let body = json!({
        "type": form.get("type"),
        "recipients": by_country.iter().map(|(c, a)| json!({"country": c, "authorities": a})).collect::<Vec<_>>(),
        "fields": coded_values(&form),
        "attachments": attachments(&form),
    });
    let r = web
        .post(
            &c,
            "/api/v1/notifications?wait=delivered",
            &body,
            form.idempotency_key(),
        )
        .await;
    if r.ok() {
        let id = url(str_of(&r.json, "id"));
        tracing::info!(user = %c.s.user, notification = %id, "web: notification sent");
        return see_other(&format!(
            "/web/notifications/{id}?done=sent&delivery={}#main",
            delivery(&r.json)
        ));
    }
    let back = format!("/web/notifications/new?type={}", url(form.get("type")));
    web.creation_refused(&c, &back, "new_notification", &r)
}
