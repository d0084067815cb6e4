"""The words OpsMap's files and rules share, defined once.

The built-in verbs a policy grants (and a request asks for), in the order a plan lists
them; the verbs a request may ask of a whole map (``component: "*"``); and what a commit
SHA looks like (SHA-1, or SHA-256 in a repo that uses it), lowercase hex as git prints it.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Verb = Literal["view", "logs", "start", "stop", "restart"]
"""A built-in verb: what a policy grants and a request may ask for."""
VERBS: tuple[Verb, ...] = get_args(Verb)
"""Every built-in verb, in the order a plan lists rights."""
BUILTIN_VERBS: frozenset[str] = frozenset(VERBS)
"""The same, as a set: an action named otherwise is a custom action."""
WHOLE_MAP_VERBS: tuple[Verb, ...] = ("start", "stop", "restart")
"""What a request may ask of every component of a map at once (in dependency order)."""
ALL_COMPONENTS = "*"
"""The ``component`` of a request for the whole map."""
COMMIT_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
"""A full commit SHA (``fullmatch`` it): 40 hex digits, or 64 in a SHA-256 repo."""
