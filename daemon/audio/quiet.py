"""Keep libmpg123's chatter off our stderr.

libsndfile's MP3 decoder (libmpg123) prints warnings straight to file
descriptor 2 ("Warning: Xing stream size off…", "Note: Trying to resync…"),
which would break JSON log lines and one-line error messages.  While decoding
an MP3 we point fd 2 at a temporary file, then log what the decoder said as one
structured event and write anything else (another thread's log line) back.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

_NOISE = re.compile(r"^(Warning: |Note: |\[src/libmpg123|\[.*mpg123.*\]|error: |Error: |Big trouble)", re.I)
_LOCK = threading.Lock()


@contextlib.contextmanager
def decoder_stderr(path: str, enabled: bool = True):
    if not enabled:
        yield
        return
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", "replace")
        _report(path, text)


def _report(path: str, text: str) -> None:
    noise, other = [], []
    for line in text.splitlines():
        (noise if _NOISE.match(line) else other).append(line)
    if other:
        sys.stderr.write("\n".join(other) + "\n")
        sys.stderr.flush()
    if noise:
        from daemon import log

        log.get().debug("audio.decoder_messages", path=path, lines=len(noise), first=noise[0][:200])
