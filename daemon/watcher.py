"""Intake: which inbox files are complete audio, ready to be claimed.

Events from watchdog (closed after write, moved in, created) and a full scan at
start and every RESCAN_SECONDS only *nominate* paths (O(1) per event).  A checker
thread then decides: a file is ready once its size and mtime have not changed for
SETTLE_SECONDS and its audio header decodes.  A file that stays undecodable (or
empty) for ``BAD_SETTLE_FACTOR`` × SETTLE_SECONDS is handed over as bad, so the
supervisor can quarantine it; a copy that is merely slow keeps changing and is
never taken early.

Fast pick-up: a file its writer closed after writing (inotify's close-after-write) or
that was renamed into its name inside the inbox (rsync), unchanged since, whose header
agrees with its length (``daemon/audio/complete.py``), is taken once unchanged for
CLOSED_SETTLE_SECONDS instead.  Files seen without such an event (polling, NFS, a
``mv`` from an unwatched folder), or changed after it, wait the full settle.

Symbolic links are never followed: a link with an audio name is handed over as
``symlink`` (the supervisor moves the link itself to the failed folder, with a
reason); other links (folders, non-audio names) are ignored and logged once.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from daemon import log
from daemon.audio.complete import looks_complete
from daemon.audio.header import default_probe
from daemon.audio.io import AUDIO_EXTENSIONS
from daemon.audio.names import classify
from daemon.engines import abilities
from daemon.generation import Current

#: a file whose header will not decode is quarantined only after this many settle periods
BAD_SETTLE_FACTOR = 5
MIN_BAD_SETTLE = 1.0


_AUDIO = frozenset(AUDIO_EXTENSIONS)


@dataclass(frozen=True)
class Candidate:
    """A path the supervisor should claim: ``verdict`` "ready", or a reason to quarantine it."""

    path: Path
    rel: str
    verdict: str     # ready | symlink | empty | too_big | not_audio
    reason: str = ""
    size: int = 0


@dataclass
class _Seen:
    sig: tuple        # (size, mtime_ns, inode)
    since: float      # when this signature was first seen


#: a close-after-write (or rename-in) event came; the signature after it is not known yet
_CLOSED_PENDING = ()


class Settler:
    """The readiness rules, with no threads and an injectable clock (unit-testable)."""

    def __init__(self, inbox: Path, settle: float, max_bytes: int, *, probe=default_probe,
                 clock: Callable[[], float] = time.monotonic, text_jobs: bool | Callable[[], bool] = False,
                 closed_settle: float | None = None, complete: Callable[[Path], bool] = looks_complete):
        self.inbox = Path(inbox).absolute()
        # A writer's close (or a rename in) lets a consistent file go after this shorter settle.
        self.closed_settle = settle if closed_settle is None else min(closed_settle, settle)
        self.complete = complete
        self.closed: dict[Path, tuple] = {}  # path -> its signature right after the event
        self._verdicts: dict[Path, tuple[tuple, bool]] = {}  # path -> (signature, looks complete)
        # A lone .txt is read aloud by an engine that reads text: asked each time (a reload may
        # change the engine).
        self._text_jobs = text_jobs if callable(text_jobs) else (lambda: text_jobs)
        self.real_inbox = os.path.realpath(self.inbox)
        self.settle, self.max_bytes, self.probe, self.clock = settle, max_bytes, probe, clock
        self.bad_settle = max(settle * BAD_SETTLE_FACTOR, MIN_BAD_SETTLE)
        self.pending: dict[Path, _Seen | None] = {}
        self.handed: dict[Path, tuple] = {}   # path -> (signature, when) it was handed over
        self.log = log.get("watcher")
        self._logged: set[tuple[str, str]] = set()

    def nominate(self, path: Path, closed: bool = False) -> None:
        """``closed``: the event said the writer closed the file after writing (or renamed it in)."""
        path = Path(path)
        self.pending.setdefault(path, None)
        if closed:
            self.closed[path] = _CLOSED_PENDING

    def next_due(self) -> float | None:
        """Seconds until a closed file's short settle ends (the checker wakes then), or None."""
        now, due = self.clock(), None
        for path, sig in self.closed.items():
            seen = self.pending.get(path)
            left = seen.since + self.closed_settle - now if seen is not None and sig == seen.sig else 0.0
            if left > 0:  # past it: checked this turn already (taken, or not complete: full settle)
                due = left if due is None else min(due, left)
        return due

    def check_all(self) -> list[Candidate]:
        out = []
        for path in list(self.pending):
            result = self.check(path)
            if result is not None:
                out.append(result)
        return out

    def check(self, path: Path) -> Candidate | None:
        """Look at one pending path; a Candidate once it is decided, else None (keep waiting)."""
        now = self.clock()
        try:
            rel = path.relative_to(self.inbox).as_posix()
        except ValueError:
            self._drop(path)
            return None
        try:
            st = os.lstat(path)
        except OSError:  # gone (claimed, moved out, deleted)
            self._drop(path)
            self.handed.pop(path, None)
            return None
        kind = self._kind(path, rel, st)
        if kind is None:
            return None
        sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        if path in self.handed and self.handed[path][0] == sig:
            self._drop(path)  # already handed over, not claimed yet: don't hand it twice
            return None
        if stat.S_ISLNK(st.st_mode):
            return self._decide(path, rel, "symlink", "is a symbolic link; links are not followed", 0, sig)
        if not stat.S_ISREG(st.st_mode):
            self._drop(path)
            self.note("watcher.ignored", rel, "not a regular file", level="info")
            return None
        quiet = self._quiet(path, kind, sig, now)
        if quiet is None:
            return None
        return self._verdict(path, rel, kind, st.st_size, sig, quiet)

    def _kind(self, path: Path, rel: str, st: os.stat_result) -> str | None:
        """"audio" or "text" for a path that may become a job; None (noted) for one that cannot."""
        kind, why = classify(rel)
        if kind == "transcript" and self._text_jobs() and rel.lower().endswith(".txt") and not self._has_audio(path):
            kind = "text"
        if kind in ("audio", "text"):
            return kind
        self._drop(path)
        if stat.S_ISLNK(st.st_mode):
            self.note("watcher.ignored", rel, "a symbolic link; links are not followed")
        elif kind == "transcript":
            self._lone_transcript(path, rel)
        else:
            self.note("watcher.ignored", rel, why, level="debug")
        return None

    def _quiet(self, path: Path, kind: str, sig: tuple, now: float) -> float | None:
        """How long the file has been unchanged, once that is long enough to look inside; else None."""
        fast = self._closed_since(path, sig)
        seen = self.pending.get(path)
        if seen is None or seen.sig != sig:
            self.pending[path] = _Seen(sig, now)
            if not (fast and self.closed_settle <= 0):
                return None
            seen = self.pending[path]
        quiet = now - seen.since
        # A lone .txt waits longer: its audio may still be on its way (then it is a transcript).
        if kind == "text":
            wanted = self.bad_settle
        elif fast and quiet >= self.closed_settle and self._complete(path, sig):
            wanted = self.closed_settle
        else:
            wanted = self.settle
        return quiet if quiet >= wanted else None

    def _verdict(self, path: Path, rel: str, kind: str, size: int, sig: tuple, quiet: float) -> Candidate | None:
        """A settled file: ready, or refused with its reason (a bad one only once it is quiet long enough)."""
        if size > self.max_bytes:
            return self._decide(path, rel, "too_big", f"is {size} bytes, over the limit of {self.max_bytes} "
                                                      "(VOICE_DAEMON_MAX_INPUT_BYTES)", size, sig)
        if not self._inside_inbox(path):
            self._drop(path)
            self.note("watcher.outside_inbox", rel, "resolves outside the inbox", level="warning")
            return None
        if size == 0:
            problem = "is empty (0 bytes)"
        else:
            problem = None if kind == "text" else self.probe(path)
        if problem is None:
            return self._decide(path, rel, "ready", "", size, sig)
        if quiet < self.bad_settle:
            return None  # maybe the first bytes are still on their way
        return self._decide(path, rel, "empty" if size == 0 else "not_audio", problem, size, sig)

    def forget_gone(self, older_than: float | None = None) -> None:
        """Forget handed-over paths that are gone, and (``older_than`` seconds) ones the
        supervisor never claimed, so that a rescan offers them again."""
        now = self.clock()
        for path, (_sig, at) in list(self.handed.items()):
            if not os.path.lexists(path) or (older_than is not None and now - at >= older_than):
                del self.handed[path]

    def note(self, event: str, rel: str, reason: str, level: str = "info") -> None:
        """Log once per (path, reason) so a rescan does not repeat itself."""
        key = (rel, reason)
        if key in self._logged:
            return
        if len(self._logged) > 10000:
            self._logged.clear()
        self._logged.add(key)
        getattr(self.log, level)(event, path=rel, reason=reason)

    def _closed_since(self, path: Path, sig: tuple) -> bool:
        """True while the file is as its writer left it when it closed it (or renamed it in)."""
        mark = self.closed.get(path)
        if mark is None:
            return False
        if mark == _CLOSED_PENDING:
            self.closed[path] = sig  # the first look after the event
            return True
        if mark != sig:
            del self.closed[path]  # written again since: the full settle (a new close brings it back)
            return False
        return True

    def _complete(self, path: Path, sig: tuple) -> bool:
        """``complete(path)``, asked once per signature (the checker looks many times a second)."""
        known = self._verdicts.get(path)
        if known is None or known[0] != sig:
            known = self._verdicts[path] = (sig, bool(self.complete(path)))
        return known[1]

    def _decide(self, path, rel, verdict, reason, size, sig) -> Candidate:
        self._drop(path)
        self.handed[path] = (sig, self.clock())
        return Candidate(path, rel, verdict, reason, size)

    def _drop(self, path: Path) -> None:
        self.pending.pop(path, None)
        self.closed.pop(path, None)
        self._verdicts.pop(path, None)

    def _inside_inbox(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return os.path.commonpath([real, self.real_inbox]) == self.real_inbox

    def _has_audio(self, path: Path) -> bool:
        return any(os.path.lexists(path.with_suffix(ext)) for ext in _AUDIO)

    def _lone_transcript(self, path: Path, rel: str) -> None:
        if self._has_audio(path):
            return  # it travels with its audio when that is claimed
        why = ("a transcript without its audio" if not rel.lower().endswith(".txt") else
               "a text without audio: it is read aloud only with VOICE_DAEMON_ENGINE=resynth")
        self.note("watcher.ignored", rel, why)


class Watcher:
    """watchdog observer + periodic rescan + a checker thread calling ``on_candidate``."""

    def __init__(self, settings, on_candidate: Callable[[Candidate], None], *, probe=default_probe,
                 on_seen: Callable[[], None] | None = None, current: Current | None = None):
        """``current``: the generation in use (its capabilities are read as files come; without it,
        the configured engine's)."""
        self.s = settings
        self.inbox = Path(settings.inbox).absolute()
        self.on_candidate = on_candidate
        self.on_seen = on_seen or (lambda: None)
        self.settler = Settler(self.inbox, settings.settle_seconds, settings.max_input_bytes, probe=probe,
                               text_jobs=(lambda: current.gen.capabilities.reads_text) if current is not None
                               else abilities(settings.engine).reads_text,
                               closed_settle=settings.closed_settle_seconds)
        self.tick = max(0.05, min(0.5, settings.settle_seconds / 4))
        self._lock = threading.Lock()
        self._wake = threading.Event()  # an event came: look now, not at the next tick
        self._incoming: dict[Path, bool] = {}  # path -> closed after writing (or renamed in)
        self._scan_dirs: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = None
        self.observer_kind = ""
        self.log = log.get("watcher")

    # --- life cycle ----------------------------------------------------------
    def start(self) -> None:
        self._start_observer()
        self._thread = threading.Thread(target=self._run, name="watcher-check", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def nominate(self, path: str | Path, closed: bool = False) -> None:
        """Called from the observer thread: O(1), no filesystem access.  ``closed``: the writer
        closed the file after writing, or it was renamed in (the short settle may apply)."""
        path = Path(path)
        with self._lock:
            self._incoming[path] = self._incoming.get(path, False) or closed
        self._wake.set()

    def scan_dir(self, path: str | Path) -> None:
        with self._lock:
            self._scan_dirs.add(Path(path))
        self._wake.set()

    # --- internals -------------------------------------------------------------
    def _start_observer(self) -> None:
        from watchdog.events import DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent, FileMovedEvent
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        kinds = [FileClosedEvent, FileCreatedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
        handler = _Handler(self)
        wanted = self.s.observer
        if wanted == "inotify":
            from watchdog.observers.inotify import InotifyObserver as Chosen
        elif wanted == "polling":
            Chosen = None
        else:
            Chosen = Observer
        for attempt in (Chosen, None):
            if attempt is None:
                obs = PollingObserver(timeout=max(0.2, min(5.0, self.s.settle_seconds / 2)))
            else:
                obs = attempt()
            try:
                obs.schedule(handler, str(self.inbox), recursive=True, event_filter=kinds)
                obs.start()
            except OSError as exc:  # e.g. inotify watch limit reached
                if attempt is None:
                    raise
                self.log.warning("watcher.observer_fallback", error=str(exc), using="polling")
                continue
            self._observer, self.observer_kind = obs, type(obs).__name__
            self.log.info("watcher.started", inbox=str(self.inbox), observer=self.observer_kind,
                          settle_seconds=self.s.settle_seconds, rescan_seconds=self.s.rescan_seconds)
            return

    def _run(self) -> None:
        next_scan = 0.0  # scan at once: files present before the start
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_scan:
                    self.settler.forget_gone(older_than=self.s.rescan_seconds)
                    self._scan(self.inbox)
                    next_scan = now + self.s.rescan_seconds
                self._drain()
                for cand in self.settler.check_all():
                    if self._stop.is_set():
                        break
                    self.on_candidate(cand)
            except Exception as exc:  # intake must survive a surprise (inbox deleted, permissions)
                self.log.error("watcher.error", error=f"{type(exc).__name__}: {exc}")
            due = self.settler.next_due()
            # Woken early by an event, or when a closed file's short settle ends.
            self._wake.wait(self.tick if due is None else min(self.tick, due))
            self._wake.clear()

    def _drain(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, {}
            dirs, self._scan_dirs = self._scan_dirs, set()
        for d in dirs:
            self._scan(d)
        for p, closed in incoming.items():
            self.on_seen()
            self.settler.nominate(p, closed=closed)

    def _scan(self, top: Path) -> None:
        """Walk without following links; nominate every audio-looking file and every link."""
        for root, dirs, files in os.walk(top, followlinks=False, onerror=self._walk_error):
            base = Path(root)
            keep = []
            for d in dirs:
                p = base / d
                if d.startswith("."):
                    continue
                if p.is_symlink():
                    self.settler.nominate(p)  # decided like any link: never followed
                    continue
                keep.append(d)
            dirs[:] = keep
            for f in files:
                self.settler.nominate(base / f)

    def _walk_error(self, exc: OSError) -> None:
        if not self._stop.is_set():
            self.settler.note("watcher.scan_error", str(exc.filename), exc.strerror or str(exc), level="warning")


class _Handler:
    """watchdog handler: nominate paths, never touch the filesystem here."""

    def __init__(self, watcher: Watcher):
        self.w = watcher

    def dispatch(self, event) -> None:
        path = event.dest_path if event.event_type == "moved" else event.src_path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            return
        if event.is_directory:
            # A folder moved in brings files that raise no events of their own.
            self.w.scan_dir(path)
        else:
            # Closed after writing, or renamed into its name (rsync's last step): its writer is done.
            self.w.nominate(path, closed=event.event_type in ("closed", "moved"))
