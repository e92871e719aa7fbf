"""One job as a stream: every stage starts as soon as its input exists.

    open_job ─▶ decode ··········▶ the working audio grows on disk (each block told through a FIFO)
                  └─ vad_features(segment k), as soon as its audio is decoded (any worker, any order)
                       └─ vad_probabilities(k, k+1, …), in order, carrying the LSTM's state
                            └─ StreamPlanner: each cut as soon as it is certain ─▶ run_chunk(i)
                                 └─ each chunk writes itself into the stitched file; seams crossfaded here
                                      └─ the output: mp3/m4a encode_segment(j) once j is final
    then: the output's last frames, read back and checked, the sidecar's content

``run_job`` knows nothing about processes: it is given a backend's ``submit(Task) -> Future``
(``daemon.backends``: the warm pool's, Dask's, or ``InlineRunner``'s, which runs each task at once in this process; the schedule
is then one task after another and the output is the same).  Every partial product lives in
``work_dir``, the finished output too: ``run_job`` writes nothing anywhere else, and its caller
publishes (the spool's commit; ``convert.publish_job`` for `convert` and the benchmark).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from daemon import log
from daemon.audio import bed, vad
from daemon.audio import io as aio
from daemon.audio import outputs as enc
from daemon.audio.decode import frames_ready
from daemon.audio.diarization import JobSpeakers
from daemon.audio.plan import StreamPlanner
from daemon.audio.progress import Listener
from daemon.audio.publish import sidecar_content
from daemon.audio.stitch import Seams
from daemon.backends import Submit, first_done, result_of
from daemon.jobs import Chunk, TaskResult
from daemon.tasks import (
    CheckOutput,
    ChunkDone,
    ChunkSpeakers,
    ChunkWork,
    Decode,
    Decoded,
    Encoded,
    EncodeSegment,
    OpenJob,
    Probabilities,
    RunChunk,
    SpeakersFound,
    SpeakText,
    Spoken,
    VadFeatures,
    VadProbabilities,
    envelope,
)

CHARS_PER_SECOND = 15  # rough speaking rate: scales a text job's deadline
LOOK = 0.25            # seconds between looks at the working audio where the decode's reports cannot reach
                       # (under base.SIGNAL_LOOK: the wait also acts on a signal in time)
BYTES_PER_SECOND = 4000  # 32 kbit/s: a lower bound of any codec we read, to bound a length by a size


def run_job(submit: Submit, input: str | Path, output: str | Path, work_dir: str | Path, *,
            voice: str | None = None, group: str = "", transcripts: bool = False,
            progress: Callable[[str, float], None] | None = None, parallelism: int = 2,
            steps: Steps | None = None) -> dict:
    """Convert ``input`` through ``submit`` into a finished, checked file in ``work_dir``, in the
    format of ``output`` (the name it will be published under, and named as in errors); return
    figures, with ``output`` the finished file and ``sidecar`` what the output's sidecar holds
    (None: the engine reported nothing).

    ``transcripts``: read a transcript beside the input (``.srt``, ``.vtt``, ``.txt``) and hand
    each chunk its phrases.  ``progress(stage, audio_seconds_done, chunks_done=, chunks_total=,
    audio_seconds_total=)`` is called when the first chunk is planned ("prepared"), after each
    chunk ("chunk") and when the last frames are written and checked ("finishing");
    ``chunks_total`` is None until the whole file is planned.  ``parallelism`` (the workers there are) sets how far
    the VAD may run ahead of the chunks.  ``steps``: told of every step as it ends (the
    benchmark's timeline, ``daemon/bench/timeline.py``); by default nobody is.
    """
    t0 = time.monotonic()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if Path(input).suffix.lower() == ".txt":  # a text alone is itself the job
        return _speak(submit, input, output, work, voice=voice, group=group, t0=t0)
    transcript = read_transcript(Path(input)) if transcripts else None
    job = _Stream(submit, str(input), Path(output), work, voice=voice, group=group, transcript=transcript,
                  progress=progress, parallelism=parallelism, steps=steps or Steps())
    fig = job.run()
    wall = time.monotonic() - t0
    fig.update(wall_seconds=round(wall, 3), rtf=round(wall / fig["audio_seconds"], 4) if fig["audio_seconds"] else None)
    return fig


class Steps:
    """What the stream tells of its steps as they end, to whoever keeps a timeline (the
    benchmark's ``Timeline``); this one keeps nothing.  ``res.value`` says when and where a
    worker's step ran; the parent's own steps (stitch, join, publish) come with their times."""

    def opened(self, res: TaskResult) -> None: ...

    def decoded(self, res: TaskResult, frames: int) -> None: ...

    def features(self, res: TaskResult, segment: int, decoded_to: int) -> None: ...

    def probabilities(self, res: TaskResult, segments: list[int]) -> None: ...

    def planned(self, chunk: int) -> None: ...

    def speakers(self, res: TaskResult, chunk: int) -> None: ...

    def converted(self, res: TaskResult, chunk: int) -> None: ...

    def stitched(self, t0: float, t1: float, chunks: range, frames: int) -> None: ...

    def encoded(self, res: TaskResult, hi: int) -> None: ...

    def joined(self, t0: float, t1: float, encoder_cpu: float) -> None: ...

    def checked(self, res: TaskResult) -> None: ...

    def published(self, t0: float, t1: float) -> None: ...


class _Stream:
    def __init__(self, submit: Submit, input: str, output: Path, work: Path, *, voice, group, transcript,
                 progress, parallelism: int, steps: Steps):
        self.submit, self.input, self.output, self.work = submit, input, output, work
        self.voice, self.group, self.transcript, self.progress = voice, group, transcript, progress
        self.parallelism = max(1, parallelism)
        self.pending: dict[Future, Callable[[TaskResult], None]] = {}  # -> what to do with its result
        self.steps = steps
        self.worker_pids: set[int] = set()
        self.attempts = 0
        self.total: int | None = None       # frames of the working audio, once decoded
        self.features: dict[int, str] = {}  # VAD segment -> its features file
        self.next_segment = self.next_probs = 0
        self.lstm_state = None
        self.lstm_busy = False
        self.chunks: dict[int, Chunk] = {}
        self.chunks_done = 0
        self.done_seconds = self.chunk_compute = 0.0
        self.speech_seconds = 0.0           # what the VAD took for speech: the output check's floor
        self.infos: dict[int, dict] = {}
        self.out = None
        self.speakers: JobSpeakers | None = None
        self.speaker_model: dict | None = None   # the speaker model's description, for the sidecar
        self.to_embed: list[tuple[Chunk, list]] = []  # chunks planned, their speakers task not yet submitted
        self.embedding = 0                            # speakers tasks submitted and not yet back
        self.listener: Listener | None = None         # the decode's reports of its progress

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        (self.work / "vad").mkdir(exist_ok=True)
        opened = self._call(OpenJob(self.input, str(self.work)),
                            os.path.getsize(self.input) / BYTES_PER_SECOND if os.path.exists(self.input) else 0.0)
        p = self.params = opened.value
        self.audio, self.rate = p.audio, p.sample_rate
        self.steps.opened(opened)
        self.out = enc.open_output(self.work, aio.writer_for(self.output), self.rate)
        self.planner = StreamPlanner(self.rate, p.max_frames, p.overlap, p.window_s, threshold=p.threshold)
        self.ahead = 2 * self.parallelism * max(p.max_frames, vad.segment_frames(1, self.rate)[0])
        self.seams = Seams(self.out.stitched, self.out.kind)
        if p.speakers:
            self.speakers = JobSpeakers(p.speakers, self.rate, p.window_s, p.threshold, self.voice)
        self.listener = Listener.open(self.work / "decode.fifo")
        try:
            self._go(Decode(p.source, self.audio, str(self.listener.path) if self.listener else ""),
                     p.source["duration"], self._on_decode)
            while not self._finished():
                self._schedule()
                if not self.pending:
                    raise RuntimeError(f"the job's stream stalled: {self._where()}")
                for fut in self._wait():
                    self.pending.pop(fut)(self._took(fut.result()))
            return self._finish()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._stop_listening()

    def _wait(self) -> set[Future]:
        """The tasks done, once one is.  While the decode runs, the loop also wakes when it reports
        more audio (``audio/progress.py``), or, where its reports cannot reach (no FIFO here, or a
        decode on another node of a shared disk), every ``LOOK`` seconds to look at the file."""
        if self.total is not None:
            self._stop_listening()
            return first_done(self.pending)
        more = [self.listener.past(frames_ready(self.audio))] if self.listener is not None else []
        done, _ = wait([*self.pending, *more], timeout=LOOK, return_when=FIRST_COMPLETED)
        return done.difference(more)

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def _finished(self) -> bool:
        return (self.planner_done and self.chunks_done == len(self.chunks) and not self.pending
                and self.out.all_segments_out)

    def _where(self) -> str:
        return (f"decoded {self.total}, VAD {self.next_probs}/{self.next_segment} segments, "
                f"chunks {self.chunks_done}/{len(self.chunks)}")

    @property
    def planner_done(self) -> bool:
        return self.total is not None and self.next_probs >= vad.segment_count(self.total, self.rate)

    def _schedule(self) -> None:
        """Submit what can run now: VAD segments whose audio is decoded (up to ``ahead`` past the
        plan), the LSTM over the next few segments, encode segments that are stitched."""
        decoded = self.total if self.total is not None else frames_ready(self.audio)
        segments = vad.segment_count(self.total, self.rate) if self.total is not None else None
        while segments is None or self.next_segment < segments:
            k = self.next_segment
            start, _ = vad.segment_frames(k, self.rate)
            _, hi = vad.read_span(k, self.rate, self.total)
            if (self.total is None and decoded < hi) or start > self.planner.planned_to + self.ahead:
                break
            self._go(VadFeatures(self.audio, self.rate, k, self.total, str(self.work / "vad" / f"{k:05d}.npy")),
                     (hi - start) / self.rate, partial(self._on_vad, k, hi))
            self.next_segment += 1
        if not self.lstm_busy and self.next_probs in self.features:
            # The segments scored so far in order, at most one per worker: the chunks they plan
            # reach the workers before the rest of the file is scored (a fast decode has every
            # segment's features at once; scoring them all first would hold the first chunk back).
            run = []
            while self.next_probs + len(run) in self.features and len(run) < self.parallelism:
                run.append(self.next_probs + len(run))
            self.lstm_busy = True
            self._go(VadProbabilities(tuple(self.features[k] for k in run), self.lstm_state),
                     len(run) * vad.SEGMENT_WINDOWS * vad.WINDOW / vad.VAD_RATE, partial(self._on_lstm, run))
        for seg in self.out.segments(self.total):
            self._go(EncodeSegment(self.out.raw, self.out.ext, self.rate, seg.lo, seg.hi, seg.skip, seg.keep,
                                   str(self.work / f"enc-{seg.index:05d}.part")),
                     (seg.hi - seg.lo) / self.rate, partial(self._on_encode, seg))

    def _on_decode(self, res: TaskResult) -> None:
        v: Decoded = res.value
        self.total = v.frames
        self.steps.decoded(res, self.total)

    def _on_vad(self, index: int, hi: int, res: TaskResult) -> None:  # res.value: Features
        self.features[index] = str(self.work / "vad" / f"{index:05d}.npy")
        self.steps.features(res, index, hi)

    def _on_lstm(self, segments: list[int], res: TaskResult) -> None:
        v: Probabilities = res.value
        self.steps.probabilities(res, segments)
        self.lstm_state, self.lstm_busy = v.state, False
        for k, probs in zip(segments, v.probs):
            self.speech_seconds += float((np.asarray(probs) >= self.params.threshold).sum() * self.params.window_s)
            self._plan(self.planner.add(probs))
            Path(self.features.pop(k)).unlink(missing_ok=True)
            self.next_probs += 1
        if self.planner_done:
            self._plan(self.planner.finish(self.total))

    def _on_chunk(self, chunk: Chunk, res: TaskResult) -> None:
        v: ChunkDone = res.value
        self.steps.converted(res, chunk.index)
        self.infos[chunk.index] = v.info or {}
        self.chunks_done += 1
        self.done_seconds += v.audio_seconds
        self.chunk_compute += v.compute_seconds
        self._stitch(chunk, v.head, v.tail)
        self._tell("chunk")

    def _on_encode(self, segment, res: TaskResult) -> None:
        v: Encoded = res.value
        self.out.add_part(segment, v.out, v.extradata)
        self.steps.encoded(res, segment.hi)

    def _plan(self, chunks: list[Chunk]) -> None:
        for c in chunks:
            if not self.chunks:
                self._tell("prepared")
            self.chunks[c.index] = c
            self.steps.planned(c.index)
            if self.speakers is None:
                self._run_chunk(c, None)
                continue
            # Its speakers first: the chunk runs once it and every chunk before it have theirs.
            wins = self.speakers.plan(c.index, c.start, c.end, *self.planner.probs_between(c.start, c.end))
            self.to_embed.append((c, wins))
        self._embed_next()

    def _embed_next(self) -> None:
        """A few speakers tasks at a time: a chunk's run, submitted when its speakers are in,
        then waits in the queue behind these few, not behind the whole file's."""
        while self.to_embed and self.embedding < self.parallelism:
            c, wins = self.to_embed.pop(0)
            self.embedding += 1
            self._go(ChunkSpeakers(self.audio, self.rate, c.start, tuple(wins)),
                     sum(e - s for s, e in wins) / self.rate, partial(self._on_speakers, c))

    def _on_speakers(self, chunk: Chunk, res: TaskResult) -> None:
        v: SpeakersFound = res.value
        self.steps.speakers(res, chunk.index)
        self.speaker_model = v.model
        self.embedding -= 1
        offsets = {i: c.start / self.rate for i, c in self.chunks.items()}
        for i, turns in self.speakers.embedded(chunk.index, v.embeddings, offsets).items():
            self._run_chunk(self.chunks[i], turns)
        self._embed_next()

    def _run_chunk(self, c: Chunk, turns: list[dict] | None) -> None:
        start_s, end_s = c.start / self.rate, c.end / self.rate
        hints = chunk_hints(self.transcript, start_s, end_s) if self.transcript else None
        if turns is not None:
            hints = {**(hints or {}), "speakers": turns}
        self._go(RunChunk(self.audio, self.rate, c, self.out.stitched, self.out.kind, ChunkWork(self.voice, hints)),
                 end_s - start_s, partial(self._on_chunk, c))

    def _stitch(self, chunk: Chunk, head, tail) -> None:
        """A chunk is in the stitched file: write its seams, and tell the output how far the file
        is final (a step of its own on the timeline whenever that moves)."""
        t0, first = time.time(), self.seams.next
        self.seams.add(chunk, head, tail)
        if self.seams.next > first:
            self.steps.stitched(t0, time.time(), range(first, self.seams.next), self.seams.ready)
            self.out.advance(self.seams.ready)

    def _tell(self, stage: str) -> None:
        if self.progress:
            self.progress(stage, self.done_seconds, chunks_done=self.chunks_done,
                          chunks_total=len(self.chunks) if self.planner_done else None,
                          audio_seconds_total=round(self.params.source["duration"], 3))

    # ---- the end -------------------------------------------------------------------------------
    def _finish(self) -> dict:
        self._tell("finishing")
        t0 = time.time()
        self.seams.close(self.total)
        done = self.out.finish(self.total)
        t1 = time.time()
        # The last frames of the output (a streamed encoder's tail: the benchmark counts its CPU
        # time instead of this wait).
        self.steps.joined(t0, t1, self.out.cpu_seconds)
        # Read back before it is published, in a worker (a decode of the whole output).
        checked = self._call(CheckOutput(str(done), self.total, self.rate, self._speech_to_hear(), str(self.output)),
                             self.total / self.rate)
        self.steps.checked(checked)
        phrases, models = [], []
        for i in range(len(self.chunks)):
            info, offset = self.infos.get(i) or {}, self.chunks[i].start / self.rate
            for ph in info.get("phrases", []):
                phrases.append({**ph, "start": round(ph["start"] + offset, 3), "end": round(ph["end"] + offset, 3)})
            models += [m for m in info.get("models", []) if m not in models]
        found = self.speakers.sidecar() if self.speakers else None
        if found and self.speaker_model:
            models.append(self.speaker_model)
        background = bed.summarize([self.infos.get(i) or {} for i in range(len(self.chunks))])
        rttm = None
        if self.speakers and self.speakers.write_rttm:
            rttm = self.speakers.rttm(Path(self.input).stem)  # the file as its owner named it
        duration = self.total / self.rate
        return {
            "input": self.input,
            "output": str(done),
            "sidecar": sidecar_content(phrases, models, background, found),
            "audio_seconds": round(duration, 3),
            "chunks": len(self.chunks),
            "compute_seconds": round(self.chunk_compute, 3),
            "worker_pids": sorted(self.worker_pids),
            "attempts": self.attempts,
            "check": checked.value.check,
            "source": self.params.source,
            # What its caller publishes beside the output: the RTTM's text (None: none).
            **({"speakers": len(found["speakers"]), "rttm": rttm} if found else {}),
        }

    def _speech_to_hear(self) -> float:
        """Speech the output must not be silent over: what the VAD heard, unless the engine reports
        the phrases it spoke and spoke none (resynth recognised no words: silence is right)."""
        infos = [self.infos.get(i) or {} for i in range(len(self.chunks))]
        if infos and all("phrases" in info for info in infos) and not any(info["phrases"] for info in infos):
            return 0.0
        return self.speech_seconds

    def _abandon(self) -> None:
        for fut in self.pending:
            fut.cancel()
        # Tasks already running cannot be cancelled: let them end before the caller retries in
        # the same work folder (they would write the same paths).
        wait(list(self.pending))
        if self.out is not None:
            self.out.abort()

    # ---- tasks ---------------------------------------------------------------------------------------
    def _go(self, task, seconds: float, then: Callable[[TaskResult], None]) -> None:
        """Submit ``task``; ``then(result)`` is called by the loop when it is done."""
        self.pending[self.submit(envelope(task, group=self.group, audio_seconds=seconds))] = then

    def _call(self, task, seconds: float) -> TaskResult:
        return self._took(result_of(self.submit(envelope(task, group=self.group, audio_seconds=seconds))))

    def _took(self, res: TaskResult) -> TaskResult:
        self.worker_pids.add(res.worker_pid)
        self.attempts = max(self.attempts, res.attempts)
        return res


# ---- transcripts and text ------------------------------------------------------------------------
def find_transcript(input: Path) -> Path | None:
    for ext in aio.TRANSCRIPT_EXTENSIONS:
        p = input.with_suffix(ext)
        if p != input and p.is_file() and not p.is_symlink():
            return p
    return None


def read_transcript(input: Path) -> list[dict] | None:
    """The phrases of the transcript beside ``input`` (same stem), or None; InputError if it is bad."""
    if (path := find_transcript(input)) is None:
        return None
    from daemon.engines.resynth.transcript import load_transcript

    phrases = load_transcript(path)
    log.get().info("convert.transcript", path=str(path), phrases=len(phrases))
    return phrases


def chunk_hints(phrases: list[dict], start_s: float, end_s: float) -> dict:
    """Transcript phrases that start inside [start_s, end_s), re-timed to the chunk's start.

    Untimed phrases (a ``.txt`` transcript) go to every chunk whole: the resynth
    engine aligns them to what it recognises in the chunk and uses its part.  A timed
    transcript replaces recognition in every chunk (``timed``), one without a cue too."""
    if any(p.get("start") is None for p in phrases):
        return {"phrases": phrases}
    inside = [{**p, "start": p["start"] - start_s, "end": min(p["end"], end_s) - start_s}
              for p in phrases if start_s <= p["start"] < end_s]
    return {"phrases": inside, "timed": True}


def _speak(submit: Submit, input, output, work: Path, *, voice, group, t0) -> dict:
    res: TaskResult = result_of(submit(envelope(SpeakText(str(input), str(work), str(output), voice), group=group,
                                                audio_seconds=os.path.getsize(input) / CHARS_PER_SECOND)))
    v: Spoken = res.value
    wall = time.monotonic() - t0
    return {"input": str(input), "output": v.output, "sidecar": v.sidecar,
            "audio_seconds": round(v.duration, 3), "wall_seconds": round(wall, 3),
            "rtf": round(wall / v.duration, 4) if v.duration else None, "chunks": 1,
            "compute_seconds": round(v.compute_seconds, 3), "worker_pids": [res.worker_pid],
            "attempts": res.attempts, "check": v.check, "source": {"path": str(input), "format": "text"}}
