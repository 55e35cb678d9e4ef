//! The time rule for a step of a case, against the vectors in `protocol/vectors/time.json`.
use imi_protocol::clock::{MAX_PAST_SKEW_MS, MAX_STEP_CLOCK_SKEW_MS, PreviousStep, step_time};
use serde_json::Value;

const TIME_VECTORS: &str = include_str!("../../vectors/time.json");

#[test]
fn the_time_rule_gives_every_vector_its_expected_result() {
    let v: Value = serde_json::from_str(TIME_VECTORS).unwrap();
    assert_eq!(v["max_step_clock_skew_ms"], MAX_STEP_CLOCK_SKEW_MS);
    assert_eq!(v["max_past_skew_ms"], MAX_PAST_SKEW_MS);
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 9);
    let (mut refused, mut clamped) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let previous = match &case["previous"] {
            Value::Null => None,
            p => Some(PreviousStep {
                signed: p["signed"].as_u64().unwrap(),
                defended: p["defended"].as_u64().unwrap(),
            }),
        };
        let signed = case["signed"].as_u64().unwrap();
        let got = step_time(
            previous,
            signed,
            case["received"].as_u64().unwrap(),
            case["max_future_skew_ms"].as_u64().unwrap(),
        );
        let expected = &case["expected"];
        match (
            got,
            expected["defended"].as_u64(),
            expected["refused"].as_str(),
        ) {
            (Ok(t), Some(want), None) => {
                assert_eq!(t, want, "{name}");
                clamped += usize::from(t != signed);
            }
            (Err(e), None, Some(code)) => {
                assert_eq!(e.code(), code, "{name}");
                refused += 1;
            }
            (got, _, _) => panic!("{name}: got {got:?}, expected {expected}"),
        }
    }
    // The vectors exercise both refusals and both kinds of replaced time.
    assert_eq!(refused, 2);
    assert!(clamped >= 4);
}
