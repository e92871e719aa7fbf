"""The output file, written while later chunks are still converting: one way per format.

Chunk tasks write their samples straight into the job's stitched file (``stitch.py``); the
output learns how far that file is final from its start (``advance``) and makes the output of it.

    wav               the stitched file is the output (PCM_16): no encoder worth the name
    mp3, m4a          lossy and slow (LAME 0.012, FFmpeg's AAC 0.026 s a second of 48 kHz audio on
                      one core): ``segments`` hands out pieces of the stitched audio (raw float32)
                      as pool tasks (``daemon.pipeline:encode_segment``) once they are final;
                      ``finish`` joins their frames (``mp3.py``, ``aac.py``)
    flac, ogg, opus   one ``ffmpeg`` child process fed the stitched audio as it becomes final, by a
                      thread of its own (FLAC 0.002; Vorbis and Opus do not join frame by frame
                      without touching the bit stream's state, so they stay one stream)

Everything is written inside the job's work folder; ``finish`` returns the finished file and
the caller publishes it.  Nothing here blocks the caller on an encoder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.audio import aac, mp3
from daemon.audio.decode import read_frames
from daemon.audio.io import OPUS_RATES
from daemon.audio.stitch import finish_file, start_file
from daemon.errors import OutputError

SEGMENT_SECONDS = 30.0
SEGMENTED = {"mp3": mp3, "m4a": aac}
STREAMED = {  # ffmpeg output options
    "flac": ["-c:a", "flac", "-sample_fmt", "s16"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "4"],
    "opus": ["-c:a", "libopus", "-b:a", "64k"],
}
FEED_BLOCK = 1 << 16


@dataclass(frozen=True)
class Segment:
    """Encode frames [lo, hi) of the stitched audio, keep the codec frames skip … skip+keep."""

    index: int
    lo: int
    hi: int
    skip: int
    keep: int | None   # None: every frame to the end (the last segment)
    start: int         # the segment's own first sample (lo + skip frames)


def open_output(work: Path, ext: str, rate: int):
    """The writer of ``ext`` (``writer_for``'s name) for a job whose work folder is ``work``."""
    if ext == "opus" and rate not in OPUS_RATES:
        raise OutputError(f"output.{ext}", f"Opus cannot store {rate} Hz; use one of {OPUS_RATES} (VOICE_DAEMON_SAMPLE_RATE)")
    if ext == "mp3" and rate not in mp3.RATES:
        raise OutputError(f"output.{ext}", f"MP3 cannot store {rate} Hz; use one of {sorted(mp3.RATES)} "
                                           "(VOICE_DAEMON_SAMPLE_RATE)")
    if ext == "wav":
        return WavOutput(work, rate)
    if ext in SEGMENTED:
        return SegmentedOutput(work, ext, rate)
    return StreamedOutput(work, ext, rate)


class _Output:
    segmented = False
    all_segments_out = True  # no encode segment left to hand out
    cpu_seconds: float | None = None  # an encoder process's CPU time, once it has finished
    kind = "f32"

    def __init__(self, work: Path, ext: str, rate: int):
        self.ext, self.rate = ext, rate
        self.path = Path(work) / f"output.{ext}"
        self.raw = str(Path(work) / "stitched.f32")
        self.frames = 0  # the stitched audio is final up to here
        start_file(self.stitched, self.kind, rate)

    @property
    def stitched(self) -> str:
        """The file chunk tasks write into (``stitch.write_frames`` of ``kind``)."""
        return self.raw

    def advance(self, frames: int) -> None:
        self.frames = frames

    def segments(self, total: int | None) -> list[Segment]:
        return []

    def abort(self) -> None:
        pass


class WavOutput(_Output):
    kind = "wav16"

    def __init__(self, work: Path, rate: int):
        super().__init__(work, "wav", rate)

    @property
    def stitched(self) -> str:
        return str(self.path)

    def finish(self, total: int) -> Path:
        finish_file(self.stitched, self.kind, self.rate, total)
        return self.path


class SegmentedOutput(_Output):
    """mp3, m4a: segments encoded by pool tasks, joined here."""

    segmented = True

    def __init__(self, work: Path, ext: str, rate: int):
        super().__init__(work, ext, rate)
        self.codec = SEGMENTED[ext]
        self.frame = mp3.frame_size(rate) if ext == "mp3" else aac.FRAME
        self.step = max(1, int(SEGMENT_SECONDS * rate) // self.frame) * self.frame
        self._next, self._all_out = 0, False
        self._parts: dict[int, str] = {}
        self.extradata = b""

    def segments(self, total: int | None) -> list[Segment]:
        """Segments whose audio (and margin) is final, not handed out before.  ``total``: the
        job's length once known (the last segment waits for it)."""
        out, margin = [], self.codec.MARGIN_FRAMES * self.frame
        while not self._all_out:
            start = self._next * self.step
            end = start + self.step
            last = total is not None and end >= total
            hi = total if last else end + margin if total is None else min(end + margin, total)
            if self.frames < hi:
                break
            lo = max(0, start - margin)
            out.append(Segment(self._next, lo, hi, (start - lo) // self.frame,
                               None if last else self.step // self.frame, start))
            self._next += 1
            self._all_out = last
        return out

    @property
    def all_segments_out(self) -> bool:
        return self._all_out

    def add_part(self, segment: Segment, path: str, extradata: bytes = b"") -> None:
        self._parts[segment.index] = path
        self.extradata = self.extradata or extradata

    def finish(self, total: int) -> Path:
        parts = [self._parts[i] for i in range(len(self._parts))]
        if self.ext == "mp3":
            counts = [_part_stats(p) for p in parts]
            first = _read_part(parts[0])[0]
            with open(self.path, "wb") as out:
                out.write(mp3.info_frame(first, sum(n for n, _ in counts), sum(b for _, b in counts), total))
                for p in parts:
                    out.write(b"".join(_read_part(p)))
        else:
            aac.mux((f for p in parts for f in _read_part(p)), str(self.path), self.rate, total)
        for p in [self.raw, *parts]:
            Path(p).unlink(missing_ok=True)
        return self.path


def write_part(path: str, frames: list[bytes]) -> None:
    """Codec frames, each behind its 4-byte length (raw AAC frames do not say where they end)."""
    with open(path, "wb") as f:
        for fr in frames:
            f.write(len(fr).to_bytes(4, "big") + fr)


def _part_stats(path: str) -> tuple[int, int]:
    """(frames, bytes of frames) of a part file."""
    size = Path(path).stat().st_size
    n = len(_read_part(path))
    return n, size - 4 * n


def _read_part(path: str) -> list[bytes]:
    data, out, i = Path(path).read_bytes(), [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def encode_frames(ext: str, samples: np.ndarray, rate: int, skip: int, keep: int | None) -> tuple[list[bytes], bytes]:
    """One segment's codec frames and the stream's codec configuration (AAC)."""
    if ext == "mp3":
        return mp3.encode_segment(samples, rate, skip, keep), b""
    return aac.encode_segment(samples, rate, skip, keep)


class StreamedOutput(_Output):
    """flac, ogg, opus: one ffmpeg child, fed by a thread from the stitched file as it becomes final."""

    def __init__(self, work: Path, ext: str, rate: int):
        super().__init__(work, ext, rate)
        exe = shutil.which("ffmpeg")
        if not exe:
            raise OutputError(self.path, f"writing .{ext} needs ffmpeg: install it (apt-get install ffmpeg)")
        cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(rate),
               "-ac", "1", "-i", "pipe:0", *STREAMED[ext],
               # bitexact: no random Ogg serial number, no version string: a retry writes the same bytes
               "-fflags", "+bitexact", "-flags:a", "+bitexact", str(self.path)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        self._ready = threading.Condition()
        self._end: int | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, name=f"encode-{ext}", daemon=True)
        self._thread.start()

    def advance(self, frames: int) -> None:
        with self._ready:
            self.frames = frames
            self._ready.notify()

    def _feed(self) -> None:
        sent = 0
        try:
            while True:
                with self._ready:
                    while self._end is None and self.frames <= sent:
                        self._ready.wait()
                    upto = self.frames if self._end is None else self._end
                if upto <= sent:
                    break
                while sent < upto:
                    n = min(FEED_BLOCK, upto - sent)
                    self._proc.stdin.write(read_frames(self.raw, sent, sent + n).tobytes())
                    sent += n
        except BaseException as exc:  # noqa: BLE001 - a broken pipe: ffmpeg's own message says why
            self._error = exc
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def finish(self, total: int) -> Path:
        with self._ready:
            self._end = self.frames
            self._ready.notify()
        self._thread.join()
        err = self._proc.stderr.read().decode("utf-8", "replace").strip()
        if self._reap() != 0 or self._error is not None:
            raise OutputError(self.path, f"ffmpeg could not write .{self.ext}: {err[-300:] or self._error}")
        Path(self.raw).unlink(missing_ok=True)
        return self.path

    def _reap(self) -> int:
        """Wait for ffmpeg; keep its CPU time (the benchmark counts the encoder's work)."""
        _, status, usage = os.wait4(self._proc.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self._proc.stderr.close()
        return self._proc.returncode

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        with self._ready:
            self._end = 0
            self._ready.notify()
        self._thread.join()
        self._proc.wait()
        self._proc.stderr.close()
