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

import time
from dataclasses import replace

from daemon.audio.decode import read_frames
from daemon.jobs import Task
from daemon.pipeline import place_chunk
from daemon.tasks import ChunkDone, ConvertChunk, RunChunk, envelope

#: task function -> the function that does its work on samples alone, on any node
TRAVELS = {RunChunk.func: ConvertChunk.func}


class SamplesCourier:
    def on_host(self, task: Task) -> bool:
        """True for a task that must run on this host (it reads or writes whole files)."""
        return task.func not in TRAVELS

    def outbound(self, task: Task) -> tuple[Task, RunChunk]:
        """The task as it travels, and what ``inbound`` needs to finish it here (the chunk task)."""
        chunk_task: RunChunk = task.kwargs["task"]
        c = chunk_task.chunk
        samples = read_frames(chunk_task.audio, c.start, c.end)
        sent = envelope(ConvertChunk(samples, chunk_task.rate, chunk_task.work), group=task.group,
                        audio_seconds=task.audio_seconds)
        return replace(sent, timeout=task.timeout), chunk_task

    def inbound(self, chunk_task: RunChunk, value, seconds: float, pid: int) -> ChunkDone:
        """The converted samples written where the chunk task would have written them (the stitched
        file, in place); the result the chunk task itself returns, with when it ran."""
        result, info = value
        t1 = time.time()
        return replace(place_chunk(result, info, chunk_task, compute_seconds=seconds), t0=t1 - seconds, t1=t1, pid=pid)
