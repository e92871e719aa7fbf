"""Fault injection for tests, never installed: outputs damaged between the encoder and the rename.

A program started with this folder on PYTHONPATH (its spawn workers inherit it) and
``VD_TEST_DAMAGE=<log file>`` cuts every encoded output to half its bytes, as a failing disk or
encoder would, while the log holds fewer than ``VD_TEST_DAMAGE_TIMES`` lines (default: always).
Each damage appends a line.  Without ``VD_TEST_DAMAGE`` this file does nothing.
"""

import os

if os.environ.get("VD_TEST_DAMAGE"):
    import daemon.audio.io as _aio

    _encode = _aio.encode

    def _damaging_encode(wav_path, out_path, sample_rate):
        _encode(wav_path, out_path, sample_rate)
        log, times = os.environ["VD_TEST_DAMAGE"], int(os.environ.get("VD_TEST_DAMAGE_TIMES", "1000000"))
        done = len(open(log).read().splitlines()) if os.path.exists(log) else 0
        if done < times:
            os.truncate(out_path, os.path.getsize(out_path) // 2)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {out_path}\n")

    _aio.encode = _damaging_encode
