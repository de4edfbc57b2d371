//! The SQLite store for roomkit-graph: durable runs in one file, nothing to
//! install. [`SqliteStore`] implements [`roomkit_graph_store::Store`].
//!
//! # Layout
//!
//! One file per concern, laid out as the PostgreSQL store's, each with its
//! SQL and the store trait of its concern:
//!
//! - `graphs`: [`GraphStore`](roomkit_graph_store::GraphStore).
//! - `access`: [`AccessStore`](roomkit_graph_store::AccessStore) (tokens, secrets).
//! - `runs`: [`RunStore`](roomkit_graph_store::RunStore) (runs, steps, leases).
//! - `transcript`: [`TranscriptStore`](roomkit_graph_store::TranscriptStore)
//!   (reading, and following with the store crate's follower).
//! - `workers`: [`WorkerStore`](roomkit_graph_store::WorkerStore).
//!
//! And the rest:
//!
//! - `store`: [`SqliteStore`], the cheap-to-clone handle.
//! - `schema`: opening a file: pragmas (WAL, `synchronous=FULL`, foreign keys),
//!   the marker ([`APPLICATION_ID`], [`SCHEMA_VERSION`]) and the tables.
//! - `rows`: records read out of rows.
//! - `options`: [`Options`], such as the busy timeout.
//! - `error`: SQLite's errors as [`StoreError`](roomkit_graph_store::StoreError)s.
//! - `write_thread`: the one thread that writes, with group commit: every
//!   request queued meanwhile goes into one transaction (one fsync), each in
//!   its own savepoint.
//! - `pool`: read connections, each on a reader thread of its own.
//!
//! # Quick start
//!
//! ```
//! use roomkit_graph::{Graph, Trigger};
//! use roomkit_graph_sqlite::SqliteStore;
//! use roomkit_graph_store::prelude::*;
//! use roomkit_graph_store::DEFAULT_ORG;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("runs.db"))?;
//! let graph = Graph::new("triage", "Triage", Trigger::manual());
//! assert_eq!(store.save_graph(DEFAULT_ORG, &graph).await?.version, 1);
//! assert_eq!(store.save_graph(DEFAULT_ORG, &graph).await?.version, 2);
//! assert_eq!(store.graph(DEFAULT_ORG, "triage", None).await?.version, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod access;
mod error;
mod graphs;
mod hooks;
mod options;
mod pool;
mod queue;
mod retention;
mod rows;
mod runs;
mod schema;
mod store;
mod transcript;
mod workers;
mod write_thread;

pub use options::Options;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::SqliteStore;
