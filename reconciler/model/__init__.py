"""Typed models of everything a map repo holds."""

from agentless.inventory import HostEntry, InventoryFile
from reconciler.model.maps import Action, Check, CompletionCheck, Component, Map, Selector
from reconciler.model.policies import Binding, PolicyBinding, PolicyFile
from reconciler.model.request import Request
from reconciler.model.settings import Settings

__all__ = [
    "Action",
    "Binding",
    "Check",
    "CompletionCheck",
    "Component",
    "HostEntry",
    "InventoryFile",
    "Map",
    "PolicyBinding",
    "PolicyFile",
    "Request",
    "Selector",
    "Settings",
]
