//! The SQLite store for roomkit-graph: durable runs in one file, nothing to
//! install. [`SqliteStore`] implements [`roomkit_graph_store::Store`].
//!
//! # Layout
//!
//! - `store`: [`SqliteStore`], the cheap-to-clone handle.
//! - `schema`: opening a file: pragmas (WAL, `synchronous=FULL`, foreign keys),
//!   the marker ([`APPLICATION_ID`], [`SCHEMA_VERSION`]) and the tables.
//! - `writer`: the one thread that writes, with group commit: every request
//!   queued meanwhile goes into one transaction (one fsync), each in its own
//!   savepoint.
//! - `write` and `read`: the SQL of each operation.
//! - `pool`: read connections, used on tokio's blocking threads.
//! - `follow`: a run's transcript as a stream, live.
//! - `workers`: worker registrations, in a table of their own.
//! - `error`: SQLite's errors as [`StoreError`](roomkit_graph_store::StoreError)s.
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

mod error;
mod follow;
mod options;
mod pool;
mod read;
mod schema;
mod store;
mod workers;
mod write;
mod write_thread;

pub use options::Options;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::SqliteStore;
