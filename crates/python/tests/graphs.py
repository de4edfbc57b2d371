"""Graphs the package's tests share."""

from roomkit_graph import Edge, Graph, ManualTrigger, Node


def chain(*middle: Node) -> Graph:
    """start -> middle... -> end."""
    g = Graph(id="g", name="G", trigger=ManualTrigger())
    g.add_nodes(Node("start", type="start"), *middle, Node("end", type="end"))
    ids = ["start", *(n.id for n in middle), "end"]
    g.add_edges(*(Edge(a, b) for a, b in zip(ids, ids[1:])))
    return g
