"""The nanny of every worker process the daemon's cluster runs (a local cluster's, a node's)."""

from __future__ import annotations

import asyncio
from contextlib import suppress

from distributed import Nanny
from distributed.core import Status

from daemon.backends.dask.warm import TOPIC


class ReportingNanny(Nanny):
    """A nanny that tells the scheduler how its worker process ended (the daemon names the cause
    in the task's error: "signal SIGKILL", "exit code 3")."""

    async def _on_worker_exit(self, exitcode):
        address = self.worker_address
        if address and self.status == Status.running:
            with suppress(Exception):
                await asyncio.wait_for(self.scheduler.log_event(
                    topic=TOPIC, msg={"event": "worker_exit", "worker": address, "exitcode": exitcode}), 5)
        await super()._on_worker_exit(exitcode)
