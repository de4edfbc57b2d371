"""Triggers: how a workflow is started.

``Trigger.from_dict`` picks the class registered for the data's ``type``;
declare your own with ``class MyTrigger(Trigger, trigger_type="mine")``.
"""

from __future__ import annotations

from roomkit_graph._core import (
    EventTrigger,
    ManualTrigger,
    ScheduledTrigger,
    Trigger,
    WebhookTrigger,
)

__all__ = ["EventTrigger", "ManualTrigger", "ScheduledTrigger", "Trigger", "WebhookTrigger"]
