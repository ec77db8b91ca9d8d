"""Stopping the tasks a pipeline component owns.

This module never leaves a task running behind its owner's ``stop``: it cancels every task, then
awaits each until it has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has finished (its cancellation swallowed)."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with suppress(asyncio.CancelledError):
            await t
