//! [`PostgresStore`]: the handle, connecting, and what every operation
//! shares: a pooled connection, and trying again while the database is
//! unavailable (the operations themselves are in the file of their concern).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use roomkit_graph_store::{Cause, StoreError, Wakes};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::pool_error;
use crate::{Options, listen, schema, tls};

/// How many times an operation is tried while the database is unavailable
/// (about 10 s in all with the pauses below).
const ATTEMPTS: usize = 9;

/// The pause after the first unavailable try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between two tries.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// A [`Store`](roomkit_graph_store::Store) in a PostgreSQL database, which any number of processes, on
/// any number of machines, may share.
///
/// Cheap to clone: clones share the connection pool and the listening
/// connection. Each operation is one transaction; a step is committed with
/// its run row locked (`SELECT ... FOR UPDATE`) and its version checked, so
/// two processes never commit the same step, and a run is driven by the
/// holder of its lease.
///
/// Connections use TLS as the URL's `sslmode` asks (`prefer` by default:
/// when the server offers it); like libpq in these modes, the server's
/// certificate is not checked against an authority.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Wakes this store's followers when their run is notified.
    wakes: Wakes,
    listener: JoinHandle<()>,
    /// Run ids this store committed to, for [`listen::notify`] to announce.
    committed: mpsc::UnboundedSender<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`,
    /// or the key=value form), and creates the store's tables there when it
    /// has none.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a URL that is not PostgreSQL's,
    /// [`StoreError::Unavailable`] when the server cannot be reached,
    /// [`StoreError::Backend`] when it refuses the login or has no such
    /// database, [`StoreError::Foreign`] when the database has a schema
    /// `roomkit_graph` that is not ours (or of a newer version); such a
    /// database is left untouched.
    ///
    /// ```no_run
    /// use roomkit_graph::{Graph, Trigger};
    /// use roomkit_graph_postgres::PostgresStore;
    /// use roomkit_graph_store::prelude::*;
    /// use roomkit_graph_store::DEFAULT_ORG;
    ///
    /// # async fn example() -> Result<(), roomkit_graph_store::StoreError> {
    /// let store = PostgresStore::connect("postgres://app@db.internal/runs").await?;
    /// let stored = store.save_graph(DEFAULT_ORG, &Graph::new("review", "Review", Trigger::manual())).await?;
    /// assert_eq!(stored.version, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStore::connect_with(url, Options::default()).await
    }

    /// [`PostgresStore::connect`] with other [`Options`].
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::connect`]; [`StoreError::Invalid`] for
    /// `max_connections` 0.
    pub async fn connect_with(url: &str, options: Options) -> Result<Self, StoreError> {
        if options.max_connections == 0 {
            return Err(StoreError::Invalid("a store needs at least one connection".into()));
        }
        let config: tokio_postgres::Config =
            url.parse().map_err(|err| StoreError::Invalid(format!("not a PostgreSQL URL: {err}")))?;
        let target = describe_target(&config);
        let tls = tls::connector()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager).max_size(options.max_connections).build().map_err(|err| {
            StoreError::Backend(
                Cause::new(format!("cannot make a pool for {target}: {err}")).with_source(err),
            )
        })?;
        let mut client = pool.get().await.map_err(|err| match pool_error(err) {
            StoreError::Backend(cause) => StoreError::Backend(cause.context(&target)),
            StoreError::Unavailable(cause) => StoreError::Unavailable(cause.context(&target)),
            other => other,
        })?;
        schema::prepare(&mut client, &target).await?;
        schema::create_workers_table(&mut client).await?;
        drop(client);

        let wakes = Wakes::default();
        let listener = tokio::spawn(listen::listen(config, tls, wakes.clone()));
        let (committed, to_notify) = mpsc::unbounded_channel();
        tokio::spawn(listen::notify(pool.clone(), to_notify));
        Ok(PostgresStore { inner: Arc::new(Inner { pool, wakes, listener, committed }) })
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// Runs `operation`, and again while it finds the database unavailable
    /// (a lost connection, a server restarting), waiting longer each time, up
    /// to [`ATTEMPTS`] tries in all.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut operation: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut pause = FIRST_PAUSE;
        for _ in 1..ATTEMPTS {
            match operation().await {
                Err(err) if err.is_retryable() => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                done => return done,
            }
        }
        operation().await
    }

    /// The pool, for followers.
    pub(crate) fn pool(&self) -> Pool {
        self.inner.pool.clone()
    }

    /// The wakes of this store's followers.
    pub(crate) fn wakes(&self) -> &Wakes {
        &self.inner.wakes
    }

    /// Tells the followers of `run_id`, in every process, that it has new events.
    pub(crate) fn announce(&self, run_id: &str) {
        // The task ends only with the store.
        let _ = self.inner.committed.send(run_id.to_owned());
    }
}

/// Where `config` connects, for messages: `database DB on HOST:PORT as USER`
/// (never the password).
fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL database {database} on {host}:{port} as {user}")
}
