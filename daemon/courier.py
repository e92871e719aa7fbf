"""What travels to a Dask worker that shares no disk with the daemon (VOICE_DAEMON_SHARED_STORAGE=false).

The spool stays on the daemon's host and only the daemon's own processes touch it, so crash
recovery is what it is with the local pool.  A chunk task names a frame range of the working
WAV and an output path: on its way out the courier reads those frames here and sends the
samples (``daemon.pipeline:convert_chunk``); the converted samples come back and the courier
writes them to the task's output path, here, as the chunk task itself would have.

Every other stage needs the whole file (decode and the VAD plan, stitch and encode, a text read
aloud): ``on_host`` says so, and the Dask backend runs it in a warm worker on this host.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.jobs import Task
from daemon.pipeline import read_frames, write_chunk

#: task function -> the function that does its work on samples alone, on any node
TRAVELS = {"daemon.pipeline:run_chunk": "daemon.pipeline:convert_chunk"}


class SamplesCourier:
    def on_host(self, task: Task) -> bool:
        """True for a task that must run on this host (it reads or writes whole files)."""
        return task.func not in TRAVELS

    def outbound(self, task: Task) -> tuple[Task, Any]:
        """The task as it travels, and what ``inbound`` needs to finish it here."""
        k = task.kwargs
        audio, rate = read_frames(k["wav"], k["start"], k["end"])
        kwargs = {"audio": audio, "rate": rate, "voice": k.get("voice"), "hints": k.get("hints")}
        context = {"out": k["out"], "index": k["index"], "rate": rate, "frames": len(audio)}
        return replace(task, func=TRAVELS[task.func], kwargs=kwargs), context

    def inbound(self, context: dict, value, seconds: float, pid: int) -> dict:
        """The converted samples written where the chunk task would have written them; the value
        the chunk task itself returns."""
        result, info = value
        write_chunk(context["out"], result, context["rate"])
        return {"out": context["out"], "index": context["index"], "audio_seconds": context["frames"] / context["rate"],
                "compute_seconds": seconds, "info": info, "pid": pid}
