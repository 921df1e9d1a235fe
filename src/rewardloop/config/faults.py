"""Fault injection for the crash-safety tests: die at a named step when the environment says so.

``REWARDLOOP_FAULT=registered`` makes the process exit (``os._exit``, no cleanup, as a kill would)
when it reaches ``fault_point("registered")``. Unset — always in production — it does nothing.
"""

from __future__ import annotations

import os

ENV = "REWARDLOOP_FAULT"
EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def fault_point(step: str) -> None:
    """Exit the process at once when ``$REWARDLOOP_FAULT`` names ``step``."""
    if os.environ.get(ENV) == step:
        os._exit(EXIT_CODE)


__all__ = ["ENV", "EXIT_CODE", "fault_point"]
