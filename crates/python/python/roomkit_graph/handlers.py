"""Node handlers: what each node type does when a run reaches it.

``NodeHandler`` is the interface applications implement (an async
``execute(node, context, engine)`` returning a ``NodeResult``). The built-in
handlers below are run by the Rust engine itself; calling one's ``execute``
from a subclass (``await super().execute(node, context, engine)``) runs the
built-in on the step being executed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from roomkit_graph._core import Builtin as _Builtin
from roomkit_graph._core import NodeResult, StepResult
from roomkit_graph.nodes.base import NodeType
from roomkit_graph.registry import FunctionRegistry, graph_registry

if TYPE_CHECKING:
    from roomkit_graph.engine.context import WorkflowContext
    from roomkit_graph.engine.executor import WorkflowEngine
    from roomkit_graph.nodes.base import Node

__all__ = [
    "ConditionHandler",
    "EndHandler",
    "FunctionHandler",
    "LogHandler",
    "NodeHandler",
    "NodeResult",
    "ParallelHandler",
    "StartHandler",
    "StepResult",
    "SwitchHandler",
]


class NodeHandler(ABC):
    """What a node type does: ``execute`` runs a node and returns its result
    (``status="waiting"`` pauses the run on the node until ``resume``)."""

    @abstractmethod
    async def execute(
        self, node: Node, context: WorkflowContext, engine: WorkflowEngine
    ) -> NodeResult:
        """Runs *node*; *context* holds the run's outputs, *engine* the run."""


class StartHandler(NodeHandler):
    """The start node: outputs the trigger data as ``{"input": ...}``."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("start", self, node)


class EndHandler(NodeHandler):
    """The end node: completes the run."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("end", self, node)


class FunctionHandler(NodeHandler):
    """The function node: ``set_context``, ``delay``, ``json_transform`` and
    ``custom`` (a function of *registry*, ``graph_registry`` by default)."""

    def __init__(self, registry: FunctionRegistry | None = None) -> None:
        self._registry = registry if registry is not None else graph_registry

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("function", self, node)


class ConditionHandler(NodeHandler):
    """The condition node: outputs ``{"result": bool}`` of ``config.condition``."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("condition", self, node)


class SwitchHandler(NodeHandler):
    """The switch node: outputs ``{"value": ...}`` read at ``config.path``."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("switch", self, node)


class LogHandler(NodeHandler):
    """The log node: outputs ``{"message", "values"}`` of ``config.paths``."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("log", self, node)


class ParallelHandler(NodeHandler):
    """The parallel node: runs its children at once and outputs ``{child_id: output}``."""

    async def execute(self, node: Node, context: Any, engine: Any) -> NodeResult:
        return await _Builtin("parallel", self, node)


# The handlers every engine starts with, by node type.
_BUILTIN_HANDLERS: dict[NodeType | str, NodeHandler] = {
    NodeType.START: StartHandler(),
    NodeType.END: EndHandler(),
    NodeType.FUNCTION: FunctionHandler(),
    NodeType.CONDITION: ConditionHandler(),
    NodeType.SWITCH: SwitchHandler(),
    NodeType.LOG: LogHandler(),
    NodeType.PARALLEL: ParallelHandler(),
}
