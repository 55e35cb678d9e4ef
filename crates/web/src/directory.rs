//! The directory: find an authority of any EEA country in any language, and its page.
use crate::Web;
use crate::html::{Notice, esc, url};
use crate::i18n;
use crate::pages::{error_text, html, items, str_of};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use imi_protocol::NodeId;
use serde_json::Value;
use std::collections::BTreeMap;

const PAGE: usize = 20;
const LEVELS: [&str; 3] = ["national", "regional", "local"];

/// `GET /web/directory`: the search form and, with words, the results.
pub async fn search(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pick = |k: &str| {
        q.get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && s.len() <= 200)
    };
    let text = pick("q");
    let country = pick("country").filter(|cc| NodeId::ALL.iter().any(|n| n.as_str() == *cc));
    let level = pick("level").filter(|l| LEVELS.contains(l));
    let area =
        pick("area").filter(|a| a.len() <= 16 && a.bytes().all(|b| b.is_ascii_alphanumeric()));
    let offset: usize = pick("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
        .min(1000);
    let mut filters = String::new();
    for (k, v) in [
        ("q", text),
        ("country", country),
        ("level", level),
        ("area", area),
    ] {
        if let Some(v) = v {
            filters.push_str(&format!("{k}={}&", url(v)));
        }
    }
    let here = format!("/web/directory?{filters}");
    let cat = match web
        .get(&c, &here, &format!("/api/v1/catalogue?lang={}", c.lang))
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let opt = |value: &str, label: String, selected: bool| {
        format!(
            r#"<option value="{}"{}>{}</option>"#,
            esc(value),
            if selected { " selected" } else { "" },
            label
        )
    };
    let mut countries = opt("", p.t("authority_any_country"), country.is_none());
    for n in NodeId::ALL.iter().filter(|n| **n != NodeId::EU) {
        countries.push_str(&opt(
            n.as_str(),
            esc(n.as_str()),
            country == Some(n.as_str()),
        ));
    }
    let mut levels = opt("", p.t("directory_any_level"), level.is_none());
    for l in LEVELS {
        levels.push_str(&opt(l, p.t(&format!("level_{l}")), level == Some(l)));
    }
    let mut areas = opt("", p.t("directory_any_area"), area.is_none());
    for a in cat
        .get("areas")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let code = str_of(a, "code");
        areas.push_str(&opt(code, esc(str_of(a, "name")), area == Some(code)));
    }
    let mut b = format!("<p>{}</p>", p.t("directory_intro"));
    b.push_str(&format!(
        r#"<form method="get" action="/web/directory" role="search" class="filters"><fieldset><legend>{legend}</legend><div class="wide"><label for="dq">{l_q}</label><input id="dq" name="q" type="search" value="{q}"></div><div><label for="dcountry">{l_c}</label><select id="dcountry" name="country">{countries}</select></div><div><label for="dlevel">{l_l}</label><select id="dlevel" name="level">{levels}</select></div><div><label for="darea">{l_a}</label><select id="darea" name="area">{areas}</select></div><button type="submit">{submit}</button></fieldset></form>"#,
        legend = p.t("directory_filters"),
        l_q = p.t("directory_query"),
        q = esc(text.unwrap_or("")),
        l_c = p.t("authority_country"),
        l_l = p.t("authority_level"),
        l_a = p.t("case_area"),
        submit = p.t("directory_submit"),
    ));
    if let Some(t) = text {
        let mut path = format!(
            "/api/v1/directory/search?q={}&limit={PAGE}&offset={offset}&lang={}",
            url(t),
            c.lang
        );
        for (k, v) in [("country", country), ("level", level), ("area", area)] {
            if let Some(v) = v {
                path.push_str(&format!("&{k}={}", url(v)));
            }
        }
        let r = web
            .call(Method::GET, &path, &c.s.token, c.lang, None, None)
            .await;
        if !r.ok() {
            b.push_str(&p.notice(Notice::Error, &error_text(&p, r.status.as_u16(), r.code())));
        } else {
            let total = r.json.get("total").and_then(Value::as_u64).unwrap_or(0);
            let list = items(&r.json);
            if list.is_empty() {
                b.push_str(&format!("<p>{}</p>", p.t("directory_none")));
            } else {
                b.push_str(&format!(
                    r#"<h2 id="h-results">{}</h2><ol class="results" start="{}">"#,
                    p.tf(
                        "directory_results",
                        &[("count", &i18n::number(c.lang, total))]
                    ),
                    offset + 1
                ));
                for a in list {
                    let professions: Vec<String> = a
                        .get("professions")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .take(6)
                        .map(|x| esc(str_of(x, "name")))
                        .collect();
                    let place: Vec<&str> = [str_of(a, "city"), str_of(a, "region")]
                        .into_iter()
                        .filter(|x| !x.is_empty())
                        .collect();
                    b.push_str(&format!(
                        r#"<li><a href="/web/directory/{id}">{name}</a> <span class="code">({id}, {cc})</span><br><span>{place}{sep}{level}</span>{prof}</li>"#,
                        id = esc(str_of(a, "id")),
                        name = esc(str_of(a, "name")),
                        cc = esc(str_of(a, "country")),
                        place = esc(&place.join(", ")),
                        sep = if place.is_empty() { "" } else { " · " },
                        level = p.t(&format!("level_{}", str_of(a, "level"))),
                        prof = if professions.is_empty() {
                            String::new()
                        } else {
                            format!("<br><span class=\"help\">{}</span>", professions.join(", "))
                        },
                    ));
                }
                b.push_str("</ol>");
                let mut nav = String::new();
                if offset > 0 {
                    nav.push_str(&format!(
                        r#"<a href="/web/directory?{}offset={}">{}</a> "#,
                        esc(&filters),
                        offset.saturating_sub(PAGE),
                        p.t("first_page")
                    ));
                }
                if (offset + list.len()) < total as usize && offset + PAGE <= 1000 {
                    nav.push_str(&format!(
                        r#"<a href="/web/directory?{}offset={}" rel="next">{}</a>"#,
                        esc(&filters),
                        offset + PAGE,
                        p.t("next_page")
                    ));
                }
                if !nav.is_empty() {
                    b.push_str(&format!(r#"<p class="pager">{nav}</p>"#));
                }
            }
        }
    }
    html(StatusCode::OK, p.render(&p.t("directory_title"), &b))
}

/// `GET /web/directory/{id}`: one authority, its names in every language it has.
pub async fn authority(
    State(web): State<Web>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let c = match web.ctx(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = url(&id);
    let here = format!("/web/directory/{id}");
    let a = match web
        .get(
            &c,
            &here,
            &format!("/api/v1/directory/authorities/{id}?lang={}", c.lang),
        )
        .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = web.page(&c, &here);
    let mut b = String::new();
    let retired = a.get("retired").and_then(Value::as_bool).unwrap_or(false);
    if retired {
        b.push_str(&p.notice(Notice::Error, &p.t("authority_retired")));
    }
    let list = |k: &str| -> String {
        a.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|x| match x {
                Value::String(s) => esc(s),
                other => format!(
                    "{} <span class=\"code\">({})</span>",
                    esc(str_of(other, "name")),
                    esc(str_of(other, "code"))
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut names = String::new();
    for (l, n) in a
        .get("names")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        names.push_str(&format!(
            r#"<li lang="{l}"><span class="code">{l}</span> {}</li>"#,
            esc(n.as_str().unwrap_or("")),
            l = esc(l)
        ));
    }
    b.push_str(&format!(
        r#"<dl class="facts"><dt>{l_c}</dt><dd>{cc}</dd><dt>{l_l}</dt><dd>{level}</dd><dt>{l_city}</dt><dd>{city}</dd><dt>{l_r}</dt><dd>{region}</dd><dt>{l_a}</dt><dd>{areas}</dd><dt>{l_p}</dt><dd>{prof}</dd><dt>{l_k}</dt><dd>{comp}</dd></dl><h2 id="h-names">{l_n}</h2><ul class="names">{names}</ul>"#,
        l_c = p.t("authority_country"),
        cc = esc(str_of(&a, "country")),
        l_l = p.t("authority_level"),
        level = p.t(&format!("level_{}", str_of(&a, "level"))),
        l_city = p.t("authority_city"),
        city = esc(str_of(&a, "city")),
        l_r = p.t("authority_region"),
        region = esc(str_of(&a, "region")),
        l_a = p.t("authority_areas"),
        areas = list("areas"),
        l_p = p.t("authority_professions"),
        prof = list("professions"),
        l_k = p.t("authority_competences"),
        comp = list("competences"),
        l_n = p.t("authority_names"),
    ));
    if !retired && str_of(&a, "id") != c.s.authority {
        b.push_str(&format!(
            r#"<p><a href="/web/new?responder={}">{}</a></p>"#,
            esc(&id),
            p.t("authority_ask")
        ));
    }
    let title = format!("{} ({})", str_of(&a, "name"), str_of(&a, "id"));
    html(StatusCode::OK, p.render(&title, &b))
}
