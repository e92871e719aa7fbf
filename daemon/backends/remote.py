"""What crosses the pipe between a child and the parent besides tasks: exceptions and results.

The parent must never import torch or a model library, and unpickling is an
import: a result or an exception argument that refers to ``torch.Tensor`` would
pull torch into the parent.  So the parent unpickles with a ``find_class`` that
only resolves modules already loaded, the standard library and numpy.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import traceback

from daemon.errors import TaskError, VoiceDaemonError
from daemon.jobs import resolve

#: Modules the parent may import while unpickling, beside those already loaded.
SAFE_ROOTS = frozenset(sys.stdlib_module_names) | {"numpy"}


class ForbiddenModule(pickle.UnpicklingError):
    def __init__(self, module: str):
        self.module = module
        super().__init__(f"refers to module {module!r}, which the pool's parent does not import")


def allowed_here(module: str) -> bool:
    return module in sys.modules or module.partition(".")[0] in SAFE_ROOTS


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if not allowed_here(module):
            raise ForbiddenModule(module)
        return super().find_class(module, name)


def loads(data: bytes):
    """Unpickle data from a child without importing new (heavy) modules."""
    return _Unpickler(io.BytesIO(data)).load()


def dumps(obj) -> bytes:
    # Plain pickle, not multiprocessing's ForkingPickler: once torch is imported, that one
    # moves tensors into shared memory and passes file descriptors, which this pipe cannot.
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


class RemoteTraceback(Exception):
    """Carries a child's formatted traceback as the ``__cause__`` of the error the caller sees."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


def describe_exception(exc: BaseException) -> dict:
    """A plain-data picture of ``exc`` (made in the child), enough to rebuild it in the parent."""
    cls = type(exc)
    retryable = getattr(exc, "retryable", None)
    return {
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "type": cls.__name__,
        "message": str(exc),
        "retryable": retryable if isinstance(retryable, bool) else None,
        "traceback": "".join(traceback.format_exception(exc)),
        "args": _pickled(exc.args),
        "state": _pickled(dict(getattr(exc, "__dict__", {}))),
        # not in .args: which file a full disk refused is how the parent knows which folder is full
        "filename": (os.fsdecode(exc.filename)
                     if isinstance(exc, OSError) and isinstance(exc.filename, (str, bytes)) else None),
    }


def summary(desc: dict) -> str:
    """One line, like the last line of a traceback: ``ValueError: boom``."""
    return f"{desc['type']}: {desc['message']}" if desc["message"] else desc["type"]


def rebuild(desc: dict) -> BaseException | None:
    """The child's exception as an instance of its own class, or None when that class (or an
    argument) lives in a module the parent may not import, or cannot be rebuilt."""
    module, qualname = desc["module"], desc["qualname"]
    if not allowed_here(module) or "<locals>" in qualname:
        return None
    try:
        cls = resolve(f"{module}:{qualname}")
        args = loads(desc["args"]) if desc["args"] is not None else ()
        state = loads(desc["state"]) if desc["state"] is not None else {}
    except Exception:
        return None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return None
    try:
        exc = cls(*args)
    except Exception:
        exc = None
    if type(exc) is not cls:
        # Classes whose __init__ takes other arguments than .args (InputError(path, cause)):
        # build without __init__ and restore the fields from the instance dict.
        try:
            exc = cls.__new__(cls, *args)
            exc.args = args
        except Exception:
            return None
    try:
        exc.__dict__.update(state)
    except (AttributeError, TypeError):
        pass
    if isinstance(exc, OSError) and desc.get("filename") is not None:
        exc.filename = desc["filename"]
    return exc


def caller_exception(desc: dict, attempts: int) -> BaseException:
    """The exception a task's Future fails with, for an exception raised inside the task.

    Errors of this program (InputError, OutputError, ModelError, ...) and anything marked
    ``retryable = False`` keep their type and fields; any other exception becomes a
    ``TaskError(kind="exception")`` carrying ``"Type: message"``.  The child's traceback
    is chained as the cause either way.
    """
    original = rebuild(desc)
    remote = RemoteTraceback(desc["traceback"])
    keep = desc["retryable"] is False or isinstance(original, VoiceDaemonError)
    if original is not None and keep:
        original.__cause__ = remote
        return original
    err = TaskError(summary(desc), kind="exception", attempts=attempts,
                    retryable=desc["retryable"] is not False)
    if original is not None:
        original.__cause__ = remote
        err.__cause__ = original
    else:
        err.__cause__ = remote
    return err


def _pickled(obj) -> bytes | None:
    try:
        return dumps(obj)
    except Exception:
        return None
