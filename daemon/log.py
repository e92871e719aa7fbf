"""structlog set-up shared by the parent and every worker child.

JSON lines on stderr when stderr is not a terminal or when asked; a readable
console renderer on a terminal.  Every event is a name plus fields.

Everything else a process would print on stderr goes through the same renderer, so that
with the JSON format every line is JSON: records of libraries' stdlib ``logging``
(``library.log``: watchdog, faster-whisper…), Python warnings (``python.warning``: numpy's,
torch's…) and exceptions nobody caught, in any thread (``python.uncaught_exception``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
#: Warnings a library gives at every start that say nothing about this program's work: logged
#: at debug level (torch.package warns so when it loads a Silero model).
HARMLESS_WARNINGS = ("TypedStorage is deprecated",)


def resolve_format(fmt: str, stream=None) -> str:
    stream = stream or sys.stderr
    if fmt == "auto":
        return "console" if getattr(stream, "isatty", lambda: False)() else "json"
    return fmt


def use_colour(stream) -> bool:
    """Colours on a terminal, unless NO_COLOR is set to anything (no-color.org: a convention every
    program reads from the environment, as systemd's variables are)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def configure(fmt: str = "auto", level: str = "info", *, process: str = "main") -> dict:
    """Configure structlog (and stdlib logging, warnings, uncaught exceptions) once per process.

    Returns the resolved config, a small dict a parent passes to its children so
    that they log the same way (children's stderr is the parent's).
    """
    fmt = resolve_format(fmt)
    lvl = LEVELS.get(level, logging.INFO)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False, sort_keys=False)
        tail = [structlog.processors.format_exc_info, renderer]
    else:
        tail = [structlog.dev.ConsoleRenderer(colors=use_colour(sys.stderr))]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(shared, tail, max(lvl, logging.WARNING))  # libraries: quietly
    warnings.showwarning = _show_warning
    threading.excepthook = _thread_exception
    sys.excepthook = _uncaught_exception
    return {"fmt": fmt, "level": level}


def redirect(stream=None) -> None:
    """Write this process's log lines to ``stream`` from now on (None: stderr again), e.g. a
    file that prints them above a progress bar instead of through it."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr))


def _route_stdlib_logging(shared: list, tail: list, level: int) -> None:
    """Records of stdlib loggers rendered by our renderer, as ``library.log`` events."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _library_event],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.name = "voice-daemon"
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == handler.name]:  # configure() may run twice
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _library_event(_logger, _name, event_dict):
    record = event_dict.get("_record")
    event_dict["message"] = event_dict.pop("event", "")
    event_dict["event"] = "library.log"
    if record is not None:
        event_dict["logger"] = record.name
    return event_dict


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message)
    fields = {"category": category.__name__, "message": text, "where": f"{filename}:{lineno}"}
    logger = get("warnings")
    if any(harmless in text for harmless in HARMLESS_WARNINGS):
        logger.debug("python.warning", **fields)
    else:
        logger.warning("python.warning", **fields)


def _thread_exception(args) -> None:
    if args.exc_type is SystemExit:
        return
    get().error("python.uncaught_exception", thread=getattr(args.thread, "name", None),
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _uncaught_exception(exc_type, exc_value, exc_traceback) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc_value, exc_traceback)
        return
    get().error("python.uncaught_exception", thread="MainThread", exc_info=(exc_type, exc_value, exc_traceback))


def _add_process(role: str):
    pid = os.getpid()

    def processor(_logger, _name, event_dict):
        event_dict.setdefault("proc", role)
        event_dict.setdefault("pid", pid)
        return event_dict

    return processor


def get(name: str | None = None):
    return structlog.get_logger(name) if name else structlog.get_logger()


class Throttle:
    """At most ``burst`` events per ``window`` seconds, counting the ones held back, so that a
    flood of one kind of event (bad clients of the status server) cannot flood the log.
    Thread-safe: each HTTP connection has its own thread."""

    def __init__(self, burst: int = 10, window: float = 60.0, clock=time.monotonic):
        self.burst, self.window, self.clock = burst, window, clock
        self._lock = threading.Lock()
        self._start = -float("inf")
        self._sent = 0
        self._held = 0

    def allow(self) -> tuple[bool, int]:
        """(log this one?, how many were held back since the last one logged)."""
        with self._lock:
            now = self.clock()
            if now - self._start >= self.window:
                self._start, self._sent = now, 0
            if self._sent >= self.burst:
                self._held += 1
                return False, 0
            self._sent += 1
            held, self._held = self._held, 0
            return True, held
