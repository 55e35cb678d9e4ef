//! Repositories with real nodes: the euro-cash licence register (`CIT-P01`) is held by the
//! euro area only. A German authority's entry reaches Austria, never Hungary (outside the
//! access list: its API refuses the repository and its database holds no entry); Austria
//! syndicates the public fields only, as JSON and as an Atom feed a real feed parser reads;
//! updates and withdrawal by the owner only; bad input refused with nothing stored; the lists
//! a page at a time, the feed newest first.

use imi_e2e::{Federation, HEAVY, NodeClient, lock};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);
const ENTRIES: &str = "/api/v1/repositories/CIT-P01/entries";

fn fields(holder: &str, status: &str) -> Value {
    json!({"fields": [
        {"question": "CIT-Q01", "type": "text", "value": holder},
        {"question": "CIT-Q02", "type": "date", "value": "2026-10-01"},
        {"question": "CIT-Q03", "type": "choice", "value": status},
    ]})
}

/// The entry `id` as `reader` lists it, at `version` or later.
fn listed(reader: &NodeClient, id: &str, version: u64) -> Option<Value> {
    let v = reader.get_json(ENTRIES);
    v["items"]
        .as_array()?
        .iter()
        .find(|e| e["id"] == id && e["version"].as_u64() >= Some(version))
        .cloned()
}

#[test]
fn a_register_reaches_its_access_list_only_and_syndicates_its_public_fields() {
    let _g = lock(&HEAVY);
    let fed = Federation::init(&["DE", "AT", "HU"]);
    let procs: Vec<_> = ["DE", "AT", "HU"].iter().map(|n| fed.start(n)).collect();
    let de = fed.user(
        "DE",
        &fed.add_user("DE", "d", "DE-NC", "authority_user", &[]),
    );
    let at = fed.user(
        "AT",
        &fed.add_user("AT", "a", "AT-NC", "authority_user", &[]),
    );
    let hu = fed.user(
        "HU",
        &fed.add_user("HU", "h", "HU-NC", "authority_user", &[]),
    );

    // The definitions: the register for DE and AT, nothing for HU.
    let defs = de.get_json("/api/v1/repositories");
    let cit = defs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "CIT-P01")
        .expect("DE holds the register")
        .clone();
    assert!(
        cit["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "CIT-Q02" && f["public"] == false)
    );
    let hu_defs = hu.get_json("/api/v1/repositories");
    assert!(
        !hu_defs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "CIT-P01"),
        "{hu_defs}"
    );

    // DE's entry reaches AT.
    let created = de.post_status(ENTRIES, &fields("Geldtransport GmbH", "CIT-Q03-VALID"), 201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["version"], 1);
    let seen = fed.wait_until("AT to hold DE's entry", WAIT, || listed(&at, &id, 1));
    assert_eq!(seen["owner"], "DE-NC");
    assert_eq!(seen["fields"].as_array().unwrap().len(), 3);

    // Not HU: its API refuses the register like one that does not exist.
    let (st, _) = hu.get(ENTRIES).unwrap();
    assert_eq!(st, 404);
    let (st, _) = fed
        .client("HU")
        .without_token()
        .get("/public/repositories/CIT-P01")
        .unwrap();
    assert_eq!(st, 404);

    // Public syndication on AT, without a token: the public fields only.
    let public = fed.client("AT").without_token();
    let (st, body) = public.get("/public/repositories/CIT-P01?lang=de").unwrap();
    assert_eq!(st, 200, "{body}");
    let pj: Value = serde_json::from_str(&body).unwrap();
    let item = &pj["items"][0];
    let codes: Vec<&str> = item["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["question"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["CIT-Q01", "CIT-Q03"], "{pj}");
    assert!(
        !body.contains("2026-10-01"),
        "the non-public date is not published: {body}"
    );
    assert!(
        item.get("owner").is_none() && item.get("version").is_none(),
        "{item}"
    );
    let (st, feed) = public
        .get("/public/repositories/CIT-P01/feed?lang=de")
        .unwrap();
    assert_eq!(st, 200, "{feed}");
    let parsed = feed_rs::parser::parse(feed.as_bytes()).expect("a valid Atom feed");
    assert_eq!(parsed.feed_type, feed_rs::model::FeedType::Atom);
    assert!(!parsed.id.is_empty() && parsed.title.is_some() && parsed.updated.is_some());
    assert_eq!(parsed.authors.len(), 1);
    assert_eq!(parsed.entries.len(), 1);
    let e = &parsed.entries[0];
    assert_eq!(e.id, format!("urn:imi:entry:{id}"));
    assert_eq!(e.title.as_ref().unwrap().content, "Geldtransport GmbH");
    assert!(e.updated.is_some());
    let content = e.content.as_ref().and_then(|c| c.body.clone()).unwrap();
    assert!(!content.contains("2026-10-01"), "{content}");
    assert!(!feed.contains("2026-10-01"));

    // Only the owner changes it; a new version reaches AT; withdrawn, it leaves the feed.
    let (st, text) = at
        .request(
            "PUT",
            &format!("{ENTRIES}/{id}"),
            &[("content-type", "application/json")],
            Some(
                fields("Someone Else AG", "CIT-Q03-VALID")
                    .to_string()
                    .into_bytes(),
            ),
        )
        .map(|(s, _, t)| (s, t))
        .unwrap();
    assert_eq!(st, 403, "{text}");
    let (st, text) = de
        .request(
            "PUT",
            &format!("{ENTRIES}/{id}"),
            &[("content-type", "application/json")],
            Some(
                fields("Geldtransport GmbH", "CIT-Q03-SUSPENDED")
                    .to_string()
                    .into_bytes(),
            ),
        )
        .map(|(s, _, t)| (s, t))
        .unwrap();
    assert_eq!(st, 200, "{text}");
    fed.wait_until("AT to hold version 2", WAIT, || listed(&at, &id, 2));
    de.post_status(&format!("{ENTRIES}/{id}/withdraw"), &json!({}), 200);
    let withdrawn = fed.wait_until("AT to hold the withdrawal", WAIT, || listed(&at, &id, 3));
    assert_eq!(withdrawn["withdrawn"], true);
    let pj = public.get_json("/public/repositories/CIT-P01");
    assert_eq!(pj["items"].as_array().unwrap().len(), 0, "{pj}");

    // Bad input: nothing stored.
    let (st, _) = de
        .post_json("/api/v1/repositories/XX-P01/entries", &fields("x", "y"))
        .unwrap();
    assert_eq!(st, 404);
    let (st, text) = de
        .post_json(
            ENTRIES,
            &json!({"fields": [{"question": "CIT-Q01", "type": "text", "value": "x"}]}),
        )
        .unwrap();
    assert_eq!(st, 422, "{text}");
    assert!(text.contains("missing_field"), "{text}");
    assert_eq!(de.get_json(ENTRIES)["items"].as_array().unwrap().len(), 1);

    // Pages: with three more entries DE lists the four by id, two at a time; the public
    // list pages the three not withdrawn; the feed carries them newest first.
    let mut ids = vec![id.clone()];
    for n in 0..3 {
        let c = de.post_status(
            ENTRIES,
            &fields(&format!("Firma {n}"), "CIT-Q03-VALID"),
            201,
        );
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    let mut by_id = ids.clone();
    by_id.sort();
    let ids_of = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = de.get_json(&format!("{ENTRIES}?limit=2"));
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    assert_eq!(cursor, by_id[1], "{first}");
    let second = de.get_json(&format!("{ENTRIES}?limit=2&cursor={cursor}"));
    assert!(second["next_cursor"].is_null(), "{second}");
    assert_eq!([ids_of(&first), ids_of(&second)].concat(), by_id);
    let exact = de.get_json(&format!("{ENTRIES}?limit=4"));
    assert_eq!(ids_of(&exact), by_id);
    assert!(
        exact["next_cursor"].is_null(),
        "a full last page has no next: {exact}"
    );
    for (query, code) in [("cursor=nope", "bad_cursor"), ("limit=0", "bad_limit")] {
        let (st, text) = de.get(&format!("{ENTRIES}?{query}")).unwrap();
        assert_eq!(st, 400, "{text}");
        assert!(text.contains(code), "{text}");
    }
    let public_de = fed.client("DE").without_token();
    let mut published = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, body) = public_de
            .get(&format!("/public/repositories/CIT-P01?limit=1{cursor}"))
            .unwrap();
        assert_eq!(st, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert!(ids_of(&page).len() <= 1, "{page}");
        published.extend(ids_of(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let live: Vec<String> = by_id.iter().filter(|i| **i != id).cloned().collect();
    assert_eq!(published, live, "the withdrawn entry is not published");
    let (_, feed) = public_de.get("/public/repositories/CIT-P01/feed").unwrap();
    let parsed = feed_rs::parser::parse(feed.as_bytes()).expect("a valid Atom feed");
    assert_eq!(parsed.entries.len(), 3);
    let updated: Vec<_> = parsed.entries.iter().map(|e| e.updated.unwrap()).collect();
    assert!(
        updated.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {updated:?}"
    );
    for i in &ids[1..] {
        fed.wait_until("AT to hold every entry", WAIT, || listed(&at, i, 1));
    }

    // HU's database holds no entry and no envelope of the register.
    for p in procs {
        p.stop();
    }
    let path = fed.node_dir("HU").join("data");
    let store =
        imi_store::RocksStore::open(&path, &imi_apps::columns(), &Default::default()).unwrap();
    use imi_store::ReadStore;
    let rows = store
        .scan_prefix(imi_apps::repositories::REPOSITORY, b"", usize::MAX)
        .unwrap();
    assert!(rows.is_empty(), "HU holds {} entries", rows.len());
    // Its inbox (one record per envelope accepted, with the kind) has none of the kind.
    let kind = b"imi.repository.entry";
    let inbox = store.scan_prefix("inbox", b"", usize::MAX).unwrap();
    assert!(!inbox.is_empty(), "HU did receive other traffic");
    for (_, v) in inbox {
        assert!(
            !v.windows(kind.len()).any(|w| w == kind),
            "HU received an entry"
        );
    }
    let at_path = fed.node_dir("AT").join("data");
    drop(store);
    let at_store =
        imi_store::RocksStore::open(&at_path, &imi_apps::columns(), &Default::default()).unwrap();
    let rows = at_store
        .scan_prefix(imi_apps::repositories::REPOSITORY, b"", usize::MAX)
        .unwrap();
    assert_eq!(rows.len(), 4, "AT holds the entries");
}
