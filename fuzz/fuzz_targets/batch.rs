//! Batches: `imi_network::batch::decode`, which a node runs on the body of every request on
//! `/imi/envelopes/1` (and on every batch response it gets back), before any item reaches
//! the engine.
//!
//! Input: the body as received.
//!
//! Asserts: no panic; `decode` accepts exactly what a model accepts (1 to 64 items, each a
//! `u32` big-endian length and that many bytes, to the very end of the body), with the
//! model's items; an accepted body is a fixed point (`encode` of the items gives the input
//! back byte for byte); a refusal names the item a model would stop at.
#![no_main]

use imi_network::batch::{BatchError, MAX_BATCH_ITEMS, decode, encode};
use libfuzzer_sys::fuzz_target;

/// An independent reading of the documented format.
fn model(body: &[u8]) -> Result<Vec<Vec<u8>>, BatchError> {
    let mut items = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        if items.len() == MAX_BATCH_ITEMS {
            return Err(BatchError::TooManyItems);
        }
        let item = items.len();
        if body.len() - at < 4 {
            return Err(BatchError::Truncated { item });
        }
        let len = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]) as u64;
        at += 4;
        if len > (body.len() - at) as u64 {
            return Err(BatchError::Truncated { item });
        }
        let end = at + len as usize;
        items.push(body[at..end].to_vec());
        at = end;
    }
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(items)
}

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    assert_eq!(decoded, model(data));
    if let Ok(items) = decoded {
        assert!((1..=MAX_BATCH_ITEMS).contains(&items.len()));
        assert_eq!(encode(&items).as_deref(), Some(data));
    }
});
