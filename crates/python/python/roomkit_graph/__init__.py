"""roomkit_graph: workflow graphs as data, run by a Rust engine.

The API is roomkit-graph's, name for name; ``roomkit_graph.durable`` adds
durable runs on SQLite or PostgreSQL.
"""

from __future__ import annotations

from roomkit_graph._core import NodeResult, StepResult, __version__
from roomkit_graph._verbose import verbose
from roomkit_graph.edges import Condition, Edge
from roomkit_graph.engine import TemplateResolver, WorkflowContext, WorkflowEngine
from roomkit_graph.engine.streaming import StreamEvent, StreamMode
from roomkit_graph.errors import (
    ConditionError,
    ExecutionError,
    GraphError,
    GraphValidationError,
    NoValidTransitionError,
    TemplateError,
)
from roomkit_graph.graph import Graph
from roomkit_graph.handlers import (
    ConditionHandler,
    EndHandler,
    FunctionHandler,
    NodeHandler,
    ParallelHandler,
    StartHandler,
    SwitchHandler,
)
from roomkit_graph.nodes import Node, NodeType
from roomkit_graph.registry import FunctionRegistry, graph_registry
from roomkit_graph.triggers import (
    EventTrigger,
    ManualTrigger,
    ScheduledTrigger,
    Trigger,
    WebhookTrigger,
)

__all__ = [
    "__version__",
    # Graph
    "Graph",
    # Nodes
    "Node",
    "NodeType",
    # Edges
    "Edge",
    "Condition",
    # Triggers
    "Trigger",
    "WebhookTrigger",
    "ScheduledTrigger",
    "EventTrigger",
    "ManualTrigger",
    # Engine
    "WorkflowContext",
    "WorkflowEngine",
    "TemplateResolver",
    "StreamMode",
    "StreamEvent",
    # Handlers
    "NodeHandler",
    "NodeResult",
    "StepResult",
    "StartHandler",
    "EndHandler",
    "FunctionHandler",
    "ConditionHandler",
    "SwitchHandler",
    "ParallelHandler",
    # Registry
    "FunctionRegistry",
    "graph_registry",
    # Progress
    "verbose",
    # Errors
    "GraphError",
    "GraphValidationError",
    "ConditionError",
    "TemplateError",
    "ExecutionError",
    "NoValidTransitionError",
]
