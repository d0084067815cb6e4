"""``opsmap policy can SUBJECT VERB MAP/COMPONENT[/ACTION]``: ask the policy engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, usage_error
from reconciler.cli.loading import load_valid_repo
from reconciler.inert import for_log
from reconciler.model.policies import BUILTIN_VERBS
from reconciler.policy.engine import PolicySet, Question


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    can = sub.add_parser(
        "can",
        help="may SUBJECT do VERB on MAP/COMPONENT[/ACTION]? exit 0 allow, 1 deny",
        description="Print allow or deny and the rule that decided. SUBJECT is an email "
        "address or group:NAME; VERB is view, logs, start, stop, restart, or an action's name.",
    )
    can.add_argument("subject")
    can.add_argument("verb")
    can.add_argument("target", metavar="MAP/COMPONENT[/ACTION]")
    can.add_argument("--repo", type=Path, default=Path("."), metavar="PATH")
    can.add_argument("-v", "--verbose", action="store_true", help="list every matching binding")


def run(args: argparse.Namespace) -> int:
    parts = args.target.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return usage_error(
            f"target {args.target!r}: expected MAP/COMPONENT or MAP/COMPONENT/ACTION"
        )
    repo = load_valid_repo(args.repo)
    if repo is None:
        return EXIT_USAGE
    map_name, component_id = parts[0], parts[1]
    target_map = repo.map(map_name)
    if target_map is None:
        return usage_error(f"no map named '{map_name}'")
    component = target_map.component(component_id)
    if component is None:
        return usage_error(f"map '{map_name}' has no component '{component_id}'")
    action = parts[2] if len(parts) == 3 else None
    verb = args.verb
    if action is None and component.action(verb) is not None:
        action = verb
    if action is not None:
        if component.action(action) is None:
            return usage_error(f"component '{component_id}' has no action '{action}'")
        verb = action
    elif verb not in BUILTIN_VERBS:
        return usage_error(
            f"'{verb}' is neither a verb ({', '.join(sorted(BUILTIN_VERBS))}) "
            f"nor an action of '{component_id}'"
        )
    decision = PolicySet.from_repo(repo).decide(
        Question(args.subject, verb, map_name, component_id, action)
    )
    print(f"{decision.verdict}: {for_log(decision.rule)}")
    if args.verbose:
        for matched in decision.matched:
            print(f"  matched {for_log(matched)}")
    return EXIT_OK if decision.allowed else EXIT_FAILED
