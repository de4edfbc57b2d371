//! [`Options`]: how a store uses its database.

/// How a [`PostgresStore`](crate::PostgresStore) uses its database.
///
/// ```
/// use roomkit_graph_postgres::Options;
/// let options = Options { max_connections: 4, ..Options::default() };
/// assert_eq!(Options::default().max_connections, 16);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How many connections the store keeps open at most for its operations
    /// (besides one that listens for other processes' commits). Every process
    /// sharing a database opens its own: keep their sum under the server's
    /// `max_connections`. 16 by default.
    pub max_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_connections: 16 }
    }
}
