//! Graphs as stored, by version, and [`GraphStore`], where they are kept.

use async_trait::async_trait;
use roomkit_graph::Graph;

use crate::{GraphCursor, Millis, Page, Result};

/// A graph as stored: one version of it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredGraph {
    /// The organization that owns it.
    pub org: String,
    /// The graph.
    pub graph: Graph,
    /// The store's version number for this graph id: 1, 2, 3...
    pub version: u64,
    /// When this version was saved.
    pub created_at: Millis,
}

/// One version of a graph in short, as [`GraphStore::graph_versions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version.
    pub version: u64,
    /// When it was saved.
    pub created_at: Millis,
    /// The graph's name in it.
    pub name: String,
    /// How many nodes it has.
    pub nodes: u64,
    /// How many edges it has.
    pub edges: u64,
}

/// Where graphs are kept, by organization and version: saving one never
/// changes a version already stored, so a run pins the version it started
/// with. Every method is one transaction.
///
/// ```
/// use roomkit_graph_store::{GraphStore, Result};
///
/// /// The version a new run of `graph_id` would pin.
/// async fn pinned(store: &dyn GraphStore, org: &str, graph_id: &str) -> Result<u64> {
///     store.latest_graph_version(org, graph_id).await
/// }
/// ```
#[async_trait]
pub trait GraphStore: Send + Sync {
    /// Stores `graph` as the next version of its id in `org` (1 for a new id)
    /// and returns that version.
    async fn save_graph(&self, org: &str, graph: &Graph) -> Result<StoredGraph>;

    /// A stored graph of `org`: the given version, or the latest when `version` is `None`.
    async fn graph(&self, org: &str, graph_id: &str, version: Option<u64>) -> Result<StoredGraph>;

    /// The number of the latest version of a graph of `org`: what
    /// [`GraphStore::graph`] would give with `None`, without reading the graph.
    async fn latest_graph_version(&self, org: &str, graph_id: &str) -> Result<u64> {
        Ok(self.graph(org, graph_id, None).await?.version)
    }

    /// The latest version of every graph of `org` (of every organization when
    /// `None`), by organization and graph id.
    async fn list_graphs(&self, org: Option<&str>) -> Result<Vec<StoredGraph>>;

    /// Up to `limit` of the graphs of `org` whose id sorts after `after` (all
    /// when `None`), by id: the latest version of each.
    async fn list_graphs_after(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredGraph>>;

    /// Up to `limit` versions of a graph of `org` older than `before` (from
    /// the latest when `None`), newest first, each in short (the graphs are
    /// not read); none for a graph `org` lacks.
    async fn graph_versions(
        &self,
        org: &str,
        graph_id: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<VersionInfo>>;

    /// A page of at most `size` graphs of `org` (latest versions, by id),
    /// starting after `after`, and the cursor of the next page.
    async fn graph_page(
        &self,
        org: &str,
        after: Option<&GraphCursor>,
        size: usize,
    ) -> Result<Page<StoredGraph>> {
        let after = after.map(|cursor| cursor.graph_id.as_str());
        let graphs = self.list_graphs_after(org, after, size.saturating_add(1)).await?;
        Ok(Page::cut(graphs, size, |last| GraphCursor::after(last).encode()))
    }
}
