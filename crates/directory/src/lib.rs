//! The federated authority directory's pure part.
//!
//! * [`update`]: the signed directory update a home node publishes about its own authorities
//!   (create or update, retire; a per-country sequence number), the sync request ("I have
//!   `DE` up to sequence n"), their size limits and typed decoding errors, and the replica
//!   rule that makes duplicated, late and out-of-order updates converge.
//! * [`analysis`]: segmentation, lowercase, stemming in 19 of the 26 languages, accent and
//!   case folding in all of them.
//! * [`index`]: the tantivy search index over a replica: free text in any language, one typo
//!   tolerated, filters, ranked results.
//!
//! No I/O, no network: the application that stores the replica and exchanges the updates
//! is `imi_apps::directory`.

pub mod analysis;
pub mod csv;
pub mod index;
mod near;
pub mod update;

pub use index::{Hit, Hits, SearchError, SearchIndex, SearchQuery};
pub use update::{DirectoryUpdate, Entry, Op, SyncRequest, UpdateBatch, UpdateError};
