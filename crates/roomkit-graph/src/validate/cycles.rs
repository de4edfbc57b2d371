//! Sets of nodes a run cannot leave: the strongly connected components of the
//! edges (Tarjan's algorithm, with an explicit stack so a 1,000-node loop
//! needs no deep recursion) that hold a cycle and have no way out.

use std::collections::HashMap;

use crate::model::{Graph, NodeType};

/// The sets of nodes that reach each other through edges (a self-loop
/// included) with no edge of any kind leaving the set and no end node in it:
/// a run that enters one ends only at its step limit. Each set is given as
/// node positions in graph order; the sets are ordered by their first node.
///
/// Edges from a node that does not exist are ignored; an edge to one is a
/// way out (the run would leave the set, and fail there).
pub(super) fn traps(graph: &Graph) -> Vec<Vec<usize>> {
    let nodes = graph.nodes();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    // Whether a node has an edge to something that is not a node.
    let mut dangling = vec![false; nodes.len()];
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    for edge in &graph.edges {
        let Some(&source) = index.get(edge.source.as_str()) else { continue };
        match index.get(edge.target.as_str()) {
            Some(&target) => next[source].push(target),
            None => dangling[source] = true,
        }
    }
    let component = components(&next);
    let count = component.iter().map(|&c| c + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (node, &c) in component.iter().enumerate() {
        members[c].push(node);
    }
    let mut traps: Vec<Vec<usize>> = members
        .into_iter()
        .filter(|set| {
            let cyclic = set.len() > 1 || next[set[0]].contains(&set[0]);
            let c = component[set[0]];
            let way_out = set.iter().any(|&node| {
                dangling[node]
                    || nodes[node].node_type == NodeType::End
                    || next[node].iter().any(|&target| component[target] != c)
            });
            cyclic && !way_out
        })
        .collect();
    traps.sort_unstable_by_key(|set| set[0]);
    traps
}

/// The strongly connected component of each node of the directed graph whose
/// edges are `next` (node `i` leads to each of `next[i]`): two nodes get the
/// same number when and only when each reaches the other. Components are
/// numbered from 0 in the order they are closed.
fn components(next: &[Vec<usize>]) -> Vec<usize> {
    let mut search = Search::new(next.len());
    for root in 0..next.len() {
        if search.order[root] != UNSEEN {
            continue;
        }
        search.enter(root);
        while let Some(&(node, followed)) = search.path.last() {
            if let Some(&target) = next[node].get(followed) {
                if let Some(top) = search.path.last_mut() {
                    top.1 += 1;
                }
                if search.order[target] == UNSEEN {
                    search.enter(target);
                } else if search.on_stack[target] {
                    search.low[node] = search.low[node].min(search.order[target]);
                }
            } else {
                search.leave(node);
            }
        }
    }
    search.component
}

/// Not seen yet, or in no component yet.
const UNSEEN: usize = usize::MAX;

/// Tarjan's depth-first search, its call stack kept in `path`.
struct Search {
    /// When each node was first seen.
    order: Vec<usize>,
    /// The earliest-seen node still on `stack` that each node reaches.
    low: Vec<usize>,
    on_stack: Vec<bool>,
    /// The nodes seen whose component is not closed yet.
    stack: Vec<usize>,
    /// The depth-first path: each node and how many of its edges it has followed.
    path: Vec<(usize, usize)>,
    component: Vec<usize>,
    seen: usize,
    closed: usize,
}

impl Search {
    fn new(n: usize) -> Self {
        Search {
            order: vec![UNSEEN; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            path: Vec::new(),
            component: vec![UNSEEN; n],
            seen: 0,
            closed: 0,
        }
    }

    /// Goes down to `node`, first seen now.
    fn enter(&mut self, node: usize) {
        self.order[node] = self.seen;
        self.low[node] = self.seen;
        self.seen += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        self.path.push((node, 0));
    }

    /// Goes back up from `node`, all of whose edges are followed: it closes a
    /// component when it reaches no node seen before it that is still open.
    fn leave(&mut self, node: usize) {
        self.path.pop();
        if let Some(&(parent, _)) = self.path.last() {
            self.low[parent] = self.low[parent].min(self.low[node]);
        }
        if self.low[node] == self.order[node] {
            while let Some(member) = self.stack.pop() {
                self.on_stack[member] = false;
                self.component[member] = self.closed;
                if member == node {
                    break;
                }
            }
            self.closed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Condition;
    use crate::model::{Edge, Node, Trigger};

    /// A graph of `start`, `end` and log nodes named by `ids`, with `edges`
    /// (plus `start -> ` the first of `ids`).
    fn graph(ids: &[&str], edges: impl IntoIterator<Item = Edge>) -> Graph {
        let mut graph = Graph::new("g", "G", Trigger::manual());
        graph.add_node(Node::new("start", "start")).unwrap();
        graph.add_nodes(ids.iter().map(|id| Node::new(*id, "log"))).unwrap();
        graph.add_node(Node::new("end", "end")).unwrap();
        graph.add_edge(Edge::new("start", ids[0]));
        graph.add_edges(edges);
        graph
    }

    /// The traps of `graph` as node ids.
    fn trapped(graph: &Graph) -> Vec<Vec<&str>> {
        traps(graph)
            .into_iter()
            .map(|set| set.into_iter().map(|i| graph.nodes()[i].id.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_node_with_an_edge_to_itself_only_is_a_trap() {
        let g = graph(&["a", "poll"], [Edge::new("a", "poll"), Edge::new("poll", "poll")]);
        assert_eq!(trapped(&g), vec![vec!["poll"]]);
        // The same self-loop with a way on is not.
        let g = graph(&["poll"], [Edge::new("poll", "poll"), Edge::new("poll", "end")]);
        assert_eq!(trapped(&g), Vec::<Vec<&str>>::new());
    }

    #[test]
    fn two_nodes_leading_only_to_each_other_are_one_trap() {
        let g = graph(&["a", "b"], [Edge::new("a", "b"), Edge::new("b", "a")]);
        assert_eq!(trapped(&g), vec![vec!["a", "b"]]);
    }

    #[test]
    fn any_edge_out_is_a_way_out_whatever_its_condition() {
        let ways_out = [
            Edge::new("b", "end").when(Condition::field("b.output.done").equals(true)),
            Edge::new("b", "end").when(Condition::otherwise()),
            Edge::new("b", "end").when(Condition::error()),
            Edge::new("b", "end"),
            // An edge to a node that does not exist (a mistake of its own).
            Edge::new("b", "ghost"),
        ];
        for way_out in ways_out {
            let g = graph(&["a", "b"], [Edge::new("a", "b"), Edge::new("b", "a"), way_out.clone()]);
            assert_eq!(trapped(&g), Vec::<Vec<&str>>::new(), "{way_out:?}");
        }
    }

    #[test]
    fn an_end_node_in_the_loop_ends_the_run() {
        let mut g = graph(&["a"], [Edge::new("a", "end"), Edge::new("end", "a")]);
        assert_eq!(trapped(&g), Vec::<Vec<&str>>::new());
        g.edges.retain(|edge| edge.source != "a");
        g.add_edge(Edge::new("a", "a"));
        assert_eq!(trapped(&g), vec![vec!["a"]]);
    }

    #[test]
    fn nested_loops_are_one_trap_and_only_closed_sets_are_traps() {
        // b <-> c inside a -> b -> c -> a, nothing out: one set of all three.
        let g = graph(
            &["a", "b", "c"],
            [Edge::new("a", "b"), Edge::new("b", "c"), Edge::new("c", "b"), Edge::new("c", "a")],
        );
        assert_eq!(trapped(&g), vec![vec!["a", "b", "c"]]);

        // a <-> b leads on to c <-> d (listed first), which leads nowhere
        // else; and e -> e in a set of its own, after both.
        let g = graph(
            &["d", "a", "b", "c", "e"],
            [
                Edge::new("e", "e"),
                Edge::new("a", "b"),
                Edge::new("b", "a"),
                Edge::new("b", "c"),
                Edge::new("c", "d"),
                Edge::new("d", "c"),
                Edge::new("start", "e"),
            ],
        );
        assert_eq!(trapped(&g), vec![vec!["d", "c"], vec!["e"]]);
    }

    #[test]
    fn a_loop_of_a_thousand_nodes_is_found_without_deep_recursion() {
        let ids: Vec<String> = (0..1_000).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let ring = (0..ids.len()).map(|i| Edge::new(ids[i].as_str(), ids[(i + 1) % ids.len()].as_str()));
        let mut g = graph(&refs, ring);
        let found = trapped(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0], refs);
        g.add_edge(Edge::new("n500", "end"));
        assert_eq!(trapped(&g), Vec::<Vec<&str>>::new());

        // The search itself keeps its path on the heap: a chain far longer
        // than any graph may be.
        let n = 200_000;
        let next: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
        let component = components(&next);
        assert!(component.iter().all(|&c| c == 0));
        let chain: Vec<Vec<usize>> = (0..n).map(|i| if i + 1 < n { vec![i + 1] } else { vec![] }).collect();
        let component = components(&chain);
        let mut distinct = component.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), n);
    }
}
