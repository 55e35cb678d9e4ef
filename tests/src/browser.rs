//! A real browser for the web application's tests: Debian's headless Chromium driven over
//! the Chrome DevTools Protocol on a pipe (`--remote-debugging-pipe`: the browser reads
//! NUL-terminated JSON commands on its fd 3 and writes replies and events on its fd 4; a
//! `sh` wrapper maps our stdin/stdout pipes there, so no socket, port or extra crate).
//!
//! Every wait is on an event of the browser (`Page.loadEventFired` after a navigation or a
//! submitted form) with a generous failure guard, never on a sleep.
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

/// Debian's Chromium (`scripts/setup.sh` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Failure guard for one browser round trip or page load (not an expected duration).
pub const GUARD: Duration = Duration::from_secs(90);

/// The axe-core accessibility engine, vendored from the npm registry (MPL-2.0,
/// `tests/assets/axe-core/`).
pub const AXE: &str = include_str!("../assets/axe-core/axe.min.js");

/// One headless Chromium with one page.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next: u64,
    events: VecDeque<Value>,
    /// Every URL the page requested (`Network.requestWillBeSent`), in order.
    pub requested: Vec<String>,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser and opens a blank page, `width` CSS pixels wide. TLS errors are
    /// ignored for this browser only: the node's certificate is issued by the federation's
    /// own CA, which the throwaway profile does not know (the connection is still TLS).
    pub fn launch(width: u32) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let stdin = child.stdin.take().expect("pipe");
        let stdout = child.stdout.take().expect("pipe");
        // Bounded: the reader waits while the test has not taken what came before.
        let (tx, rx) = sync_channel(4096);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                            && tx.send(v).is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            rx,
            next: 0,
            events: VecDeque::new(),
            requested: Vec::new(),
            session: String::new(),
            _profile: profile,
        };
        b.send(
            None,
            "Security.setIgnoreCertificateErrors",
            json!({"ignore": true}),
        );
        let t = b.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target = t["targetId"].as_str().expect("targetId").to_owned();
        let s = b.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = s["sessionId"].as_str().expect("sessionId").to_owned();
        b.cmd("Page.enable", json!({}));
        b.cmd("Network.enable", json!({}));
        b.set_width(width);
        b
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.stdin.write_all(&bytes).expect("write to chromium");
        self.stdin.flush().expect("flush");
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    if let Some(e) = v.get("error") {
                        panic!("{method} failed: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(v) => self.event(v),
                Err(RecvTimeoutError::Timeout) => panic!("{method}: no answer from chromium"),
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: chromium exited"),
            }
        }
    }

    fn event(&mut self, v: Value) {
        if v["method"] == "Network.requestWillBeSent"
            && let Some(u) = v["params"]["request"]["url"].as_str()
        {
            self.requested.push(u.to_owned());
        }
        self.events.push_back(v);
    }

    /// A command to the page.
    pub fn cmd(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.send(Some(&s), method, params)
    }

    /// Emulates a viewport `width` CSS pixels wide.
    pub fn set_width(&mut self, width: u32) {
        self.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
    }

    /// Waits for the page's next `load` event.
    fn wait_load(&mut self, what: &str) {
        let deadline = Instant::now() + GUARD;
        loop {
            while let Some(e) = self.events.pop_front() {
                if e["method"] == "Page.loadEventFired" {
                    return;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => self.event(v),
                Err(_) => panic!("{what}: the page did not load"),
            }
        }
    }

    /// Opens `url` and waits until it has loaded (a new document: give a URL without the
    /// current page's fragment to load the page again).
    pub fn goto(&mut self, url: &str) {
        self.events.clear();
        let r = self.cmd("Page.navigate", json!({"url": url}));
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            panic!("navigate to {url}: {e}");
        }
        // A navigation within the same document (only the fragment differs) loads nothing.
        if r.get("loaderId").is_some() {
            self.wait_load(url);
        }
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.cmd(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("script failed: {e}\n{js}");
        }
        r["result"]["value"].clone()
    }

    /// Runs `js` (which submits a form or follows a link) and waits for the next page.
    pub fn navigate_by(&mut self, js: &str) {
        self.events.clear();
        self.eval(js);
        self.wait_load(js);
    }

    /// Sets the field `selector` to `value` (input, textarea or select).
    pub fn fill(&mut self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) throw new Error('no ' + {s}); e.value = {v}; return e.value; }})()",
            s = json!(selector),
            v = json!(value)
        );
        assert_eq!(
            self.eval(&js),
            json!(value),
            "{selector} did not take {value:?}"
        );
    }

    /// Ticks the checkbox or radio button `selector`.
    pub fn check(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) throw new Error('no ' + {s}); e.checked = true; return true; }})()",
            s = json!(selector)
        );
        self.eval(&js);
    }

    /// Clicks `selector` (a submit button or a link) and waits for the page it leads to.
    pub fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); if (!e) throw new Error('no ' + {s}); e.click(); return true; }})()",
            s = json!(selector)
        );
        self.navigate_by(&js);
    }

    /// Gives the file input `selector` the file at `path`.
    pub fn attach(&mut self, selector: &str, path: &Path) {
        let r = self.cmd(
            "Runtime.evaluate",
            json!({"expression": format!("document.querySelector({})", json!(selector))}),
        );
        let object = r["result"]["objectId"]
            .as_str()
            .unwrap_or_else(|| panic!("no {selector}"))
            .to_owned();
        self.cmd(
            "DOM.setFileInputFiles",
            json!({"files": [path.display().to_string()], "objectId": object}),
        );
    }

    /// The page's visible text.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's address.
    pub fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's `<html lang>`.
    pub fn lang(&mut self) -> String {
        self.eval("document.documentElement.lang")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The browser's cookies for `url`.
    pub fn cookies(&mut self, url: &str) -> Vec<Value> {
        self.cmd("Network.getCookies", json!({"urls": [url]}))["cookies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Sends the page's request headers with `Accept-Language: lang` from now on.
    pub fn accept_language(&mut self, lang: &str) {
        self.cmd(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"Accept-Language": lang}}),
        );
    }

    /// A PNG of the whole page, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let r = self.cmd(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("png data"))
            .expect("base64");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// axe-core's WCAG 2.0/2.1 A and AA rules on the page: the violations (rule id,
    /// impact, the first offending elements).
    pub fn axe(&mut self) -> Vec<Value> {
        if self.eval("typeof axe") != json!("object") {
            // DevTools evaluation is not subject to the page's script policy.
            self.eval(AXE);
        }
        let v = self.eval(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)})))",
        );
        v.as_array().cloned().unwrap_or_default()
    }

    /// Focuses the page's first control, then presses Tab through the page and returns a
    /// description of each element that took
    /// the focus, in order, until the focus comes back to an element it already visited (at
    /// most `max` presses). A field with parts of its own (a date's day, month and year)
    /// takes several presses and counts once.
    pub fn tab_order(&mut self, max: usize) -> Vec<String> {
        let describe = "(() => { const e = document.activeElement; if (!e || e === document.body) return ''; if (window.__tabLast === e) return ''; window.__tabLast = e; if (e.dataset.tabbed) return '<again>'; e.dataset.tabbed = '1'; if (e.type === 'radio') return 'radio-group|' + e.name; return e.tagName.toLowerCase() + '|' + (e.id || e.name || e.getAttribute('href') || e.textContent.trim().slice(0, 40)); })()";
        // Start at the page's first control, wherever focus was left: Chrome tabs on from
        // its last focus point, which a reload or a submitted form can leave mid-page.
        self.eval(
            "(() => { window.__tabLast = null; const f = document.querySelector('a[href], button, input:not([type=hidden]), select, textarea'); if (f) f.focus(); })()",
        );
        let mut seen = Vec::new();
        let first = self.eval(describe).as_str().unwrap_or_default().to_owned();
        if !first.is_empty() {
            seen.push(first);
        }
        for _ in 0..max {
            for ty in ["keyDown", "keyUp"] {
                self.cmd(
                    "Input.dispatchKeyEvent",
                    json!({"type": ty, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}),
                );
            }
            let d = self.eval(describe).as_str().unwrap_or_default().to_owned();
            if d == "<again>" {
                break;
            }
            if !d.is_empty() {
                seen.push(d);
            }
        }
        self.eval(
            "document.querySelectorAll('[data-tabbed]').forEach(e => delete e.dataset.tabbed)",
        );
        seen
    }

    /// Every element of the page a user can operate (links, buttons, fields), described as
    /// [`Browser::tab_order`] describes them; a group of radio buttons is one stop (Tab
    /// enters the group, the arrow keys choose).
    pub fn operable(&mut self) -> Vec<String> {
        let v = self.eval("[...new Set(Array.from(document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')).filter(e => e.offsetParent !== null || e.getClientRects().length > 0).map(e => e.type === 'radio' ? 'radio-group|' + e.name : e.tagName.toLowerCase() + '|' + (e.id || e.name || e.getAttribute('href') || e.textContent.trim().slice(0, 40))))]");
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The elements that reach beyond the viewport's width (a horizontal scroll bar), as
    /// `tag#id.class`; empty when the page fits.
    pub fn overflowing(&mut self) -> Vec<String> {
        let v = self.eval("(() => { const w = document.documentElement.clientWidth; if (document.documentElement.scrollWidth <= w + 1) return []; return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > w + 1).slice(0, 12).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') + ' ' + Math.round(e.getBoundingClientRect().right) + 'px'); })()");
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `target/web-screenshots/<test>/` (kept as CI artefacts).
pub fn screenshot_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-screenshots").join(test)
}
