"""The asyncssh transport: :class:`SshTransport` runs commands on inventory hosts.

:mod:`~agentless.ssh.transport` pools one connection per host and batches a tick's
commands into one shell (or one exec channel each); :mod:`~agentless.ssh._connect` opens
and verifies connections (:class:`SshSettings`); :mod:`~agentless.ssh._channel` frames
commands on a channel and reads their results, each stream split at its end marks as it
arrives and bounded by the output cap (:mod:`~agentless.ssh._frames`).
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# asyncssh names DSA types in annotations evaluated at import: the newest cryptography
# warns about each (ten lines at every start, raw on stderr). OpsMap never offers DSA; the
# warnings say nothing to an operator, so they are dropped where they come from, and only
# those: any other warning goes to the log (``logging.captureWarnings`` at the edge).
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh\.")

from agentless.ssh.transport import Mode, SshSettings, SshTransport  # noqa: E402

__all__ = ["Mode", "SshSettings", "SshTransport"]
