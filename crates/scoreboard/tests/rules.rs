//! The scoreboard's rules, each colour boundary, the published JSON, reading JSON Lines and
//! the cross-check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use imi_scoreboard::crosscheck::{Side, check, differences};
use imi_scoreboard::{Board, Colour, Fact, Period, ReadError, Scoreboard, colour, read_facts};

const DAY: u64 = 86_400_000;
/// 2021-03-01T00:00:00Z.
const T0: u64 = 1_614_556_800_000;

fn t(ms: u64) -> String {
    Fact::time(ms)
}

fn fact(responder: &str) -> Fact {
    Fact {
        case: "c".into(),
        area: "PQ".into(),
        requester: "DE".into(),
        responder: responder.into(),
        sent_at: t(T0),
        accepted_at: None,
        withdrawn_at: None,
        answered_at: None,
        deadline: None,
        timeliness: None,
        efforts: None,
    }
}

fn board(facts: &[Fact]) -> Scoreboard {
    let mut b = Board::new(Period::year(2021).unwrap());
    for f in facts {
        b.add(&f.record().unwrap());
    }
    b.scoreboard()
}

fn hu(sb: &Scoreboard) -> &imi_scoreboard::CountryResult {
    sb.countries.iter().find(|c| c.country == "HU").unwrap()
}

fn value(sb: &Scoreboard, id: usize) -> Option<f64> {
    hu(sb).indicators[id - 1].value
}

fn n(sb: &Scoreboard, id: usize) -> u64 {
    hu(sb).indicators[id - 1].n
}

#[test]
fn accepted_within_exactly_seven_days_counts() {
    let mut on = fact("HU");
    on.accepted_at = Some(t(T0 + 7 * DAY));
    let mut late = fact("HU");
    late.accepted_at = Some(t(T0 + 7 * DAY + 1000));
    let never = fact("HU");
    let sb = board(&[on, late, never]);
    assert_eq!(value(&sb, 1), Some(100.0 / 3.0));
    assert_eq!(n(&sb, 1), 3);
}

#[test]
fn withdrawals_within_a_week() {
    // Withdrawn within a week, never accepted: not counted in [1].
    let mut w = fact("HU");
    w.withdrawn_at = Some(t(T0 + 2 * DAY));
    // Withdrawn within a week *after acceptance*: counted (and accepted in time).
    let mut wa = fact("HU");
    wa.accepted_at = Some(t(T0 + DAY));
    wa.withdrawn_at = Some(t(T0 + 3 * DAY));
    // Withdrawn after a week, never accepted: counted, not accepted.
    let mut wl = fact("HU");
    wl.withdrawn_at = Some(t(T0 + 8 * DAY));
    // Withdrawn at exactly 7 days, unaccepted: "within" 7×24 h, not counted.
    let mut w7 = fact("HU");
    w7.withdrawn_at = Some(t(T0 + 7 * DAY));
    let sb = board(&[w, wa, wl, w7]);
    assert_eq!(n(&sb, 1), 2);
    assert_eq!(value(&sb, 1), Some(50.0));
}

#[test]
fn average_days_to_answer_is_fractional() {
    let mut a = fact("HU");
    a.answered_at = Some(t(T0 + DAY / 2));
    let mut b = fact("HU");
    b.answered_at = Some(t(T0 + 3 * DAY));
    let unanswered = fact("HU");
    let sb = board(&[a, b, unanswered]);
    assert_eq!(value(&sb, 2), Some(1.75));
    assert_eq!(n(&sb, 2), 2);
}

#[test]
fn answered_by_the_agreed_date_uses_the_utc_date() {
    // Answered at 23:59:59 on the deadline: on time.
    let mut a = fact("HU");
    a.deadline = Some("2021-03-10".into());
    a.answered_at = Some(t(T0 + 10 * DAY - 1000));
    // Answered at 00:00:00 the day after: late.
    let mut b = fact("HU");
    b.deadline = Some("2021-03-10".into());
    b.answered_at = Some(t(T0 + 10 * DAY));
    // Answered, no deadline: not in [3].
    let mut c = fact("HU");
    c.answered_at = Some(t(T0 + DAY));
    // Deadline, unanswered: not in [3].
    let mut d = fact("HU");
    d.deadline = Some("2021-03-10".into());
    let sb = board(&[a, b, c, d]);
    assert_eq!(value(&sb, 3), Some(50.0));
    assert_eq!(n(&sb, 3), 2);
}

#[test]
fn negative_ratings() {
    let rated = |ti: Option<u8>, ef: Option<u8>| {
        let mut f = fact("HU");
        f.timeliness = ti;
        f.efforts = ef;
        f
    };
    let sb = board(&[
        rated(Some(1), Some(5)),
        rated(Some(2), Some(3)),
        rated(Some(3), None),
        rated(Some(5), Some(2)),
        rated(None, None),
    ]);
    assert_eq!(value(&sb, 4), Some(50.0));
    assert_eq!(n(&sb, 4), 4);
    assert_eq!(value(&sb, 5), Some(100.0 / 3.0));
    assert_eq!(n(&sb, 5), 3);
}

#[test]
fn colour_boundaries() {
    for id in [1, 3] {
        assert_eq!(colour(id, 80.0), Colour::Green);
        assert_eq!(colour(id, 79.999), Colour::Yellow);
        assert_eq!(colour(id, 60.0), Colour::Yellow);
        assert_eq!(colour(id, 59.999), Colour::Red);
    }
    assert_eq!(colour(2, 15.999), Colour::Green);
    assert_eq!(colour(2, 16.0), Colour::Yellow);
    assert_eq!(colour(2, 25.0), Colour::Yellow);
    assert_eq!(colour(2, 25.001), Colour::Red);
    for id in [4, 5] {
        assert_eq!(colour(id, 4.999), Colour::Green);
        assert_eq!(colour(id, 5.0), Colour::Yellow);
        assert_eq!(colour(id, 14.999), Colour::Yellow);
        assert_eq!(colour(id, 15.0), Colour::Red);
    }
}

#[test]
fn eighty_percent_exactly_is_green_from_real_facts() {
    // 4 of 5 accepted within a week: 80.0 % → green.
    let mut facts: Vec<Fact> = (0..4)
        .map(|_| {
            let mut f = fact("HU");
            f.accepted_at = Some(t(T0 + DAY));
            f
        })
        .collect();
    facts.push(fact("HU"));
    let sb = board(&facts);
    assert_eq!(value(&sb, 1), Some(80.0));
    assert_eq!(hu(&sb).indicators[0].colour, Some(Colour::Green));
    // 16.0 days exactly → yellow; 25.0 days exactly → yellow.
    for (days, want) in [(16, Colour::Yellow), (25, Colour::Yellow)] {
        let mut f = fact("HU");
        f.answered_at = Some(t(T0 + days * DAY));
        let sb = board(&[f]);
        assert_eq!(value(&sb, 2), Some(days as f64));
        assert_eq!(hu(&sb).indicators[1].colour, Some(want));
    }
    // 1 negative of 20 = 5.0 % → yellow; 3 of 20 = 15.0 % → red.
    for (neg, want) in [(1, Colour::Yellow), (3, Colour::Red)] {
        let facts: Vec<Fact> = (0..20)
            .map(|i| {
                let mut f = fact("HU");
                f.timeliness = Some(if i < neg { 1 } else { 5 });
                f
            })
            .collect();
        let sb = board(&facts);
        assert_eq!(value(&sb, 4), Some(100.0 * neg as f64 / 20.0));
        assert_eq!(hu(&sb).indicators[3].colour, Some(want));
    }
}

#[test]
fn score_and_overall() {
    // [1] 100 green, [2] 1 day green, [3] 100 green, [4] 0 green, [5] 0 green → 5 green.
    let mut f = fact("HU");
    f.accepted_at = Some(t(T0 + DAY));
    f.answered_at = Some(t(T0 + DAY));
    f.deadline = Some("2021-03-31".into());
    f.timeliness = Some(5);
    f.efforts = Some(5);
    let sb = board(&[f.clone()]);
    assert_eq!(hu(&sb).score, 5);
    assert_eq!(hu(&sb).overall, Some(Colour::Green));
    // Only [1] green and [4] red: 0 → yellow.
    let mut g = fact("HU");
    g.accepted_at = Some(t(T0 + DAY));
    g.timeliness = Some(1);
    let sb = board(&[g]);
    assert_eq!(hu(&sb).score, 0);
    assert_eq!(hu(&sb).overall, Some(Colour::Yellow));
    // [1] red and [4] red → −2 → red.
    let mut r = fact("HU");
    r.timeliness = Some(1);
    let sb = board(&[r]);
    assert_eq!(hu(&sb).score, -2);
    assert_eq!(hu(&sb).overall, Some(Colour::Red));
}

#[test]
fn a_country_with_nothing_received() {
    let sb = board(&[fact("HU")]);
    let at = sb.countries.iter().find(|c| c.country == "AT").unwrap();
    assert_eq!(at.score, 0);
    assert_eq!(at.overall, None);
    for i in &at.indicators {
        assert_eq!((i.value, i.colour, i.n), (None, None, 0));
    }
    assert_eq!(sb.countries.len(), 30);
}

#[test]
fn only_received_requests_in_counted_areas_and_period_count() {
    let mut other_area = fact("HU");
    other_area.area = "EC".into();
    let mut before = fact("HU");
    before.sent_at = "2020-12-31T23:59:59Z".into();
    let mut at_end = fact("HU");
    at_end.sent_at = "2022-01-01T00:00:00Z".into();
    let mut first = fact("HU");
    first.sent_at = "2021-01-01T00:00:00Z".into();
    let sent_by_hu = Fact {
        requester: "HU".into(),
        responder: "DE".into(),
        ..fact("HU")
    };
    let sb = board(&[other_area, before, at_end, first, sent_by_hu]);
    assert_eq!(
        n(&sb, 1),
        1,
        "only the request sent at the period's first instant"
    );
    let de = sb.countries.iter().find(|c| c.country == "DE").unwrap();
    assert_eq!(de.indicators[0].n, 1, "DE received one");
}

#[test]
fn published_json_is_exact() {
    let mut f = fact("AT");
    f.accepted_at = Some(t(T0 + DAY));
    let sb = board(&[f]);
    let v: serde_json::Value = serde_json::from_str(&sb.to_json()).unwrap();
    assert_eq!(
        v["period"],
        serde_json::json!({"from": "2021-01-01", "to": "2022-01-01"})
    );
    let at = &v["countries"][0];
    assert_eq!(
        at,
        &serde_json::json!({
            "country": "AT",
            "indicators": [
                {"id": 1, "value": 100.0, "colour": "green", "n": 1},
                {"id": 2, "value": null, "colour": null, "n": 0},
                {"id": 3, "value": null, "colour": null, "n": 0},
                {"id": 4, "value": null, "colour": null, "n": 0},
                {"id": 5, "value": null, "colour": null, "n": 0}
            ],
            "score": 1,
            "overall": "yellow"
        })
    );
    assert_eq!(v.as_object().unwrap().len(), 2);
    assert_eq!(v["countries"].as_array().unwrap().len(), 30);
    let csv = sb.to_csv();
    assert!(csv.starts_with("country,indicator,value,colour,n,score,overall\n"));
    assert!(csv.contains("AT,1,100,green,1,1,yellow\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 30 * 5);
}

#[test]
fn the_issue_example_line_parses() {
    let line = r#"{"case":"c1","area":"PQ","requester":"DE","responder":"HU","sent_at":"2021-03-01T10:00:00Z","accepted_at":"2021-03-02T09:00:00Z","withdrawn_at":null,"answered_at":"2021-03-10T12:00:00Z","deadline":"2021-03-20","timeliness":4,"efforts":5}"#;
    let f: Fact = serde_json::from_str(line).unwrap();
    assert_eq!(serde_json::to_string(&f).unwrap(), line);
    let b = read_facts(line.as_bytes(), Period::year(2021).unwrap(), 2).unwrap();
    let sb = b.scoreboard();
    assert_eq!(value(&sb, 1), Some(100.0));
    assert!((value(&sb, 2).unwrap() - (9.0 + 2.0 / 24.0)).abs() < 1e-9);
    assert_eq!(value(&sb, 3), Some(100.0));
}

#[test]
fn reading_many_lines_on_threads_equals_one_by_one() {
    let mut text = String::new();
    let mut one = Board::new(Period::year(2021).unwrap());
    for i in 0..50_000u64 {
        let mut f = fact(["HU", "AT", "DE", "FR"][(i % 4) as usize]);
        f.area = ["PQ", "SD", "PW", "PR", "EC"][(i % 5) as usize].into();
        f.sent_at = t(T0 + (i * 7919) % (200 * DAY));
        if i % 3 != 0 {
            f.accepted_at = Some(t(T0 + (i * 7919) % (200 * DAY) + (i % 11) * DAY));
        }
        if i % 2 == 0 {
            f.answered_at = Some(t(T0 + (i * 7919) % (200 * DAY) + (i % 31) * DAY));
            f.deadline = Some("2021-06-30".into());
        }
        f.timeliness = Some((i % 5) as u8 + 1);
        one.add(&f.record().unwrap());
        text.push_str(&serde_json::to_string(&f).unwrap());
        text.push('\n');
    }
    let many = read_facts(text.as_bytes(), Period::year(2021).unwrap(), 3).unwrap();
    assert_eq!(many, one);
    assert_eq!(many.facts, 50_000);
    // Quarters add up to the whole.
    let total: u64 = many.quarters.iter().map(|q| q.counted).sum();
    let by_country: u64 = many.countries.iter().map(|c| c.counted).sum();
    assert_eq!(total, by_country);
}

#[test]
fn bad_lines_are_reported_with_their_number() {
    let good = serde_json::to_string(&fact("HU")).unwrap();
    let cases = [
        ("{not json", "line 3"),
        (
            r#"{"case":"c","area":"PQ","requester":"DE","responder":"HU","sent_at":"2021-13-01T00:00:00Z"}"#,
            "sent_at",
        ),
        (
            r#"{"case":"c","area":"PQ","requester":"DE","responder":"HU","sent_at":"2021-03-01T00:00:00Z","timeliness":6}"#,
            "timeliness",
        ),
        (
            r#"{"case":"c","area":"PQ","requester":"DE","responder":"HU","sent_at":"2021-03-01T00:00:00Z","name":"Jane Doe"}"#,
            "unknown field",
        ),
        (
            r#"{"case":"c","area":"PQ","requester":"de","responder":"HU","sent_at":"2021-03-01T00:00:00Z"}"#,
            "requester",
        ),
    ];
    for (bad, want) in cases {
        let text = format!("{good}\n{good}\n{bad}\n{good}\n");
        match read_facts(text.as_bytes(), Period::year(2021).unwrap(), 2) {
            Err(ReadError::Line { line, message }) => {
                assert_eq!(line, 3, "{bad}");
                assert!(
                    message.contains(want) || want == "line 3",
                    "{bad}: {message}"
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let long = format!("{good}\n{}\n", "x".repeat(70_000));
    assert!(matches!(
        read_facts(long.as_bytes(), Period::year(2021).unwrap(), 2),
        Err(ReadError::Line { line: 2, .. })
    ));
}

#[test]
fn periods() {
    let p = Period::parse("2021").unwrap();
    assert_eq!(
        (p.from.to_string(), p.to.to_string()),
        ("2021-01-01".into(), "2022-01-01".into())
    );
    let q = Period::parse("2021-Q4").unwrap();
    assert_eq!(
        (q.from.to_string(), q.to.to_string()),
        ("2021-10-01".into(), "2022-01-01".into())
    );
    assert_eq!(p.quarters().len(), 4);
    assert!(Period::parse("2021-Q5").is_none());
    assert!(Period::parse("21").is_none());
}

#[test]
fn cross_check_flags_a_falsified_side() {
    let mut honest = fact("HU");
    honest.accepted_at = Some(t(T0 + 9 * DAY));
    let mut falsified = honest.clone();
    falsified.accepted_at = Some(t(T0 + DAY));
    assert_eq!(differences(&honest, &falsified), ["accepted_at"]);
    let c = check(Some(&honest), Some(&falsified)).unwrap();
    assert_eq!(c.disagreements, ["accepted_at"]);
    assert_eq!(c.fact, honest, "the requester's report is used");
    let c = check(Some(&honest), Some(&honest.clone())).unwrap();
    assert!(c.disagreements.is_empty() && c.both_reported);
    let _ = Side::Responder;
}

#[test]
fn time_formats() {
    // The fast path and the general parser agree; both refuse impossible times.
    let a = fact("HU").record().unwrap().sent;
    let mut f = fact("HU");
    f.sent_at = "2021-03-01T00:00:00.000Z".into();
    assert_eq!(f.record().unwrap().sent, a);
    for bad in [
        "2021-02-29T00:00:00Z",
        "2021-03-01T24:00:00Z",
        "2021-03-01T10:60:00Z",
        "2021-03-01 10:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        let mut f = fact("HU");
        f.sent_at = bad.into();
        assert!(f.record().is_err(), "{bad}");
    }
    let mut f = fact("HU");
    f.sent_at = "2024-02-29T23:59:59Z".into();
    assert_eq!(f.record().unwrap().sent, 1_709_251_199_000);
}

#[test]
fn domestic_cases_are_not_counted() {
    // A DE→DE case is no exchange between Member States: it grades nobody.
    let mut domestic = fact("DE");
    domestic.accepted_at = Some(t(T0 + 30 * DAY));
    let sb = board(&[domestic]);
    let de = sb.countries.iter().find(|c| c.country == "DE").unwrap();
    assert!(de.indicators.iter().all(|i| i.n == 0), "{de:?}");
    // The same case between DE and HU counts for HU.
    let mut cross = fact("HU");
    cross.accepted_at = Some(t(T0 + 30 * DAY));
    assert_eq!(n(&board(&[cross]), 1), 1);
}
