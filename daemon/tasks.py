"""The stages' tasks and results: one frozen dataclass per task kind and per result.  A leaf.

A task names the pipeline function that runs it (``func``) and carries what that function
needs; the function takes the task and returns its result (``daemon/pipeline.py``).  The
backend's envelope (``daemon.jobs.Task``) carries a task as ``kwargs={"task": task}``
(``envelope``), so a backend stays ignorant of audio.

Tasks carry paths and small parameters; the job's audio moves through files in its work
folder.  Two exceptions, both named here: a chunk's seam frames come back in ``ChunkDone``
(``head``/``tail``, a crossfade's worth), and where the workers share no disk with the daemon
the courier sends a chunk's samples out and gets the converted ones back (``ConvertChunk``).

Every result says when and where it ran (``t0``/``t1``, wall clock, and ``pid``): a job's
timeline (the benchmark's) is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from daemon.jobs import Chunk, Task


def envelope(task, *, group: str = "", audio_seconds: float = 0.0) -> Task:
    """``task`` as a backend runs it: ``task.func(task=task)`` in a warm worker."""
    return Task(task.func, {"task": task}, group=group, audio_seconds=audio_seconds)


@dataclass(frozen=True, kw_only=True)
class Ran:
    """When (wall clock) and where a stage ran."""

    t0: float = 0.0
    t1: float = 0.0
    pid: int = 0


# ---- open and decode ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenJob:
    """Check the input (readable audio within the limits); the job's audio parameters."""

    func: ClassVar[str] = "daemon.pipeline:open_job"
    input: str
    work_dir: str


@dataclass(frozen=True)
class Opened(Ran):
    audio: str                  # the working audio (raw mono float32), not yet decoded
    sample_rate: int
    source: dict[str, Any]      # what the probe found (``AudioInfo.to_dict``)
    max_frames: int             # the longest chunk
    overlap: int                # frames shared by neighbours where a cut falls inside speech
    threshold: float            # the VAD's speech threshold
    window_s: float             # seconds per VAD probability
    speakers: dict | None = None  # what the parent needs to follow the job's speakers (None: off)


@dataclass(frozen=True)
class Decode:
    """The input, once, front to back, into the working audio; readers follow it as it grows."""

    func: ClassVar[str] = "daemon.pipeline:decode"
    source: dict[str, Any]
    audio: str
    progress: str = ""          # a FIFO the frames written are told to as they grow (``audio.progress``)


@dataclass(frozen=True)
class Decoded(Ran):
    frames: int
    duration: float


# ---- the VAD -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VadFeatures:
    """The VAD's stateless front end over segment ``index``, to ``out`` (.npy)."""

    func: ClassVar[str] = "daemon.pipeline:vad_features"
    audio: str
    rate: int
    index: int
    total: int | None           # frames of the working audio, None while it is decoded
    out: str


@dataclass(frozen=True)
class Features(Ran):
    index: int
    windows: int


@dataclass(frozen=True)
class VadProbabilities:
    """The VAD's LSTM over consecutive segments' features, from the state after the one before."""

    func: ClassVar[str] = "daemon.pipeline:vad_probabilities"
    features: tuple[str, ...]
    state: Any = None           # the LSTM's state (an array), None before the first segment


@dataclass(frozen=True, eq=False)
class Probabilities(Ran):
    probs: list                 # one array of probabilities per segment
    state: Any


# ---- chunks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkWork:
    """What the engine needs besides a chunk's samples; travels with them to any node.  A
    stage that works on the chunk (a background, a speaker) adds its fields here."""

    voice: str | None = None
    hints: dict | None = None   # per-chunk data for the engine, e.g. a transcript's phrases


@dataclass(frozen=True)
class RunChunk:
    """Convert ``chunk`` of the working audio and write it into the stitched file, in place."""

    func: ClassVar[str] = "daemon.pipeline:run_chunk"
    audio: str
    rate: int
    chunk: Chunk
    out: str                    # the stitched file
    kind: str                   # its format (``daemon/audio/stitch.py``)
    work: ChunkWork = field(default_factory=ChunkWork)


@dataclass(frozen=True, eq=False)
class ConvertChunk:
    """A chunk's samples themselves: what travels to a node that shares no disk with the daemon."""

    func: ClassVar[str] = "daemon.pipeline:convert_chunk"
    audio: Any                  # float32 samples
    rate: int
    work: ChunkWork = field(default_factory=ChunkWork)


@dataclass(frozen=True, eq=False)
class ChunkDone(Ran):
    index: int
    audio_seconds: float
    compute_seconds: float
    info: dict                  # what the engine reports (phrases, models, its stages' seconds)
    head: Any                   # the converted frames shared with the chunk before (the seam's)
    tail: Any                   # and with the chunk after


@dataclass(frozen=True)
class ChunkSpeakers:
    """Speaker embeddings of a chunk's speech ``windows`` (frame ranges from ``start``)."""

    func: ClassVar[str] = "daemon.pipeline:chunk_speakers"
    audio: str
    rate: int
    start: int
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)
class SpeakersFound(Ran):
    embeddings: Any             # one row per window
    model: dict                 # the speaker model's description, for the sidecar


# ---- the output --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncodeSegment:
    """Frames [lo, hi) of the stitched audio to codec frames ``skip`` … ``skip + keep`` in ``out``."""

    func: ClassVar[str] = "daemon.pipeline:encode_segment"
    stitched: str
    ext: str
    rate: int
    lo: int
    hi: int
    skip: int
    keep: int | None
    out: str


@dataclass(frozen=True)
class Encoded(Ran):
    out: str
    frames: int
    extradata: bytes = b""


@dataclass(frozen=True)
class CheckOutput:
    """Read the finished file back before it is published, named as ``name`` in errors."""

    func: ClassVar[str] = "daemon.pipeline:check_output"
    path: str
    frames: int
    rate: int
    speech_seconds: float
    name: str


@dataclass(frozen=True)
class Checked(Ran):
    check: dict


@dataclass(frozen=True)
class SpeakText:
    """A ``.txt`` file alone, read aloud."""

    func: ClassVar[str] = "daemon.pipeline:speak_text"
    input: str
    work_dir: str
    output: str
    voice: str | None = None


@dataclass(frozen=True)
class Spoken(Ran):
    output: str                 # the finished file, in the job's work folder
    duration: float
    sidecar: dict | None        # what the output's sidecar holds
    check: dict
    compute_seconds: float
    sample_rate: int
