"""Agentless engine: reach hosts over SSH (or locally), run probes, parse their output.

This package never imports ``reconciler``; the reconciler builds on it.

Exceptions (all derive from :class:`agentless.errors.AgentlessError`)::

    AgentlessError
    ├── HostUnreachable        connect refused or timed out, login failed, host key rejected
    │   └── HostKeyError       unknown or changed host key (never accepted)
    ├── ConnectionLost         the connection dropped after the command was sent (may have run)
    └── CommandTimeout         a command outlived its timeout (carries the partial result)

Each says whether the command may have started (``started``); see :mod:`agentless.errors`.
"""
