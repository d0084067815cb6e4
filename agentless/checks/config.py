"""The configuration of each check type, as a map file spells it under ``config:``.

These models are the single source of truth for what a check type accepts: the map
validator, the JSON Schemas and the probes all read them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Port = Annotated[int, Field(ge=1, le=65535, description="TCP port, 1-65535")]
Percent = Annotated[float, Field(ge=0, le=100)]


class ProbeConfig(BaseModel):
    """Base of every check type's ``config``: strict, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class HttpConfig(ProbeConfig):
    """Fetch a URL from the target host (``localhost`` means that host)."""

    url: str = Field(
        min_length=1, description="http:// or https:// URL, fetched on the target host"
    )
    expected_status: int | list[int] | None = Field(
        default=None, description="Expected status code(s); default: any 2xx"
    )
    method: Literal["GET", "HEAD", "POST"] = "GET"
    insecure: bool = Field(default=False, description="Do not verify the TLS certificate")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if any(c in url for c in "\n\r\t ") or "'" in url:
            raise ValueError("url must not contain whitespace or quotes")
        return url

    @field_validator("expected_status")
    @classmethod
    def _status_range(cls, status: int | list[int] | None) -> int | list[int] | None:
        codes = [status] if isinstance(status, int) else status or []
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"expected_status {code} is not an HTTP status (100-599)")
        return status

    def accepts(self, status: int) -> bool:
        if self.expected_status is None:
            return 200 <= status < 300
        if isinstance(self.expected_status, int):
            return status == self.expected_status
        return status in self.expected_status


class TcpConfig(ProbeConfig):
    """A TCP port, seen from the target host.

    ``method: auto`` (the default) answers a loopback ``host`` (127.0.0.1, localhost, ::1)
    from the host's socket table, the way Zabbix's ``net.tcp.listen`` does: the port is
    up when a socket listening on it accepts loopback connections. No connection is
    made, so the service logs no probe connection and spends no accept on it, and the
    check costs one ``sed`` on the target. Any other host is connected to.
    ``method: connect`` always connects, as Nagios' ``check_tcp`` does: choose it where a
    firewall rule on ``lo`` or a full accept queue must count as down.
    """

    port: Port
    host: str = Field(
        default="127.0.0.1",
        pattern=r"^[A-Za-z0-9.:_-]+$",
        description="Address of the port, seen from the target host",
    )
    method: Literal["auto", "connect"] = Field(
        default="auto",
        description=(
            "auto: a loopback host is read from the socket table (LISTEN sockets), "
            "any other host is connected to; connect: always connect"
        ),
    )


class ProcessConfig(ProbeConfig):
    """Count processes whose command name matches ``name`` (read from /proc)."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\n\r]+$")
    min_count: int = Field(default=1, ge=0)
    max_count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> ProcessConfig:
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(f"max_count ({self.max_count}) is below min_count ({self.min_count})")
        return self


class CommandConfig(ProbeConfig):
    """A Nagios-style plugin command: exit 0/1/2/3 = OK/WARNING/CRITICAL/UNKNOWN."""

    command: str = Field(min_length=1)

    @field_validator("command")
    @classmethod
    def _not_blank(cls, command: str) -> str:
        if not command.strip():
            raise ValueError("command is blank")
        return command


class ThresholdConfig(ProbeConfig):
    """Usage thresholds in percent; warning must be below critical."""

    warning_percent: Percent = 80
    critical_percent: Percent = 90

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdConfig:
        if self.warning_percent >= self.critical_percent:
            raise ValueError(
                f"warning_percent ({self.warning_percent:g}) must be below "
                f"critical_percent ({self.critical_percent:g})"
            )
        return self


class MemoryConfig(ThresholdConfig):
    """Memory in use (MemTotal - MemAvailable from /proc/meminfo)."""


class CpuConfig(ThresholdConfig):
    """CPU busy percent, sampled from /proc/stat over ``sample_secs``."""

    sample_secs: float = Field(default=1.0, gt=0, le=30)


class DiskSpaceConfig(ThresholdConfig):
    """Disk space used on the filesystem holding ``path`` (from df)."""

    path: str = Field(default="/", min_length=1, pattern=r"^/[^\n\r]*$")


CONFIG_MODELS: dict[str, type[ProbeConfig]] = {
    "http": HttpConfig,
    "tcp": TcpConfig,
    "process": ProcessConfig,
    "command": CommandConfig,
    "native:memory": MemoryConfig,
    "native:cpu": CpuConfig,
    "native:disk_space": DiskSpaceConfig,
}
"""Every check type OpsMap knows, by the name a map gives in ``type:``."""
