"""The parent process (CLI, daemon, pool, watcher, supervisor) never loads torch or a model library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "faster_whisper", "ctranslate2", "piper", "onnxruntime", "silero_vad", "silero_stress",
         "parselmouth")

CODE = f"""
import sys
import daemon.app, daemon.cli, daemon.convert, daemon.supervisor, daemon.watcher, daemon.spool, daemon.bench
import daemon.engines.resynth.transcript, daemon.engines.resynth, daemon.models.cli, daemon.metrics, daemon.systemd
loaded = [m for m in {HEAVY!r} if m in sys.modules]
print(",".join(loaded))
"""


def test_parent_modules_import_no_model_library():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded in the parent: {proc.stdout.strip()}"
