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
//! - `schema`: the tables, and creating them once (under an advisory lock).
//! - `options`: [`Options`], such as how many connections a store opens.
//! - `store`: [`PostgresStore`] and the [`Store`](roomkit_graph_store::Store)
//!   operations.
//! - `rows`: reading records out of rows.
//! - `workers`: worker registrations, in a table of their own.
//! - `listen`: notifying commits, the `LISTEN` connection, and following a
//!   transcript.
//! - `tls`: encrypting connections as `sslmode` asks.
//! - `error`: PostgreSQL errors as [`StoreError`](roomkit_graph_store::StoreError)s.

mod error;
mod listen;
mod options;
mod rows;
mod schema;
mod store;
mod tls;
mod workers;

pub use options::Options;
pub use schema::{SCHEMA, SCHEMA_VERSION};
pub use store::PostgresStore;
