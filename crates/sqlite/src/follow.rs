//! Following a run's transcript: the store crate's follower
//! ([`Wakes::follow`](roomkit_graph_store::Wakes::follow)), reading from the
//! read pool and woken by the writer thread after each COMMIT (low latency
//! for steps committed here) and by a poll every [`POLL`] (for commits made
//! by other processes on the same file).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use roomkit_graph_store::{RunRecord, StoreError, TranscriptEvent, TranscriptPages};

use crate::pool::Readers;
use crate::read;

/// How often a follower looks at the database for commits made elsewhere.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// The pages a follower reads: from the read pool.
pub(crate) struct Pages(pub(crate) Arc<Readers>);

#[async_trait]
impl TranscriptPages for Pages {
    async fn page(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(RunRecord, Vec<TranscriptEvent>), StoreError> {
        let run_id = run_id.to_owned();
        self.0.run(move |conn| read::transcript_page(conn, &run_id, after, limit)).await
    }
}
