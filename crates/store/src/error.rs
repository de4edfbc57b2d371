/// What a store operation can fail with. Each names what went wrong precisely;
/// a failed operation changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The file is not a database (corrupt, or another kind of file).
    #[error("{path} is not a roomkit-graph database: {detail}")]
    NotADatabase {
        /// The database file.
        path: String,
        /// What the database engine said.
        detail: String,
    },
    /// The file is a database, but not one of ours (or of a newer schema).
    #[error("{path} is a database of another application or version: {detail}")]
    Foreign {
        /// The database file.
        path: String,
        /// What does not match.
        detail: String,
    },
    /// The database stayed locked by another process for too long.
    #[error("the database is locked by another process: {0}")]
    Locked(String),
    /// The disk or the file-size limit is full: nothing of the operation was kept.
    #[error("the database cannot grow (disk full or file-size limit): {0}")]
    Full(String),
    /// No such graph, graph version or run.
    #[error("{0} not found")]
    NotFound(String),
    /// The run is not where the operation expected it (another process moved it,
    /// or it is not waiting there).
    #[error("conflict on run {run_id}: {detail}")]
    Conflict {
        /// The run.
        run_id: String,
        /// What was expected and what was found.
        detail: String,
    },
    /// A run holds this key already (the key of [`NewRun::key`](crate::NewRun::key)).
    #[error("a run with key {key:?} exists already: {run_id}")]
    Duplicate {
        /// The key.
        key: String,
        /// The run that has it.
        run_id: String,
        /// Whether that run was asked for with the same request (see
        /// [`RunKey::request_hash`](crate::RunKey::request_hash)): a repeat,
        /// rather than another request reusing the key.
        same_request: bool,
    },
    /// The request itself is wrong (a duplicate run id, an unknown filter value...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database cannot be reached right now (the connection was lost or
    /// refused, the server is restarting): the operation may or may not have
    /// been applied. Retrying is safe for a step (its run version guards it)
    /// and for reads.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("storage error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether trying the same operation again later may succeed as it is:
    /// the database was out of reach ([`StoreError::Unavailable`]). A
    /// [`StoreError::Locked`] already waited its busy timeout, and every other
    /// error says what must change first.
    ///
    /// ```
    /// use roomkit_graph_store::StoreError;
    ///
    /// assert!(StoreError::Unavailable("connection refused".into()).is_retryable());
    /// assert!(!StoreError::NotFound("run r1".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The result of a store operation: [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
