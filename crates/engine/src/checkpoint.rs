//! Checkpoints of the node's transparency log: C2SP signed notes (origin
//! `imi-federation.invalid/log/<node>`) over the log's size and root, stored in the
//! `checkpoints` column. Witnessing them is an application's business; signing them is the
//! kernel's, because the log is.
use crate::error::EngineError;
use crate::keys;
use crate::log::{self, StoreNodes};
use imi_audit::merkle;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_protocol::NodeSigner;
use imi_store::{ReadStore, WriteBatch};

/// The signed checkpoint of the log as it is now: the stored one if the log has not grown
/// since, otherwise a new note and the batch that stores it.
pub(crate) fn current(
    store: &dyn ReadStore,
    signer: &NodeSigner,
) -> Result<(String, Option<WriteBatch>), EngineError> {
    let size = log::size(store)?;
    if let Some(v) = store.get(keys::CHECKPOINTS, &size.to_be_bytes())?
        && let Ok(text) = String::from_utf8(v)
    {
        return Ok((text, None));
    }
    let root = merkle::root(&StoreNodes(store), size)
        .ok_or_else(|| EngineError::Internal(format!("log nodes missing below size {size}")))?;
    let cp = Checkpoint {
        origin: origin_of(signer.node.as_str()),
        size,
        root,
    };
    let note = SignedNote::sign(&cp.body(), &cp.origin, signer).text();
    let mut batch = WriteBatch::new();
    batch.put(
        keys::CHECKPOINTS,
        size.to_be_bytes().to_vec(),
        note.clone().into_bytes(),
    );
    Ok((note, Some(batch)))
}

/// Every stored checkpoint, oldest first: size and note (with the cosignatures collected).
pub fn stored(store: &dyn ReadStore) -> Result<Vec<(u64, String)>, EngineError> {
    Ok(notes(store.range(
        keys::CHECKPOINTS,
        &[],
        None,
        usize::MAX,
    )?))
}

/// The latest `count` stored checkpoints of a size up to `size`, oldest first, read without
/// the ones before them (a node signs checkpoints for years).
pub fn latest(
    store: &dyn ReadStore,
    size: u64,
    count: usize,
) -> Result<Vec<(u64, String)>, EngineError> {
    let mut rows = match size.checked_add(1) {
        Some(end) => store.last_before(keys::CHECKPOINTS, Some(&end.to_be_bytes()), count)?,
        None => store.last_before(keys::CHECKPOINTS, None, count)?,
    };
    rows.reverse();
    Ok(notes(rows))
}

fn notes(rows: Vec<imi_store::Entry>) -> Vec<(u64, String)> {
    rows.into_iter()
        .filter_map(|(k, v)| {
            let size = u64::from_be_bytes(k.as_slice().try_into().ok()?);
            Some((size, String::from_utf8(v).ok()?))
        })
        .collect()
}
