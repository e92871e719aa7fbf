"""What travels to a Dask worker that shares no disk with the daemon (VOICE_DAEMON_SHARED_STORAGE=false).

The spool stays on the daemon's host and only the daemon's own processes touch it, so crash
recovery is what it is with the local pool.  A chunk task names a frame range of the job's
working audio and the stitched file: on its way out the courier reads those frames here and
sends the samples (``daemon.pipeline:convert_chunk``); the converted samples come back and the
courier writes them into the stitched file, here, in place, as the chunk task itself would have.

Every other stage reads or writes the job's files (decode, the VAD's segments and its LSTM,
encode segments, the output check, a text read aloud): ``on_host`` says so, and the Dask backend
runs it in a warm worker on this host.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import replace
from typing import Any

from daemon.audio.decode import read_frames
from daemon.jobs import Task
from daemon.pipeline import place_chunk, run_chunk

#: task function -> the function that does its work on samples alone, on any node
TRAVELS = {"daemon.pipeline:run_chunk": "daemon.pipeline:convert_chunk"}
#: The chunk task's frame range: read here, its samples travel instead.
FRAME_RANGE = ("audio", "start", "end")
#: What ``place_chunk`` needs to write the result here (with the chunk task's defaults); ``rate``
#: travels too.  Every other argument of the chunk task travels as it is, whatever it is.
_DEFAULTS = {name: p.default for name, p in inspect.signature(run_chunk).parameters.items()}
PLACE = tuple(name for name, p in inspect.signature(place_chunk).parameters.items()
              if p.kind is p.KEYWORD_ONLY and name != "compute_seconds")


class SamplesCourier:
    def on_host(self, task: Task) -> bool:
        """True for a task that must run on this host (it reads or writes whole files)."""
        return task.func not in TRAVELS

    def outbound(self, task: Task) -> tuple[Task, Any]:
        """The task as it travels, and what ``inbound`` needs to finish it here."""
        k = task.kwargs
        kwargs = {key: value for key, value in k.items() if key not in FRAME_RANGE and key not in PLACE}
        kwargs.update(audio=read_frames(k["audio"], k["start"], k["end"]), rate=k["rate"])
        context = {key: k.get(key, _DEFAULTS.get(key)) for key in PLACE}
        return replace(task, func=TRAVELS[task.func], kwargs=kwargs), context

    def inbound(self, context: dict, value, seconds: float, pid: int) -> dict:
        """The converted samples written where the chunk task would have written them (the stitched
        file, in place); the value the chunk task itself returns, with when it ran."""
        result, info = value
        t1 = time.time()
        return {**place_chunk(result, info, compute_seconds=seconds, **context),
                "t0": t1 - seconds, "t1": t1, "pid": pid}
