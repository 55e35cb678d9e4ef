//! The batch body of `/imi/envelopes/2` and `/imi/envelopes/1` against `protocol/vectors/batch.json`, whose items
//! are the envelopes and receipts of `protocol/vectors/v1.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use imi_network::batch::{BatchError, MAX_BATCH_ITEMS, decode, encode};
use serde_json::Value;

const BATCH: &str = include_str!("../../../protocol/vectors/batch.json");
const V1: &str = include_str!("../../../protocol/vectors/v1.json");

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("hex")
}

/// The bytes of the v1 objects named, from `list` (`envelopes` or `receipts`) at `field`.
fn named(v1: &Value, list: &str, field: &str, names: &Value) -> Vec<Vec<u8>> {
    names
        .as_array()
        .unwrap()
        .iter()
        .map(|name| {
            let object = v1[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == *name)
                .unwrap_or_else(|| panic!("{list} has no {name}"));
            hex(&object["expected"][field])
        })
        .collect()
}

#[test]
fn the_vectors_decode_to_their_items_and_encode_back() {
    let batch: Value = serde_json::from_str(BATCH).unwrap();
    let v1: Value = serde_json::from_str(V1).unwrap();
    assert_eq!(batch["max_items"], MAX_BATCH_ITEMS);
    for (key, list, field, names) in [
        ("request", "envelopes", "envelope", "envelopes"),
        ("response", "receipts", "signed", "receipts"),
    ] {
        let items = named(&v1, list, field, &batch[key][names]);
        let body = hex(&batch[key]["body"]);
        assert_eq!(decode(&body).unwrap(), items, "{key}");
        assert_eq!(encode(&items).unwrap(), body, "{key}");
    }
    for case in batch["valid"].as_array().unwrap() {
        let body = hex(&case["body"]);
        let items: Vec<Vec<u8>> = case["items"].as_array().unwrap().iter().map(hex).collect();
        assert_eq!(decode(&body).unwrap(), items, "{}", case["name"]);
        assert_eq!(encode(&items).unwrap(), body, "{}", case["name"]);
    }
}

#[test]
fn the_negative_vectors_are_refused_for_their_reason() {
    let batch: Value = serde_json::from_str(BATCH).unwrap();
    let negative = batch["negative"].as_array().unwrap();
    assert!(negative.len() >= 5);
    for case in negative {
        let body = hex(&case["body"]);
        let expected = &case["expected"];
        let want = match expected["refused"].as_str().unwrap() {
            "empty" => BatchError::Empty,
            "too_many_items" => BatchError::TooManyItems,
            "truncated" => BatchError::Truncated {
                item: usize::try_from(expected["item"].as_u64().unwrap()).unwrap(),
            },
            other => panic!("unknown reason {other}"),
        };
        assert_eq!(decode(&body), Err(want), "{}", case["name"]);
    }
}
