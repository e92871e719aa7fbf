"""How far the decode has got, told to the job's stream as it goes, through a FIFO in the job's work folder.

Later stages read the working audio while the decode still writes it.  The decode's worker (a
spawn child, or a Dask worker on the daemon's host: the decode always runs beside the job's
files) writes the frame count it has written after each block; a thread of the daemon reads it
and completes the future the job's stream waits on with its tasks' futures.  So the stream wakes
when there is more audio to hand out, instead of looking at the file every few milliseconds.

A report is 8 bytes (a signed little-endian frame count), under ``PIPE_BUF``, so it arrives whole.
The worker's end never blocks: with no reader (the job is gone) it tells nothing, and a full pipe
drops a report (the next one says more).  The daemon's end is opened read-write, so that it never
sees an end of file between two attempts of the decode; it is stopped by a report of ``STOP``.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from concurrent.futures import Future
from pathlib import Path

REPORT = struct.Struct("<q")
STOP = -1


class Teller:
    """The worker's end: ``tell(frames)`` after each block written; ``close()`` at the end."""

    def __init__(self, path: str):
        self.fd: int | None = None
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader any more; ENOENT: the job's folder is gone
                self.fd = None

    def tell(self, frames: int) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, REPORT.pack(frames))
        except BlockingIOError:
            pass  # the reader is behind: the next report says more
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Teller:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Listener:
    """The daemon's end.  ``past(frames)``: a future done once the decode reports more than ``frames``
    (its result: the frames reported).  ``open`` returns None where the folder holds no FIFO (then
    the stream looks at the file instead)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self.frames = 0
        self._lock = threading.Lock()
        self._waiting: tuple[int, Future] | None = None
        self._thread = threading.Thread(target=self._read, name=f"decode-progress-{path.parent.name}", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, path: Path) -> Listener | None:
        try:
            path.unlink(missing_ok=True)  # a FIFO left by an attempt before a crash
            os.mkfifo(path, 0o600)
            return cls(path, os.open(path, os.O_RDWR))
        except OSError:
            return None

    def past(self, frames: int) -> Future:
        fut: Future = Future()
        with self._lock:
            if self.frames > frames:
                fut.set_result(self.frames)
            else:
                self._waiting = (frames, fut)
        return fut

    def close(self) -> None:
        if self.fd < 0:
            return
        os.write(self.fd, REPORT.pack(STOP))
        self._thread.join()
        os.close(self.fd)
        self.fd = -1
        self.path.unlink(missing_ok=True)

    def _read(self) -> None:
        buf = b""
        while True:
            buf += os.read(self.fd, 4096)
            whole = len(buf) - len(buf) % REPORT.size
            reports = [r for (r,) in REPORT.iter_unpack(buf[:whole])]
            buf = buf[whole:]
            if STOP in reports:
                return
            with self._lock:
                self.frames = max(self.frames, *reports) if reports else self.frames
                if self._waiting is not None and self.frames > self._waiting[0]:
                    self._waiting[1].set_result(self.frames)
                    self._waiting = None
