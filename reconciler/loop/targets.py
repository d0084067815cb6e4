"""From a valid revision to the checks to schedule: every check on every selected host."""

from __future__ import annotations

from agentless.inventory import HostIndex
from agentless.runner import CheckTarget
from reconciler.loop.checkstate import CheckPolicy
from reconciler.loop.scheduler import CheckKey, ScheduledCheck
from reconciler.model.settings import Settings
from reconciler.repo.loader import MapRepo


def scheduled_checks(repo: MapRepo, settings: Settings | None = None) -> list[ScheduledCheck]:
    settings = settings or repo.effective_settings
    defaults = settings.checks
    hosts = HostIndex(repo.hosts)
    scheduled = []
    for loaded in repo.maps:
        for component in loaded.model.components:
            selected = hosts.select(component.selector)
            for check in component.checks:
                policy = CheckPolicy(
                    interval_s=check.interval_secs,
                    retry_interval_s=check.retry_interval_secs
                    or min(defaults.retry_interval_secs, check.interval_secs),
                    max_attempts=check.max_check_attempts or defaults.max_check_attempts,
                    flap_low_percent=defaults.flap_low_percent,
                    flap_high_percent=defaults.flap_high_percent,
                )
                for host in selected:
                    key = CheckKey(loaded.model.name, component.id, check.name, host.name)
                    target = CheckTarget(
                        "/".join(key), host, check.type, check.config, check.timeout_secs
                    )
                    scheduled.append(ScheduledCheck(key, target, policy))
    return scheduled
