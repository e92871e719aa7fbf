"""Fault injection for tests, never installed: outputs damaged between the encoder and the rename.

A program started with this folder on PYTHONPATH (its spawn workers inherit it) and
``VD_TEST_DAMAGE=<log file>`` cuts every finished output to half its bytes, as a failing disk or
encoder would, just before it is read back by the output check (``daemon.audio.verify``), while
the log holds fewer than ``VD_TEST_DAMAGE_TIMES`` lines (default: always).  Each damage appends a
line.  Without ``VD_TEST_DAMAGE`` this file does nothing.
"""

import os

if os.environ.get("VD_TEST_DAMAGE"):
    import daemon.audio.verify as _verify

    _check = _verify.check_output

    def _damaging_check(path, **kwargs):
        log, times = os.environ["VD_TEST_DAMAGE"], int(os.environ.get("VD_TEST_DAMAGE_TIMES", "1000000"))
        done = len(open(log).read().splitlines()) if os.path.exists(log) else 0
        if done < times:
            os.truncate(path, os.path.getsize(path) // 2)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {path}\n")
        return _check(path, **kwargs)

    _verify.check_output = _damaging_check
