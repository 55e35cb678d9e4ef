//! Integration tests of `imi-protocol`, in one test binary (`cargo test -p imi-protocol
//! --test main`):
//!
//! - [`vectors`]: the pinned byte-level test vectors in `protocol/vectors/v1.json`, their
//!   generator and checker (including an independent decoder that follows
//!   `protocol/vectors/README.md` using only ciborium, ed25519-dalek, hpke and
//!   chacha20poly1305);
//! - [`props`]: property tests (round trips, bit flips, parser robustness, size limits);
//! - [`unit`]: rejection paths, key rotation and trust-list updates;
//! - [`fields`]: sealed fields against `protocol/vectors/fields.json` and RFC 8439;
//! - [`time`]: the time rule of a case step against `protocol/vectors/time.json`;
//! - [`group`]: group receipts against `protocol/vectors/receipt_group.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod fields;
mod group;
mod props;
mod time;
mod unit;
mod vectors;
