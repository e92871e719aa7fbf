"""What every warm worker runs once before its first task, in a local pool child and in a Dask
worker process alike: the native thread pools sized, the initializer (models), torch's threads."""

from __future__ import annotations

import os
import sys
import threading

from daemon.jobs import resolve

#: Native thread pools sized from the environment when first loaded (OpenMP in torch,
#: OpenBLAS/MKL under numpy); set before the initializer imports them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a worker process: native thread pools sized before anything loads."""
    return dict.fromkeys(THREAD_VARIABLES, str(max(1, threads)))


def start_up(initializer: str | None, init_args: tuple, init_kwargs: dict, threads: int) -> int | None:
    """What every warm worker runs once, here and in a Dask worker process (``dask/warm.py``):
    the native thread pools sized, the initializer (models), torch's thread count; returns it."""
    _no_named_semaphores()
    if threads:
        for name in THREAD_VARIABLES:
            # Set, not defaulted: an inherited OMP_NUM_THREADS=16 would oversubscribe the cores.
            os.environ[name] = str(threads)
    if initializer:
        resolve(initializer)(*init_args, **init_kwargs)
    return _set_torch_threads(threads)


def _no_named_semaphores() -> None:
    """tqdm makes a multiprocessing RLock for its first bar (faster-whisper makes a bar, disabled,
    for every transcription).  In a spawn child that is a named POSIX semaphore which only the
    child's clean exit unlinks: a worker ended by SIGTERM or SIGKILL leaves it to the resource
    tracker ("There appear to be 1 leaked semaphore objects").  A worker's bars never cross
    processes, so a thread lock serves."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _set_torch_threads(threads: int) -> int | None:
    # After the initializer: importing silero-vad / silero-stress resets torch to one thread.
    # Only if the initializer brought torch in: the pool itself never imports it.
    if "torch" not in sys.modules:
        return None
    torch = sys.modules["torch"]
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


