"""Background tasks the process needs for as long as it serves (the informers, the trust
state sync).

Each retries its own failures; should one stop all the same (a bug, an exception its
loop does not expect), it must not stop silently: it is logged with its traceback and
the process turns not ready, saying which task stopped and why, so that the API
server routes admissions to replicas whose view of the cluster is still current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

LOG = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopped: dict[str, str] = {}
        """Why each task that stopped on its own did, by task name."""

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._ended)
        self._tasks.append(task)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        why = f"{type(error).__name__}: {error}" if error is not None else "it returned"
        self.stopped[task.get_name()] = why
        LOG.error(
            "background task %s stopped (%s): this replica is not ready until restarted",
            task.get_name(),
            why,
            exc_info=error,
        )

    def problem(self) -> str | None:
        """Why the process is not ready because of its tasks, or None."""
        if not self.stopped:
            return None
        return "; ".join(f"{name} stopped: {why}" for name, why in sorted(self.stopped.items()))

    async def cancel(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
