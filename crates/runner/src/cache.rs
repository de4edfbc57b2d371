//! The compiled graphs a runner keeps, so that a step of a run needs no graph
//! read or compilation: at most a fixed number, the least recently used one
//! going first when a new one comes in.

use std::collections::HashMap;

use roomkit_graph::Workflow;

/// A graph version: (organization, graph id, version). Versions never change
/// once stored, so a compiled one stays right as long as it is kept.
pub(crate) type GraphKey = (String, String, u64);

/// How many compiled graphs a runner keeps unless
/// [`Runner::with_graph_cache`](crate::Runner::with_graph_cache) says otherwise.
pub const DEFAULT_GRAPH_CACHE: usize = 256;

/// Compiled graphs by version, at most `capacity` of them.
pub(crate) struct GraphCache {
    entries: HashMap<GraphKey, Kept>,
    capacity: usize,
    /// Counts the uses, to tell which entry was used least recently.
    clock: u64,
}

struct Kept {
    workflow: Workflow,
    used: u64,
}

impl GraphCache {
    /// An empty cache of at most `capacity` graphs (0 keeps none).
    pub(crate) fn new(capacity: usize) -> Self {
        GraphCache { entries: HashMap::new(), capacity, clock: 0 }
    }

    /// Keeps at most `capacity` graphs from now on, letting the least recently
    /// used ones go.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.entries.len() > self.capacity {
            self.evict();
        }
    }

    /// Lets every compiled graph go (they were compiled with settings that changed).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The compiled graph of `key`, if kept; it becomes the most recently used.
    pub(crate) fn get(&mut self, key: &GraphKey) -> Option<Workflow> {
        self.clock += 1;
        let kept = self.entries.get_mut(key)?;
        kept.used = self.clock;
        Some(kept.workflow.clone())
    }

    /// Keeps `workflow` as the compiled graph of `key`; when full, the least
    /// recently used one goes first. (Finding it walks the entries: it only
    /// happens on a miss, which compiles a graph anyway.)
    pub(crate) fn insert(&mut self, key: GraphKey, workflow: Workflow) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.evict();
        }
        self.entries.insert(key, Kept { workflow, used: self.clock });
    }

    /// How many graphs are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn evict(&mut self) {
        let oldest = self.entries.iter().min_by_key(|(_, kept)| kept.used).map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomkit_graph::{Graph, Handlers, Trigger};

    fn key(id: &str) -> GraphKey {
        ("default".to_owned(), id.to_owned(), 1)
    }

    fn workflow(id: &str) -> Workflow {
        Workflow::new(Graph::new(id, id, Trigger::manual()), Handlers::builtin())
    }

    #[test]
    fn the_least_recently_used_graph_goes_first_and_the_size_stays_bounded() {
        let mut cache = GraphCache::new(2);
        cache.insert(key("a"), workflow("a"));
        cache.insert(key("b"), workflow("b"));
        assert!(cache.get(&key("a")).is_some(), "a is used again: b is now the oldest");
        cache.insert(key("c"), workflow("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("b")).is_none(), "b went");
        assert_eq!(cache.get(&key("a")).map(|w| w.graph().id.clone()).as_deref(), Some("a"));
        assert!(cache.get(&key("c")).is_some());

        for n in 0..1_000 {
            cache.insert(key(&format!("g{n}")), workflow("g"));
        }
        assert_eq!(cache.len(), 2, "a thousand graphs later");
        cache.set_capacity(1);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("g999")).is_some(), "the most recent one stays");

        let mut none = GraphCache::new(0);
        none.insert(key("a"), workflow("a"));
        assert_eq!(none.len(), 0);
    }
}
