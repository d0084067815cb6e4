"""The request processor's counters, recorded: its ``counters`` seam in in-process tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counts:
    """What the processor counted: request results, and (component, action, result)."""

    requests: list[str] = field(default_factory=list)
    actions: list[tuple[str, str, str]] = field(default_factory=list)

    def request(self, result: str) -> None:
        self.requests.append(result)

    def action(self, map_name: str, component: str, action: str, result: str) -> None:
        self.actions.append((component, action, result))
