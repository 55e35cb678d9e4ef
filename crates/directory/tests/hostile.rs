//! Hostile input for the directory's decoders: whatever bytes another node sends as an update
//! batch or a sync request, whatever CSV an operator imports and whatever text an API client
//! searches for, the answer is a value or a typed refusal, never a panic; and what is
//! accepted keeps the promises the replica relies on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use imi_directory::{SearchIndex, SearchQuery, SyncRequest, UpdateBatch};
use imi_protocol::ids::NodeId;
use proptest::prelude::*;
use std::sync::OnceLock;

/// A small index over the shipped vocabularies, shared by the cases.
fn index() -> &'static SearchIndex {
    static I: OnceLock<SearchIndex> = OnceLock::new();
    I.get_or_init(|| {
        let vocabulary = common::vocabulary();
        let batch = UpdateBatch::decode(BATCH.as_bytes(), NodeId::DE).unwrap();
        SearchIndex::build(
            vocabulary,
            batch.updates.iter().map(|u| (&u.authority, u.retired)),
        )
        .unwrap()
    })
}

/// A valid batch to mutate.
const BATCH: &str = r#"{"from":0,"to":2,"updates":[{"country":"DE","seq":1,"time_ms":0,"retired":false,"authority":{"id":"DE-A","country":"DE","names":{"de":"Zahnärztekammer","en":"Dental chamber"},"level":"regional","areas":["PQ"],"procedures":["PQ-P01"],"professions":["PROF-DENTIST"]}},{"country":"DE","seq":2,"time_ms":0,"retired":true,"authority":{"id":"DE-B","country":"DE","names":{"en":"B"},"level":"local"}}]}"#;

fn check_accepted(batch: &UpdateBatch, sender: NodeId) {
    assert!(batch.from < batch.to);
    assert!(batch.updates.len() <= imi_directory::update::MAX_BATCH_UPDATES);
    let mut last = batch.from;
    for u in &batch.updates {
        assert_eq!(u.country, sender);
        assert_eq!(u.authority.country, sender);
        assert!(u.seq > last && u.seq <= batch.to);
        last = u.seq;
        assert!(u.authority.validate().is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn update_batches_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for sender in [NodeId::DE, NodeId::AT] {
            if let Ok(b) = UpdateBatch::decode(&bytes, sender) {
                check_accepted(&b, sender);
            }
        }
        let _ = SyncRequest::decode(&bytes, NodeId::DE);
    }

    #[test]
    fn mutated_batches_are_checked(at in 0usize..BATCH.len(), byte in any::<u8>()) {
        let mut bytes = BATCH.as_bytes().to_vec();
        bytes[at] = byte;
        for sender in [NodeId::DE, NodeId::AT] {
            if let Ok(b) = UpdateBatch::decode(&bytes, sender) {
                check_accepted(&b, sender);
            }
        }
    }

    #[test]
    fn csv_never_panics(text in "[a-zA-Z0-9,\"\\n\\r |_é-]{0,300}") {
        let header = "id,country,level,name_en,areas\n";
        for t in [text.clone(), format!("{header}{text}")] {
            if let Ok(all) = imi_directory::csv::parse(&t) {
                for a in all {
                    prop_assert!(a.validate().is_ok());
                }
            }
        }
    }

    #[test]
    fn queries_never_panic(
        text in "\\PC{0,60}|[\\x00-\\x1f]{0,5}",
        lang in "[a-z]{0,3}",
        limit in 0usize..200,
        offset in 0usize..20_000,
    ) {
        let q = SearchQuery {
            text,
            lang: Some(lang),
            limit,
            offset,
            include_retired: offset % 2 == 0,
            ..SearchQuery::default()
        };
        match index().search(&q) {
            Ok(hits) => prop_assert!(hits.hits.len() <= q.limit),
            Err(e) => prop_assert_ne!(e.code(), "index_error"),
        }
    }
}

#[test]
fn the_unmutated_batch_is_accepted_from_its_home_node_only() {
    let b = UpdateBatch::decode(BATCH.as_bytes(), NodeId::DE).unwrap();
    check_accepted(&b, NodeId::DE);
    assert_eq!(
        UpdateBatch::decode(BATCH.as_bytes(), NodeId::AT)
            .unwrap_err()
            .code(),
        "not_home_node"
    );
}
