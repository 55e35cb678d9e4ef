//! The access log: every read of personal data through the API (`access_log` column,
//! seq (8, BE) → CBOR [`AccessRecord`]), each also a leaf of the node's transparency log,
//! written durably before the data is returned. Sequence numbers are taken on the commit
//! thread (the last key + 1, seen through the group's own writes), so concurrent reads
//! never share one.
use crate::AppError;
use crate::OwnedColumns;
pub use crate::requests::AccessRecord;
use imi_engine::{Engine, LocalOutcome, Refusal};
use imi_store::{Column, ReadStore};

/// Reads of personal data through the API.
pub const ACCESS_LOG: Column = "access_log";

/// The key of the next sequence number, in the `access_log` column: 9 bytes, so that no
/// 8-byte record key is ever mistaken for it.
const NEXT_SEQ: &[u8] = b"\xffnext-seq";

/// The access-log application (owns [`ACCESS_LOG`]).
pub const APP: OwnedColumns = OwnedColumns::new("access-log", &[ACCESS_LOG]);

/// Records one read, durably, with its log leaf.
pub async fn record(engine: &Engine, rec: AccessRecord) -> Result<(), AppError> {
    let leaf = crate::requests::access_leaf(&rec);
    let mut value = Vec::new();
    ciborium::into_writer(&rec, &mut value).map_err(|e| AppError::Internal(e.to_string()))?;
    engine
        .local_step(
            None,
            Box::new(move |txn, _| {
                let seq = next_seq(txn)?;
                txn.put(ACCESS_LOG, seq.to_be_bytes().to_vec(), value);
                txn.log(leaf);
                Ok(LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        )
        .await?;
    Ok(())
}

/// Takes the next sequence number (0 for the first record; a store written before the
/// counter existed continues after its last record).
fn next_seq(txn: &mut imi_engine::Txn<'_>) -> Result<u64, Refusal> {
    let stored = txn.get(ACCESS_LOG, NEXT_SEQ)?;
    let seq = match stored.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()) {
        Some(b) => u64::from_be_bytes(b),
        None => txn
            .last_key(ACCESS_LOG)?
            .and_then(|k| <[u8; 8]>::try_from(k.as_slice()).ok())
            .map_or(0, |k| u64::from_be_bytes(k).saturating_add(1)),
    };
    txn.put(
        ACCESS_LOG,
        NEXT_SEQ.to_vec(),
        seq.saturating_add(1).to_be_bytes().to_vec(),
    );
    Ok(seq)
}

/// Up to `limit` records from sequence number `from` on, in order.
pub fn page(
    store: &dyn ReadStore,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, AccessRecord)>, AppError> {
    Ok(store
        .range(ACCESS_LOG, &from.to_be_bytes(), Some(NEXT_SEQ), limit)?
        .into_iter()
        .filter_map(|(k, v)| {
            let seq = u64::from_be_bytes(<[u8; 8]>::try_from(k.as_slice()).ok()?);
            let rec = ciborium::from_reader::<AccessRecord, _>(v.as_slice()).ok()?;
            Some((seq, rec))
        })
        .collect())
}
