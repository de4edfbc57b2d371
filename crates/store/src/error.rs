use std::error::Error;
use std::fmt;
use std::sync::Arc;

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
        #[source]
        detail: Cause,
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
    Locked(#[source] Cause),
    /// The disk or the file-size limit is full: nothing of the operation was kept.
    #[error("the database cannot grow (disk full or file-size limit): {0}")]
    Full(#[source] Cause),
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
    Unavailable(#[source] Cause),
    /// Anything else the backend reported.
    #[error("storage error: {0}")]
    Backend(#[source] Cause),
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

/// What a backend reported about a failure: its message, and the driver's
/// error under it when there is one (the SQLite or PostgreSQL error, an I/O
/// error), kept as the [source](Error::source) of the chain. Two causes are
/// equal when their messages are.
///
/// ```
/// use std::error::Error as _;
/// use roomkit_graph_store::{Cause, StoreError};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let err = StoreError::Unavailable(Cause::new("the connection was lost").with_source(io));
/// assert_eq!(err.to_string(), "the database is unavailable: the connection was lost");
/// let driver = err.source().and_then(|cause| cause.source()).map(ToString::to_string);
/// assert_eq!(driver.as_deref(), Some("reset by peer"));
/// ```
#[derive(Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl Cause {
    /// A cause with this message and nothing under it.
    pub fn new(message: impl Into<String>) -> Self {
        Cause { message: message.into(), source: None }
    }

    /// The same message, with `source` under it.
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same cause, its message led by `context` (`"{context}: {message}"`).
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The message, without what lies under it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Cause");
        debug.field("message", &self.message);
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn Error + 'static))
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Cause {}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause::new(message)
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Cause::new(message)
    }
}

/// The result of a store operation: [`StoreError`] unless said otherwise.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
