//! Idempotency keys of API POSTs: the `idempotency` column (user id ‖ 0 ‖ key → SHA-256 of
//! the request ‖ the first response), written in the same commit as the action.
use crate::OwnedColumns;
use crate::services::IdempotencyKey;
use imi_engine::{LocalOutcome, Refusal, Txn};
use imi_store::Column;

/// Idempotency keys of API POSTs.
pub const IDEMPOTENCY: Column = "idempotency";

/// The idempotency application (owns [`IDEMPOTENCY`]).
pub const APP: OwnedColumns = OwnedColumns::new("idempotency", &[IDEMPOTENCY]);

/// On the commit thread, before an idempotent action: the stored first response when the
/// key was used with this very request (a replay: nothing to write), `None` when the key is
/// new, and `idempotency_key_reused` when it was used with another request.
pub fn replay(txn: &Txn<'_>, idem: &IdempotencyKey) -> Result<Option<LocalOutcome>, Refusal> {
    let Some(v) = txn.get(IDEMPOTENCY, &idem.key)? else {
        return Ok(None);
    };
    if v.get(..32) == Some(idem.request_sha256.as_slice()) {
        Ok(Some(LocalOutcome {
            write: false,
            result: v.get(32..).unwrap_or_default().to_vec(),
        }))
    } else {
        Err(Refusal::new(
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request",
        ))
    }
}

/// Records `result` as the first response to the key, in the action's commit.
pub fn record(txn: &mut Txn<'_>, idem: &IdempotencyKey, result: &[u8]) {
    let mut v = idem.request_sha256.to_vec();
    v.extend_from_slice(result);
    txn.put(IDEMPOTENCY, idem.key.clone(), v);
}
