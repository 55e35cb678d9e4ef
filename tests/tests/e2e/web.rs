//! The authorities' web application in a real browser (headless Chromium over the DevTools
//! protocol, `imi_e2e::browser`) against real `imi-node` processes (DE and HU):
//!
//! * the seed's DE→HU story clicked through: a German user creates the request in German,
//!   a Hungarian user accepts, proposes a deadline and answers in Hungarian, the German user
//!   reads the answer in German, downloads the answer's file and closes with ratings;
//!   axe-core finds no WCAG 2.1 A/AA violation on any page, in German, Hungarian and Greek,
//!   at 1280 and 320 px; every page's every control is reached with the Tab key; no page
//!   requests anything from another origin; screenshots of each page under
//!   `target/web-screenshots/`;
//! * the directory, notifications, registers and alerts, each clicked through;
//! * sessions and forms over HTTPS: another authority's user gets the page of a case that
//!   does not exist; a form without the CSRF token or from another site changes nothing;
//!   the cookie's attributes; sign-out; a revoked user is out at the next click; the
//!   security headers; every error is a page in the user's language, never JSON.

use std::path::Path;
use std::time::Duration;

use imi_e2e::browser::{Browser, screenshot_dir};
use imi_e2e::{Federation, HEAVY, NodeClient, NodeProc, lock};
use imi_web::i18n::Messages;
use serde_json::Value;

/// Failure guard for a step to reach the other node (not an expected duration).
const ARRIVE: Duration = Duration::from_secs(60);

fn messages() -> Messages {
    Messages::load().expect("catalogues")
}

/// A date `days` from today, `YYYY-MM-DD`.
fn date_in(days: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    imi_protocol::dates::rfc3339(now + days * 86_400_000)[..10].to_owned()
}

/// Signs in through the form; lands on `home`.
fn sign_in(b: &mut Browser, base: &str, token: &str, home: &str) {
    b.goto(&format!("{base}/web/"));
    assert!(
        b.url().ends_with("/web/sign-in"),
        "not signed in: sent to the sign-in page, not {}",
        b.url()
    );
    b.fill("#token", token);
    b.click("main form button[type=submit]");
    let url = b.url();
    assert!(url.ends_with(home), "after sign-in: {url}\n{}", b.text());
}

/// axe-core on the page: no violation.
fn accessible(b: &mut Browser, page: &str) {
    let v = b.axe();
    assert!(
        v.is_empty(),
        "axe-core: {} violation(s) on {page} ({}):\n{:#}",
        v.len(),
        b.lang(),
        Value::Array(v.clone())
    );
}

/// One page: its screenshot; axe-core finds no violation; every control is reached with
/// the Tab key; nothing was requested from another origin.
fn page(b: &mut Browser, shots: &Path, name: &str) {
    b.screenshot(&shots.join(format!("{name}.png")));
    accessible(b, name);
    let operable = b.operable();
    let order = b.tab_order(operable.len() * 4 + 10);
    for o in &operable {
        assert!(
            order.contains(o),
            "{name}: {o} is not reached with Tab; order {order:?}"
        );
    }
    let origin = b.eval("location.origin");
    let origin = origin.as_str().unwrap();
    let foreign: Vec<&String> = b
        .requested
        .iter()
        .filter(|u| !u.starts_with(origin) && !u.starts_with("about:") && !u.starts_with("data:"))
        .collect();
    assert!(
        foreign.is_empty(),
        "{name}: requests to other origins: {foreign:?}"
    );
    assert!(
        !b.requested.is_empty(),
        "{name}: the page's requests were seen"
    );
}

fn case_id_of(url: &str) -> String {
    let rest = url.split("/web/cases/").nth(1).expect("a case page");
    rest.split(['?', '#']).next().unwrap().to_owned()
}

/// Reloads the case page until `pred` holds on its text (the other node's step arrives).
fn wait_case(
    fed: &Federation,
    b: &mut Browser,
    url: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) {
    let deadline = std::time::Instant::now() + ARRIVE;
    // Without the fragment: the same URL with it would not load the page again.
    let url = url.split('#').next().unwrap_or(url);
    loop {
        b.goto(url);
        let t = b.text();
        if pred(&t) {
            return;
        }
        if std::time::Instant::now() > deadline {
            fed.fail(&format!("{url}: {what} did not happen; page:\n{t}"));
        }
        std::thread::sleep(imi_e2e::POLL);
    }
}

#[test]
fn the_de_to_hu_story_in_the_browser() {
    let _g = lock(&HEAVY);
    let m = messages();
    let fed = Federation::init(&["DE", "HU"]);
    let _de_proc: NodeProc = fed.start("DE");
    let _hu_proc: NodeProc = fed.start("HU");
    let anna = fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]);
    let bela = fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]);
    let de_base = fed.client("DE").base.clone();
    let hu_base = fed.client("HU").base.clone();
    let shots = screenshot_dir("de_to_hu");
    let files = tempfile::tempdir().unwrap();
    let diploma = files.path().join("diploma.pdf");
    std::fs::write(&diploma, b"%PDF-1.4 diploma of Dr. K. E.").unwrap();
    let certificate = files.path().join("igazolas.pdf");
    std::fs::write(&certificate, b"%PDF-1.4 certificate of good standing").unwrap();

    // --- The German user creates the request, in German. ---------------------------------
    let mut de = Browser::launch(1280);
    de.accept_language("de-DE,de;q=0.9,en;q=0.5");
    de.goto(&format!("{de_base}/web/sign-in"));
    assert_eq!(de.lang(), "de", "Accept-Language picks German");
    assert!(de.text().contains(m.get("de", "signin_intro")));
    page(&mut de, &shots, "01-de-sign-in");
    sign_in(&mut de, &de_base, &anna, "/web/cases");
    assert!(de.text().contains(m.get("de", "no_cases")));
    page(&mut de, &shots, "02-de-cases-empty");
    // An error page: the same frame, in the user's language.
    de.goto(&format!("{de_base}/web/cases/{}", "f".repeat(32)));
    assert!(de.text().contains(m.get("de", "error_404")));
    page(&mut de, &shots, "02-de-not-found");

    de.click("nav a[href='/web/new']");
    page(&mut de, &shots, "03-de-new-area");
    de.check("input[name=area][value=PQ]");
    de.click("main form button[type=submit]");
    page(&mut de, &shots, "04-de-new-procedure");
    de.check("input[name=procedure][value=PQ-P01]");
    de.click("main form button[type=submit]");
    // The counterpart found by a German word in the replicated directory.
    de.fill("#q", "Zahnarzt");
    de.fill("#country", "HU");
    de.click("main form[role=search] button[type=submit]");
    page(&mut de, &shots, "05-de-new-authority");
    de.check("input[name=responder][value=HU-ENKK]");
    de.click("main form:not([role=search]) button[type=submit]");
    page(&mut de, &shots, "06-de-new-form");
    let form_text = de.text();
    assert!(
        form_text.contains("PQ-Q01") && form_text.contains(m.get("de", "send_request")),
        "{form_text}"
    );
    for q in ["PQ-Q01", "PQ-Q02", "PQ-Q05"] {
        de.check(&format!("input[name=questions][value={q}]"));
    }
    de.fill(
        "#free_text",
        "Bitte bestätigen Sie die Echtheit des beigefügten Diploms.",
    );
    de.fill("#subject_name", "Dr. Kovács Éva");
    de.fill("#subject_dob", "1962-03-09");
    de.fill("#answer_by", &date_in(30));
    de.attach("#new-file", &diploma);
    de.click("#send button[type=submit]");
    let case_url = de.url();
    let id = case_id_of(&case_url);
    let t = de.text();
    assert!(t.contains(m.get("de", "delivered")), "delivered:\n{t}");
    assert!(t.contains(m.get("de", "state_sent")), "{t}");
    assert!(
        t.contains("Dr. Kovács Éva") && t.contains("diploma.pdf"),
        "{t}"
    );
    page(&mut de, &shots, "07-de-case-sent");
    // A requester's choices on a sent request: withdraw or refer, nothing else.
    let forms = de.eval("Array.from(document.querySelectorAll('form.action')).map(f => f.id)");
    assert_eq!(forms, serde_json::json!(["form-withdraw", "form-refer"]));
    // The case list shows it, outgoing.
    de.goto(&format!("{de_base}/web/cases?role=requester"));
    assert!(
        de.eval(&format!(
            "!!document.querySelector(\"a[href='/web/cases/{id}']\")"
        )) == Value::Bool(true)
    );
    page(&mut de, &shots, "08-de-cases");

    // --- The Hungarian user accepts, proposes a deadline and answers, in Hungarian. ------
    let mut hu = Browser::launch(1280);
    hu.accept_language("hu-HU,hu;q=0.9");
    sign_in(&mut hu, &hu_base, &bela, "/web/cases");
    assert_eq!(hu.lang(), "hu");
    hu.goto(&format!("{hu_base}/web/cases?role=responder"));
    hu.click(&format!("a[href='/web/cases/{id}']"));
    let hu_case = hu.url();
    let t = hu.text();
    let hu_q1 = NodeClient::with_token(&fed.client("HU"), &bela)
        .get_json("/api/v1/catalogue/PQ?lang=hu")["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["code"] == "PQ-Q01")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        t.contains(&hu_q1),
        "the question in Hungarian ({hu_q1}):\n{t}"
    );
    assert!(t.contains("Dr. Kovács Éva"), "{t}");
    page(&mut hu, &shots, "09-hu-case-sent");
    hu.click("#form-accept button[type=submit]");
    assert!(
        hu.text().contains(m.get("hu", "delivered")),
        "{}",
        hu.text()
    );
    // The timeline says where each signed step stands: the request received from DE, the
    // acceptance delivered to DE (its signed receipt is back).
    let rows = hu.eval(
        "Array.from(document.querySelectorAll('table.timeline tbody tr')).map(r => r.querySelector('td.delivery').innerText)",
    );
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with(m.get("hu", "notification_received_at")),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with(m.get("hu", "delivery_accepted")),
        "{rows:?}"
    );
    page(&mut hu, &shots, "10-hu-accepted");
    hu.fill("#propose-deadline-date", &date_in(45));
    hu.click("#form-propose-deadline button[type=submit]");
    assert!(
        hu.text().contains(m.get("hu", "state_deadline_proposed")),
        "{}",
        hu.text()
    );
    // Answers: yes to the yes/no questions, the first option of the choice.
    hu.eval(
        "(() => { for (const s of document.querySelectorAll('#form-answer select')) { s.value = s.options[1].value; } return true; })()",
    );
    hu.fill(
        "#answer-free_text",
        "Az oklevél eredeti, a szakember jó hírnevű.",
    );
    hu.attach("#answer-file", &certificate);
    page(&mut hu, &shots, "11-hu-answer-form");
    hu.click("#form-answer button[type=submit]");
    let t = hu.text();
    assert!(t.contains(m.get("hu", "state_answered")), "{t}");
    page(&mut hu, &shots, "12-hu-answered");

    // --- The German user reads the answer in German and closes with ratings. -------------
    wait_case(&fed, &mut de, &case_url, "the answer", |t| {
        t.contains(m.get("de", "state_answered"))
    });
    let t = de.text();
    let de_q1 = NodeClient::with_token(&fed.client("DE"), &anna)
        .get_json("/api/v1/catalogue/PQ?lang=de")["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["code"] == "PQ-Q01")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(t.contains(&de_q1), "the answered question in German:\n{t}");
    assert!(
        t.contains(m.get("de", "answer_yes")),
        "the answer in German:\n{t}"
    );
    assert!(t.contains("Az oklevél eredeti"), "{t}");
    assert!(t.contains("igazolas.pdf"), "{t}");
    page(&mut de, &shots, "13-de-answered");
    // The answer's file downloads with the session (a browser navigation to a download
    // has no page to load, so the bytes are fetched with the browser's cookie).
    let href = de
        .eval("Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')).find(h => h && h.includes('name=igazolas.pdf'))")
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = de
        .cookies(&de_base)
        .into_iter()
        .find(|c| c["name"] == "__Host-imi_session")
        .expect("session cookie");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["secure"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    let http = https(&fed);
    let r = http
        .get(format!("{de_base}{href}"))
        .header(
            "cookie",
            format!("__Host-imi_session={}", cookie["value"].as_str().unwrap()),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("igazolas.pdf")
    );
    assert_eq!(
        r.bytes().unwrap().as_ref(),
        std::fs::read(&certificate).unwrap()
    );

    de.fill("#close-timeliness", "4");
    de.fill("#close-efforts", "5");
    de.click("#form-close button[type=submit]");
    let t = de.text();
    assert!(t.contains(m.get("de", "state_closed")), "{t}");
    assert!(
        t.contains(m.get("de", "rating_satisfied"))
            && t.contains(m.get("de", "rating_very_satisfied")),
        "{t}"
    );
    assert!(
        t.contains(m.get("de", "no_actions")),
        "no action on a closed case:\n{t}"
    );
    page(&mut de, &shots, "14-de-closed");
    wait_case(&fed, &mut hu, &hu_case, "the closure", |t| {
        t.contains(m.get("hu", "state_closed"))
    });
    page(&mut hu, &shots, "15-hu-closed");

    // --- Greek (non-Latin script), at 320 px: every page accessible, nothing overflows. --
    de.set_width(320);
    de.goto(&format!("{de_base}/web/cases"));
    de.fill("#lang-select", "el");
    de.click("form.lang button[type=submit]");
    assert_eq!(de.lang(), "el", "the user's choice beats Accept-Language");
    for (name, path) in [
        ("16-el-cases", "/web/cases".to_owned()),
        ("17-el-case", format!("/web/cases/{id}")),
        ("18-el-new", "/web/new?area=PQ&procedure=PQ-P01&q=%CE%BF%CE%B4%CE%BF%CE%BD%CF%84%CE%AF%CE%B1%CF%84%CF%81%CE%BF%CF%82".to_owned()),
        ("19-el-new-form", "/web/new?area=PQ&procedure=PQ-P01&responder=HU-ENKK".to_owned()),
    ] {
        de.goto(&format!("{de_base}{path}"));
        assert_eq!(de.lang(), "el");
        let wide = de.overflowing();
        assert!(wide.is_empty(), "{path} is wider than 320 px: {wide:?}");
        page(&mut de, &shots, name);
    }
    // The Greek search ("οδοντίατρος", dentist) found the Hungarian authority.
    de.goto(&format!(
        "{de_base}/web/new?area=PQ&procedure=PQ-P01&q=%CE%BF%CE%B4%CE%BF%CE%BD%CF%84%CE%AF%CE%B1%CF%84%CF%81%CE%BF%CF%82&country=HU"
    ));
    assert_eq!(
        de.eval("!!document.querySelector('input[name=responder][value=HU-ENKK]')"),
        Value::Bool(true),
        "{}",
        de.text()
    );

    // --- The auditor's page, and sign-out. -----------------------------------------------
    let audit = fed.add_user("DE", "audit.de", "DE-NC", "auditor", &[]);
    let mut au = Browser::launch(1280);
    au.accept_language("en");
    sign_in(&mut au, &de_base, &audit, "/web/audit");
    assert!(
        au.text().contains("anna.de"),
        "the access log names the reader:\n{}",
        au.text()
    );
    page(&mut au, &shots, "20-en-audit");
    au.click("form[action='/web/sign-out'] button[type=submit]");
    assert!(au.url().contains("/web/sign-in?out=1"), "{}", au.url());
    assert!(au.text().contains(m.get("en", "signed_out")));
    page(&mut au, &shots, "21-en-signed-out");
    au.goto(&format!("{de_base}/web/audit"));
    assert!(
        au.url().contains("/web/sign-in"),
        "signed out: {}",
        au.url()
    );
}

/// An HTTPS client that trusts the federation's CA and follows no redirect.
fn https(fed: &Federation) -> reqwest::blocking::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&fed.ca_pem()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A browser-less web user: the session cookie, and the CSRF token read off a page.
struct WebUser {
    http: reqwest::blocking::Client,
    base: String,
    cookie: String,
}

fn hidden_value(html: &str, name: &str) -> String {
    let pat = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&pat)
        .unwrap_or_else(|| panic!("no {name} in\n{html}"))
        + pat.len();
    html[i..].split('"').next().unwrap().to_owned()
}

fn set_cookie_value(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl WebUser {
    fn sign_in(fed: &Federation, node: &str, token: &str) -> WebUser {
        let http = https(fed);
        let base = fed.client(node).base.clone();
        let r = http.get(format!("{base}/web/sign-in")).send().unwrap();
        let login = set_cookie_value(&r, "__Host-imi_login").expect("login cookie");
        let login_cookie = login.split(';').next().unwrap().to_owned();
        let html = r.text().unwrap();
        let form = reqwest::blocking::multipart::Form::new()
            .text("login", hidden_value(&html, "login"))
            .text("token", token.to_owned());
        let r = http
            .post(format!("{base}/web/sign-in"))
            .header("cookie", &login_cookie)
            .header("origin", &base)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status(), 303, "sign-in");
        let set = set_cookie_value(&r, "__Host-imi_session").expect("session cookie");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "session cookie lacks {attr}: {set}");
        }
        WebUser {
            http,
            base,
            cookie: set.split(';').next().unwrap().to_owned(),
        }
    }

    fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        let (st, h) = (r.status().as_u16(), r.headers().clone());
        (st, h, r.text().unwrap())
    }

    fn post(&self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> (u16, String) {
        let (st, _, body) = self.post_full(path, fields, origin);
        (st, body)
    }

    fn post_full(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut form = reqwest::blocking::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .multipart(form);
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        let r = rb.send().unwrap();
        let (st, h) = (r.status().as_u16(), r.headers().clone());
        (st, h, r.text().unwrap())
    }
}

#[test]
fn sessions_forms_and_errors_over_https() {
    let _g = lock(&HEAVY);
    let m = messages();
    let fed = Federation::init(&["DE", "HU"]);
    let _de: NodeProc = fed.start("DE");
    let _hu: NodeProc = fed.start("HU");
    let anna = fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]);
    let otto = fed.add_user("DE", "otto.de", "DE-NW-ZAEK", "authority_user", &[]);
    fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]);
    let api = NodeClient::with_token(&fed.client("DE"), &anna);
    let created = api.post_status(
        "/api/v1/requests",
        &serde_json::json!({
            "responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01",
            "questions": ["PQ-Q01"], "subject": {"name": "Dr. Kovács Éva"},
            "answer_by": date_in(30),
        }),
        201,
    );
    let id = created["id"].as_str().unwrap().to_owned();
    // The professions the alert form offers, named in the caller's language (checked
    // against openapi.json by the harness).
    let prof = api.get_json("/api/v1/vocabularies/professions?lang=de");
    let items = prof["items"].as_array().unwrap();
    assert!(items.len() >= 80, "{}", items.len());
    let dentist = items.iter().find(|p| p["code"] == "PROF-DENTIST").unwrap();
    assert_eq!(dentist["name"], "Zahnarzt", "{dentist}");
    assert_eq!(dentist["health"], true);

    let a = WebUser::sign_in(&fed, "DE", &anna);
    let (st, h, html) = a.get(&format!("/web/cases/{id}"));
    assert_eq!(st, 200);
    for (k, v) in imi_web::SECURITY_HEADERS {
        assert_eq!(h[k], v, "{k}");
    }
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(!html.contains("<script"), "no script on any page");
    let csrf = hidden_value(&html, "csrf");
    let idem = hidden_value(&html, "idem");

    // Another authority of the same country: the page of a case that does not exist.
    let o = WebUser::sign_in(&fed, "DE", &otto);
    let (st_hidden, _, hidden) = o.get(&format!("/web/cases/{id}"));
    let absent_id = "0".repeat(32);
    let (st_absent, _, absent) = o.get(&format!("/web/cases/{absent_id}"));
    assert_eq!((st_hidden, st_absent), (404, 404));
    // The same page but for the address the language form returns to.
    let absent = absent.replace(&absent_id, &id);
    assert_eq!(hidden, absent, "a hidden case looks like no case");
    assert!(hidden.contains(m.get("en", "error_404")));

    // Forged forms change nothing: no CSRF token, a wrong one, another site's origin.
    let withdraw = format!("/web/cases/{id}/withdraw");
    let reason = ("reason", "forged");
    // A form refused on its headers alone is still read (bounded), so that a client still
    // sending a large one gets the refusal page, not a broken connection.
    let pad = "x".repeat(2 << 20);
    for (fields, origin) in [
        (vec![reason, ("idem", "f1")], None),
        (vec![reason, ("csrf", "wrong"), ("idem", "f2")], None),
        (
            vec![reason, ("csrf", csrf.as_str()), ("idem", "f3")],
            Some("https://evil.example"),
        ),
        (
            vec![
                reason,
                ("csrf", csrf.as_str()),
                ("idem", "f4"),
                ("pad", &pad),
            ],
            Some("https://evil.example"),
        ),
    ] {
        let (st, body) = a.post(&withdraw, &fields, origin);
        assert_eq!(st, 403, "{body}");
        assert!(body.contains(m.get("en", "error_csrf")), "{body}");
    }
    assert_eq!(
        api.get_json(&format!("/api/v1/requests/{id}"))["state"],
        "sent"
    );
    // An API error is a sentence in the user's language (a withdrawal without a reason).
    let (st, h, _) = a.post_full(
        &withdraw,
        &[("csrf", &csrf), ("reason", " "), ("idem", "blank-reason")],
        Some(&a.base.clone()),
    );
    assert_eq!(st, 303);
    let back = h["location"].to_str().unwrap().to_owned();
    assert!(back.contains("error=missing"), "{back}");
    let (_, _, page) = a.get(&back);
    assert!(page.contains(m.get("en", "code_missing")), "{page}");
    assert!(!page.contains("\"status\""), "no JSON on a page");
    // An unknown page and an unknown action: HTML pages, not JSON.
    let (st, h, body) = a.get("/web/nowhere");
    assert_eq!(st, 404);
    assert!(
        h["content-type"].to_str().unwrap().starts_with("text/html"),
        "{body}"
    );
    let (st, body) = a.post(
        &format!("/web/cases/{id}/explode"),
        &[("csrf", &csrf)],
        None,
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("<!DOCTYPE html>"));
    // The genuine form works.
    let (st, _) = a.post(
        &withdraw,
        &[
            ("csrf", &csrf),
            ("reason", "Nicht mehr nötig."),
            ("idem", &idem),
        ],
        Some(&a.base.clone()),
    );
    assert_eq!(st, 303);
    assert_eq!(
        api.get_json(&format!("/api/v1/requests/{id}"))["state"],
        "withdrawn"
    );

    // An auditor downloads the case's evidence bundle.
    let auditor = fed.add_user("DE", "audit.de", "DE-NC", "auditor", &[]);
    let au = WebUser::sign_in(&fed, "DE", &auditor);
    let (st, h, body) = au.get(&format!("/web/audit/bundle?case={id}"));
    assert_eq!(st, 200, "{body}");
    assert!(
        h["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("bundle-{id}.json"))
    );
    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["case"], id.as_str(), "{bundle}");
    // A case worker may not.
    let (st, _, _) = a.get(&format!("/web/audit/bundle?case={id}"));
    assert_eq!(st, 403);

    // Sign-out ends the session; a forged cookie is no session.
    let (st, _) = o.post("/web/sign-out", &[("csrf", "wrong")], None);
    assert_eq!(st, 403, "sign-out needs the CSRF token too");
    let (_, _, html) = o.get("/web/cases");
    let (st, _) = o.post(
        "/web/sign-out",
        &[("csrf", &hidden_value(&html, "csrf"))],
        None,
    );
    assert_eq!(st, 303);
    let (st, h, _) = o.get("/web/cases");
    assert_eq!(st, 303);
    assert!(h["location"].to_str().unwrap().starts_with("/web/sign-in"));

    // A revoked user is out at the next click.
    let cfg = fed.config("DE");
    let out = fed.run_cli(&[
        "users",
        "revoke",
        "--config",
        cfg.to_str().unwrap(),
        "--id",
        "anna.de",
    ]);
    assert!(out.status.success());
    let (st, h, _) = a.get("/web/cases");
    assert_eq!(st, 303);
    assert_eq!(h["location"], "/web/sign-in?ended=1");
    let (st, h, _) = a.get("/web/cases");
    assert_eq!(
        (st, h["location"].to_str().unwrap()),
        (303, "/web/sign-in?ended=1"),
        "the session is gone"
    );
    // A revoked token does not sign in again.
    let http = https(&fed);
    let r = http.get(format!("{}/web/sign-in", a.base)).send().unwrap();
    let login = set_cookie_value(&r, "__Host-imi_login").unwrap();
    let html = r.text().unwrap();
    let r = http
        .post(format!("{}/web/sign-in", a.base))
        .header("cookie", login.split(';').next().unwrap())
        .multipart(
            reqwest::blocking::multipart::Form::new()
                .text("login", hidden_value(&html, "login"))
                .text("token", anna.clone()),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains(m.get("en", "signin_failed")));
}

/// The directory, notifications and alerts in the browser: a German user finds the
/// Hungarian authority in the directory and starts a request from its page; sends it a
/// notification, which the Hungarian user reads and acknowledges, and the German user sees
/// acknowledged; an alert a German user writes in the form reaches the Hungarian coordinator sealed,
/// who forwards it; the Hungarian authority then reads the professional; the German sender
/// closes it. axe-core on every page.
#[test]
fn directory_notifications_and_alerts_in_the_browser() {
    let _g = lock(&HEAVY);
    let m = messages();
    let fed = Federation::init(&["DE", "HU"]);
    let _de_proc: NodeProc = fed.start("DE");
    let _hu_proc: NodeProc = fed.start("HU");
    let anna = fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]);
    let dora = fed.add_user("DE", "dora.de", "DE-NC", "authority_user", &[]);
    let bela = fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]);
    let hedi = fed.add_user("HU", "hedi.hu", "HU-NC", "coordinator", &[]);
    let de_base = fed.client("DE").base.clone();
    let hu_base = fed.client("HU").base.clone();
    let shots = screenshot_dir("directory_notifications_alerts");

    // --- The directory. -------------------------------------------------------------------
    let mut de = Browser::launch(1280);
    de.accept_language("de");
    sign_in(&mut de, &de_base, &anna, "/web/cases");
    de.click("nav a[href='/web/directory']");
    page(&mut de, &shots, "01-de-directory");
    de.fill("#dq", "Zahnarzt");
    de.fill("#dcountry", "HU");
    de.click("main form[role=search] button[type=submit]");
    page(&mut de, &shots, "02-de-directory-results");
    de.click("a[href='/web/directory/HU-ENKK']");
    let t = de.text();
    assert!(
        t.contains("HU-ENKK") && t.contains(m.get("de", "authority_names")),
        "{t}"
    );
    page(&mut de, &shots, "03-de-authority");
    de.click("a[href='/web/new?responder=HU-ENKK']");
    de.check("input[name=area][value=PQ]");
    de.click("main form button[type=submit]");
    de.check("input[name=procedure][value=PQ-P01]");
    de.click("main form button[type=submit]");
    assert_eq!(
        de.eval("document.querySelector('#send input[name=responder]').value"),
        Value::String("HU-ENKK".into()),
        "the authority chosen in the directory is the one asked"
    );

    // --- A notification, read and acknowledged. ------------------------------------------
    de.click("nav a[href='/web/notifications']");
    assert!(de.text().contains(m.get("de", "no_notifications")));
    page(&mut de, &shots, "04-de-notifications-empty");
    de.click("a[href='/web/notifications/new']");
    page(&mut de, &shots, "05-de-notification-type");
    de.check("input[name=type][value=CIT-P02]");
    de.click("main form button[type=submit]");
    de.fill("#recipients", "HU-ENKK");
    let today = date_in(0);
    de.eval(&format!(
        "(() => {{ for (const e of document.querySelectorAll('#notify [name^=\"a:\"]')) {{ if (e.tagName === 'SELECT') e.value = e.options[1].value; else if (e.type === 'date') e.value = '{today}'; else e.value = 'Geldtransport GmbH'; }} return true; }})()"
    ));
    page(&mut de, &shots, "05-de-notification-form-filled");
    de.click("#notify button[type=submit]");
    let note_url = de.url();
    let t = de.text();
    assert!(note_url.contains("/web/notifications/"), "{note_url}\n{t}");
    assert!(t.contains(m.get("de", "delivered")), "{t}");
    assert!(t.contains(m.get("de", "recipient_not_acknowledged")), "{t}");
    assert!(t.contains("Geldtransport GmbH"), "{t}");
    page(&mut de, &shots, "06-de-notification-sent");
    let note_id = note_url
        .split("/web/notifications/")
        .nth(1)
        .unwrap()
        .split(['?', '#'])
        .next()
        .unwrap()
        .to_owned();

    let mut hu = Browser::launch(1280);
    hu.accept_language("hu");
    sign_in(&mut hu, &hu_base, &bela, "/web/cases");
    hu.goto(&format!("{hu_base}/web/notifications"));
    assert!(hu.text().contains(m.get("hu", "unread")), "{}", hu.text());
    page(&mut hu, &shots, "07-hu-notifications");
    hu.click(&format!("a[href='/web/notifications/{note_id}']"));
    page(&mut hu, &shots, "08-hu-notification");
    hu.click("#form-read button[type=submit]");
    assert!(
        hu.text().contains(m.get("hu", "acknowledged")),
        "{}",
        hu.text()
    );
    assert_eq!(
        hu.eval("!!document.querySelector('#form-read')"),
        Value::Bool(false),
        "acknowledged once"
    );
    wait_case(&fed, &mut de, &note_url, "the acknowledgement", |t| {
        !t.contains(m.get("de", "recipient_not_acknowledged"))
    });

    // --- The register the notification populated (CIT-P02 → the euro-cash register
    // CIT-P01, held by the euro area): its entry, a new one, a withdrawal. --------------
    de.click("nav a[href='/web/repositories']");
    page(&mut de, &shots, "08-de-registers");
    de.click("a[href='/web/repositories/CIT-P01']");
    let t = de.text();
    assert!(
        t.contains("DE-BY-BLZK") && t.contains("Geldtransport GmbH"),
        "{t}"
    );
    page(&mut de, &shots, "08-de-register");
    de.eval(&format!(
        "(() => {{ for (const e of document.querySelectorAll('#entry [name^=\"a:\"]')) {{ if (e.tagName === 'SELECT') e.value = e.options[1].value; else if (e.type === 'date') e.value = '{today}'; else e.value = 'Sicherheitstransporte AG'; }} return true; }})()"
    ));
    de.click("#entry button[type=submit]");
    let t = de.text();
    assert!(t.contains(m.get("de", "entry_added")), "{t}");
    assert!(t.contains("Sicherheitstransporte AG"), "{t}");
    assert_eq!(
        de.eval("document.querySelectorAll('#entries tbody tr').length"),
        serde_json::json!(2)
    );
    de.click("#entries tbody form button[type=submit]");
    let t = de.text();
    assert!(t.contains(m.get("de", "entry_withdrawn_done")), "{t}");
    assert!(t.contains(m.get("de", "entry_withdrawn")), "{t}");
    page(&mut de, &shots, "08-de-register-withdrawn");

    // --- An alert: sealed for the coordinator, forwarded, read, closed. ------------------
    // The German sender fills in the alert form: type, profession, measure, decision,
    // the professional.
    let mut ds = Browser::launch(1280);
    ds.accept_language("de");
    sign_in(&mut ds, &de_base, &dora, "/web/cases");
    ds.click("nav a[href='/web/alerts']");
    ds.click("a[href='/web/alerts/new']");
    page(&mut ds, &shots, "09-de-alert-type");
    ds.check("input[name=type][value=PQ-P02]");
    ds.click("main form button[type=submit]");
    ds.fill("#alert-profession", "PROF-DOCTOR");
    ds.eval(&format!(
        "(() => {{ for (const e of document.querySelectorAll('#alert [name^=\"a:\"]')) {{ if (e.tagName === 'SELECT') e.value = 'PQ-Q12-PROHIBITION'; else if (e.type === 'date') e.value = '{today}'; }} return true; }})()"
    ));
    ds.fill("#alert-decided", &today);
    ds.fill("#alert-name", "Dr. Erika Mustermann");
    ds.fill("#alert-dob", "1970-02-03");
    page(&mut ds, &shots, "09-de-alert-form");
    ds.click("#alert button[type=submit]");
    let t = ds.text();
    assert!(ds.url().contains("/web/alerts/"), "{}\n{t}", ds.url());
    assert!(
        t.contains("Dr. Erika Mustermann"),
        "the sender sees the professional:\n{t}"
    );
    let alert_id = ds
        .url()
        .split("/web/alerts/")
        .nth(1)
        .unwrap()
        .split(['?', '#'])
        .next()
        .unwrap()
        .to_owned();
    assert!(
        t.contains(&m.get("de", "alert_sent").replace("{id}", &alert_id)),
        "{t}"
    );
    let mut hc = Browser::launch(1280);
    hc.accept_language("hu");
    sign_in(&mut hc, &hu_base, &hedi, "/web/cases");
    let alert_url = format!("{hu_base}/web/alerts/{alert_id}");
    wait_case(&fed, &mut hc, &alert_url, "the alert", |t| {
        t.contains(m.get("hu", "alert_identity_sealed"))
    });
    assert!(
        !hc.text().contains("Mustermann"),
        "sealed for the coordinator"
    );
    page(&mut hc, &shots, "09-hu-coordinator-alert");
    hc.goto(&format!("{hu_base}/web/alerts"));
    page(&mut hc, &shots, "10-hu-alerts");
    hc.goto(&alert_url);
    hc.fill("#forward-to", "HU-ENKK");
    hc.click("#form-forward button[type=submit]");
    assert!(
        hc.text().contains(m.get("hu", "alert_forwarded")),
        "{}",
        hc.text()
    );
    let hu_alert = format!("{hu_base}/web/alerts/{alert_id}");
    wait_case(
        &fed,
        &mut hu,
        &hu_alert,
        "the professional's identity",
        |t| t.contains("Dr. Erika Mustermann"),
    );
    page(&mut hu, &shots, "11-hu-authority-alert");

    ds.goto(&format!("{de_base}/web/alerts/{alert_id}"));
    page(&mut ds, &shots, "12-de-sender-alert");
    ds.fill("#close-ended", &today);
    ds.click("#form-close button[type=submit]");
    let t = ds.text();
    assert!(t.contains(m.get("de", "alert_closed_done")), "{t}");
    assert_eq!(
        ds.eval("!!document.querySelector('#form-close')"),
        Value::Bool(false),
        "closed once"
    );
    page(&mut ds, &shots, "13-de-alert-closed");

    // --- A referral, resolved by the responder's coordinator: reassigned. -----------------
    let api = NodeClient::with_token(&fed.client("DE"), &anna);
    let created = api.post_status(
        "/api/v1/requests",
        &serde_json::json!({
            "responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01",
            "questions": ["PQ-Q01"], "subject": {"name": "Dr. Kovács Éva"},
            "answer_by": date_in(20),
        }),
        201,
    );
    let case = created["id"].as_str().unwrap().to_owned();
    api.post_status(
        &format!("/api/v1/requests/{case}/refer"),
        &serde_json::json!({"reason": "HU-ENKK says it is not competent."}),
        200,
    );
    let case_url = format!("{hu_base}/web/cases/{case}");
    wait_case(&fed, &mut hc, &case_url, "the referral", |t| {
        t.contains(m.get("hu", "state_referred"))
    });
    let forms = hc.eval("Array.from(document.querySelectorAll('form.action')).map(f => f.id)");
    assert_eq!(
        forms,
        serde_json::json!(["form-reassign", "form-resolve"]),
        "the coordinator may reassign or resolve, nothing else"
    );
    page(&mut hc, &shots, "14-hu-coordinator-referral");
    hc.goto(&format!("{hu_base}/web/cases"));
    assert!(hc.text().contains(m.get("hu", "cases_coordinator_intro")));
    assert_eq!(
        hc.eval(&format!(
            "!!document.querySelector(\"a[href='/web/cases/{case}']\")"
        )),
        Value::Bool(true),
        "the country's case is in the coordinator's list"
    );
    page(&mut hc, &shots, "15-hu-coordinator-cases");
    hc.goto(&case_url);
    hc.fill("#reassign-to", "HU-NC");
    hc.click("#form-reassign button[type=submit]");
    let t = hc.text();
    assert!(
        t.contains(m.get("hu", "state_sent")) && t.contains("HU-NC"),
        "{t}"
    );
    page(&mut hc, &shots, "16-hu-reassigned");
}

/// A coordinator's case list starts with the overdue cases of the whole country, in a
/// section of their own, then the others.
#[test]
fn coordinators_see_overdue_cases_first() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "HU"]);
    let de = fed.start("DE");
    let _hu: NodeProc = fed.start("HU");
    let anna = fed.add_user("DE", "anna.de", "DE-BY-BLZK", "authority_user", &[]);
    let carl = fed.add_user("DE", "carl.de", "DE-NC", "coordinator", &[]);
    fed.add_user("HU", "bela.hu", "HU-ENKK", "authority_user", &[]);
    let api = NodeClient::with_token(&fed.client("DE"), &anna);
    let make = |days: u64| {
        api.post_status(
            "/api/v1/requests",
            &serde_json::json!({
                "responder": "HU-ENKK", "area": "PQ", "procedure": "PQ-P01",
                "questions": ["PQ-Q01"], "subject": {"name": "Dr. Kovács Éva"},
                "answer_by": date_in(days),
            }),
            201,
        )["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Made in this order, the one due later has the smaller id half the time: the list's
    // own order (by id) does not decide the test.
    let later = make(30);
    let soon = make(2);
    // Four days later, the second is overdue.
    de.stop();
    let ahead = (4 * 86_400_000u64).to_string();
    let _de2 = NodeProc::start_env(&fed, "DE", &[("IMI_CLOCK_OFFSET_MS", &ahead)]);
    let c = WebUser::sign_in(&fed, "DE", &carl);
    let (st, _, html) = c.get("/web/cases");
    assert_eq!(st, 200);
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("no {needle} in\n{html}"))
    };
    let overdue_section = at("id=\"h-overdue\"");
    let others = at("id=\"h-others\"");
    let soon_at = at(&format!("/web/cases/{soon}\""));
    let later_at = at(&format!("/web/cases/{later}\""));
    assert!(
        overdue_section < soon_at && soon_at < others && others < later_at,
        "overdue first: {overdue_section} < {soon_at} < {others} < {later_at}"
    );
    // With the overdue filter, only the overdue one.
    let (_, _, only) = c.get("/web/cases?overdue=1");
    assert!(only.contains(&format!("/web/cases/{soon}\"")));
    assert!(!only.contains(&format!("/web/cases/{later}\"")));
}
