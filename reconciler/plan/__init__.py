"""``opsmap plan``: what a pull request changes, who gains or loses rights, what will run.

Public API::

    plan = make_plan(Path("."), base="origin/main", head="HEAD")
    render_markdown(plan)   # a PR comment / step summary, under 65,000 characters
    render_json(plan)       # the same content for tools

Errors::

    PlanError          a path that is not a git repo, a ref that names no commit; one line
    └── InvalidHead    head does not validate; ``findings`` holds what validate reports
"""

from reconciler.plan.build import InvalidHead, Plan, make_plan
from reconciler.plan.render import MARKER, MAX_MARKDOWN_CHARS, render_json, render_markdown
from reconciler.plan.revisions import PlanError
from reconciler.plan.rights import Right, diff_rights, naive_diff

__all__ = [
    "MARKER",
    "MAX_MARKDOWN_CHARS",
    "InvalidHead",
    "Plan",
    "PlanError",
    "Right",
    "diff_rights",
    "make_plan",
    "naive_diff",
    "render_json",
    "render_markdown",
]
