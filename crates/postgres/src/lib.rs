//! The PostgreSQL store of roomkit-graph: durable runs in a PostgreSQL
//! database, shared by every process that connects to it, on one machine or
//! many. [`PostgresStore`] implements [`Store`](roomkit_graph_store::Store)
//! with the same rules as the SQLite store: a step is one transaction guarded
//! by the run's version, a run is driven by the holder of its lease, and a
//! run's transcript can be followed live from any process (through
//! `LISTEN`/`NOTIFY`, with a poll as a safety net). An operation that loses
//! its connection is tried again for about 10 s, then fails as
//! [`StoreError::Unavailable`](roomkit_graph_store::StoreError::Unavailable).
//!
//! Everything lives in its own schema, `roomkit_graph` ([`SCHEMA`]), created
//! on first use; a database where that schema exists but is not ours is
//! refused as [`StoreError::Foreign`](roomkit_graph_store::StoreError::Foreign),
//! untouched.
//!
//! # Layout
//!
//! One file per concern, laid out as the SQLite store's, each with its SQL
//! and the store trait of its concern:
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
//! - `store`: [`PostgresStore`], the handle: connecting, and trying an
//!   operation again while the database is unavailable.
//! - `schema`: the tables, and creating them once (under an advisory lock).
//! - `rows`: records read out of rows.
//! - `options`: [`Options`], such as how many connections a store opens.
//! - `error`: PostgreSQL errors as [`StoreError`](roomkit_graph_store::StoreError)s.
//! - `listen`: notifying commits, and the `LISTEN` connection that wakes
//!   followers.
//! - `tls`: encrypting connections as `sslmode` asks.

mod access;
mod error;
mod graphs;
mod hooks;
mod listen;
mod options;
mod queue;
mod retention;
mod rows;
mod runs;
mod schema;
mod store;
mod tls;
mod transcript;
mod workers;

pub use options::Options;
pub use schema::{SCHEMA, SCHEMA_VERSION};
pub use store::PostgresStore;
