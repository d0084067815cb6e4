"""The asyncssh transport: :class:`SshTransport` runs commands on inventory hosts.

:mod:`~agentless.ssh.transport` pools one connection per host and batches a tick's
commands into one shell (or one exec channel each); :mod:`~agentless.ssh._connect` opens
and verifies connections (:class:`SshSettings`); :mod:`~agentless.ssh._channel` frames
commands on a channel and reads their results, each stream split at its end marks as it
arrives and bounded by the output cap (:mod:`~agentless.ssh._frames`).
"""

from agentless.ssh.transport import Mode, SshSettings, SshTransport

__all__ = ["Mode", "SshSettings", "SshTransport"]
