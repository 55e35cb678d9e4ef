//! The body of a `/imi/envelopes/2` (or `/imi/envelopes/1`) frame: several envelopes (or, in the response, their
//! receipts) in one request-response exchange.
//!
//! A batch body is a sequence of items, each a `u32` big-endian length followed by exactly
//! that many bytes, one after the other to the end of the frame: at least one item and at
//! most [`MAX_BATCH_ITEMS`]. A request's items are envelopes; the response carries exactly
//! one item per request item, in the same order: the receipt for that envelope, each signed
//! and verifiable on its own. The whole body is one frame of the length-prefixed codec
//! ([`crate::codec`]), so the frame's size limit bounds the batch before any of it is read.
//!
//! [`decode`] is reached by bytes from another node: it checks every declared length against
//! what is left before taking it, allocates one `Vec` per item it returns, and refuses a body
//! with no item, more than [`MAX_BATCH_ITEMS`] items, or an item running past the end, with a
//! [`BatchError`] (never a panic). The module is public so that the `batch` fuzz target can
//! exercise it.

use std::fmt;

/// Most items one batch may carry.
pub const MAX_BATCH_ITEMS: usize = 64;

/// Bytes of each item's length prefix.
pub const ITEM_PREFIX_BYTES: usize = 4;

/// Why a batch body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// The body holds no item.
    Empty,
    /// The body holds more than [`MAX_BATCH_ITEMS`] items.
    TooManyItems,
    /// An item's prefix or declared length runs past the end of the body.
    Truncated {
        /// The item (from 0).
        item: usize,
    },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a batch holds no item"),
            Self::TooManyItems => write!(f, "a batch holds more than {MAX_BATCH_ITEMS} items"),
            Self::Truncated { item } => write!(f, "batch item {item} runs past the end"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Bytes of the body that [`encode`] makes of items of these lengths.
pub fn encoded_len<I: IntoIterator<Item = usize>>(lengths: I) -> usize {
    lengths
        .into_iter()
        .map(|len| len.saturating_add(ITEM_PREFIX_BYTES))
        .fold(0usize, usize::saturating_add)
}

/// Encodes items as a batch body. The caller keeps to [`MAX_BATCH_ITEMS`] items of at most
/// `u32::MAX` bytes each (an item beyond that is refused, `None`).
pub fn encode<T: AsRef<[u8]>>(items: &[T]) -> Option<Vec<u8>> {
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return None;
    }
    let mut out = Vec::with_capacity(encoded_len(items.iter().map(|i| i.as_ref().len())));
    for item in items {
        let item = item.as_ref();
        let len = u32::try_from(item.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(item);
    }
    Some(out)
}

/// Splits a batch body into its items (see the [module docs](self) for what is refused).
pub fn decode(body: &[u8]) -> Result<Vec<Vec<u8>>, BatchError> {
    let mut items = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if items.len() == MAX_BATCH_ITEMS {
            return Err(BatchError::TooManyItems);
        }
        let item = items.len();
        let (prefix, after) = rest
            .split_first_chunk::<ITEM_PREFIX_BYTES>()
            .ok_or(BatchError::Truncated { item })?;
        let len = usize::try_from(u32::from_be_bytes(*prefix))
            .map_err(|_| BatchError::Truncated { item })?;
        if len > after.len() {
            return Err(BatchError::Truncated { item });
        }
        let (bytes, after) = after.split_at(len);
        items.push(bytes.to_vec());
        rest = after;
    }
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_gives_the_items_back() {
        let items: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![7u8; 70_000]];
        let body = encode(&items).expect("encodes");
        assert_eq!(body.len(), encoded_len(items.iter().map(Vec::len)));
        assert_eq!(&body[..4], &[0, 0, 0, 3]);
        assert_eq!(decode(&body), Ok(items));
    }

    #[test]
    fn the_item_count_is_bounded_both_ways() {
        let most: Vec<Vec<u8>> = (0..MAX_BATCH_ITEMS).map(|i| vec![i as u8]).collect();
        let body = encode(&most).expect("64 items encode");
        assert_eq!(decode(&body).map(|v| v.len()), Ok(MAX_BATCH_ITEMS));
        let mut one_more = body.clone();
        one_more.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(decode(&one_more), Err(BatchError::TooManyItems));
        let too_many: Vec<Vec<u8>> = (0..=MAX_BATCH_ITEMS).map(|_| Vec::new()).collect();
        assert_eq!(encode(&too_many), None);
        assert_eq!(encode::<Vec<u8>>(&[]), None);
        assert_eq!(decode(&[]), Err(BatchError::Empty));
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        let body = encode(&[b"abc".to_vec(), b"defg".to_vec()]).expect("encodes");
        for cut in 1..body.len() {
            if cut == 7 {
                // Exactly the first item: a valid batch of one.
                assert_eq!(decode(&body[..cut]), Ok(vec![b"abc".to_vec()]));
                continue;
            }
            let item = usize::from(cut > 7);
            assert_eq!(
                decode(&body[..cut]),
                Err(BatchError::Truncated { item }),
                "cut at {cut}"
            );
        }
        // A declared length of 4 GiB in a short body allocates nothing.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
            Err(BatchError::Truncated { item: 0 })
        );
    }
}
