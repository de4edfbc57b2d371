//! The store contract (`roomkit_graph_store::contract`) against a real
//! PostgreSQL server of this test's own, started once for the whole file:
//! each test on a new database, a store connected to it once per process the
//! test stands for.

use std::sync::Arc;

use async_trait::async_trait;
use roomkit_graph_postgres::PostgresStore;
use roomkit_graph_store::Store;
use roomkit_graph_store::contract::Database;

/// A database of a test's own on the test server.
struct Fresh {
    url: String,
}

#[async_trait]
impl Database for Fresh {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::connect(&self.url).await.expect("the store connects"))
    }
}

/// A new database, reached without TLS: the contract is the same either way
/// (`store.rs` tests TLS), and plain connections on loopback keep the many
/// connections of the suite cheap.
async fn database() -> Fresh {
    Fresh { url: format!("{}?sslmode=disable", roomkit_graph_pgtest::database()) }
}

roomkit_graph_store::contract_tests!(database);
