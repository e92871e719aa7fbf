"""A job's steps as a timeline: what ran when, where, and after what (the benchmark's).

``run_job(..., steps=Timeline())`` tells it of every step as it ends; ``steps`` is then a
list of ``{"id", "stage", "t0", "t1", "where", "after", ...}`` (``where``: a worker's pid or
"parent"; ``after``: the ids of the steps it waited for), which ``daemon/bench/long.py``
replays to find the serial fraction and the critical path.
"""

from __future__ import annotations

from daemon.jobs import TaskResult
from daemon.stream import Steps


class Timeline(Steps):
    def __init__(self):
        self.steps: list[dict] = []
        self._open: int | None = None
        self._features: dict[int, int] = {}      # VAD segment -> its step
        self._lstm: int | None = None            # the last LSTM step
        self._chunks: dict[int, int | None] = {}  # chunk -> the step it waited for, then its own
        self._stitch: int | None = None          # the last stitch step
        self._stitched: list[tuple[int, int]] = []  # (frames final after it, stitch step)
        self._encodes: list[int] = []
        self._join = self._check = None

    # ---- what the stream tells -----------------------------------------------------------------
    def opened(self, res: TaskResult) -> None:
        self._open = self._worker("open", res, [])

    def decoded(self, res: TaskResult, frames: int) -> None:
        self._worker("decode", res, [self._open], frames=frames)

    def features(self, res: TaskResult, segment: int, decoded_to: int) -> None:
        self._features[segment] = self._worker("vad", res, [self._open], decoded=decoded_to)

    def probabilities(self, res: TaskResult, segments: list[int]) -> None:
        self._lstm = self._worker("lstm", res, [self._features.pop(k) for k in segments] + [self._lstm])

    def planned(self, chunk: int) -> None:
        self._chunks[chunk] = self._lstm  # replaced by the chunk's own step when it is done

    def speakers(self, res: TaskResult, chunk: int) -> None:
        self._chunks[chunk] = self._worker("speakers", res, [self._chunks[chunk]])

    def converted(self, res: TaskResult, chunk: int) -> None:
        self._chunks[chunk] = self._worker("chunk", res, [self._chunks[chunk]])

    def stitched(self, t0: float, t1: float, chunks: range, frames: int) -> None:
        self._stitch = self._parent("stitch", t0, t1, [self._chunks[i] for i in chunks] + [self._stitch], frames=frames)
        self._stitched.append((frames, self._stitch))

    def encoded(self, res: TaskResult, hi: int) -> None:
        stitched = next(step for frames, step in self._stitched if frames >= hi)
        self._encodes.append(self._worker("encode", res, [stitched]))

    def joined(self, t0: float, t1: float, encoder_cpu: float) -> None:
        self._join = self._parent("join", t0, t1, [self._stitch, *self._encodes], encoder_cpu=encoder_cpu)

    def checked(self, res: TaskResult) -> None:
        self._check = self._worker("check", res, [self._join])

    def published(self, t0: float, t1: float) -> None:
        self._parent("publish", t0, t1, [self._check])

    # ---- steps ---------------------------------------------------------------------------------
    def _worker(self, stage: str, res: TaskResult, after: list, **extra) -> int:
        return self._add(stage, res.value.t0, res.value.t1, res.worker_pid, after, extra)

    def _parent(self, stage: str, t0: float, t1: float, after: list, **extra) -> int:
        return self._add(stage, t0 or t1, t1, "parent", after, extra)

    def _add(self, stage, t0, t1, where, after, extra) -> int:
        self.steps.append({"id": len(self.steps), "stage": stage, "t0": t0, "t1": t1, "where": where,
                           "after": [a for a in after if a is not None], **extra})
        return len(self.steps) - 1
