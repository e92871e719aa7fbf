"""structlog set-up shared by the parent and every worker child.

JSON lines on stderr when stderr is not a terminal or when asked; a readable
console renderer on a terminal.  Every event is a name plus fields.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def resolve_format(fmt: str, stream=None) -> str:
    stream = stream or sys.stderr
    if fmt == "auto":
        return "console" if getattr(stream, "isatty", lambda: False)() else "json"
    return fmt


def configure(fmt: str = "auto", level: str = "info", *, process: str = "main") -> dict:
    """Configure structlog (and stdlib logging of libraries) once per process.

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
        tail = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (watchdog, faster-whisper) go to stderr too, quietly.
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    return {"fmt": fmt, "level": level}


def redirect(stream=None) -> None:
    """Write this process's log lines to ``stream`` from now on (None: stderr again), e.g. a
    file that prints them above a progress bar instead of through it."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr))


def _add_process(role: str):
    pid = os.getpid()

    def processor(_logger, _name, event_dict):
        event_dict.setdefault("proc", role)
        event_dict.setdefault("pid", pid)
        return event_dict

    return processor


def get(name: str | None = None):
    return structlog.get_logger(name) if name else structlog.get_logger()
