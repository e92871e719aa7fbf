"""Every shell example of docs/tutorial.md runs: the ```sh blocks, in order, as one bash script in an
empty folder, with `voice-daemon` on PATH (this checkout's code). The convention is in CONTRIBUTING.md."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
#: A fenced block whose info string is exactly `sh` is an example to run; `text`, `console`… are not.
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)


def sh_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```sh block, in order."""
    return [(markdown.count("\n", 0, m.start()) + 1, m.group(1)) for m in SH_BLOCK.finditer(markdown)]


def script(markdown: str) -> str:
    parts = ["set -euo pipefail"]
    for line, code in sh_blocks(markdown):
        parts.append(f"echo '### docs/tutorial.md, the block at line {line}' >&2")
        parts.append(code)
    return "\n".join(parts) + "\n"


def test_sh_blocks_are_found():
    blocks = sh_blocks("text\n```sh\necho a\n```\n```text\nnot run\n```\n```sh\necho b\necho c\n```\n")
    assert blocks == [(2, "echo a\n"), (8, "echo b\necho c\n")]


@pytest.mark.slow
def test_tutorial_examples_run(tmp_path):
    markdown = TUTORIAL.read_text(encoding="utf-8")
    assert len(sh_blocks(markdown)) >= 8, "the tutorial lost its examples"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # `voice-daemon` as the tutorial's reader has it, but running this checkout's code.
    shim = bindir / "voice-daemon"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m daemon "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update(PATH=f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(ROOT),
               XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    proc = subprocess.Popen(["bash", "-c", script(markdown)], cwd=work, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"a tutorial example failed (exit {proc.returncode}):\n{out[-6000:]}"
    # What the tutorial promises, beyond every command succeeding:
    assert (work / "hello-shifted.wav").stat().st_size > 0 and (work / "hello-deeper.mp3").stat().st_size > 0
    assert (work / "hello-joe.json").is_file() and (work / "notes.wav").is_file()
    assert (work / "var" / "outbox" / "hello.wav").is_file()
    assert (work / "var" / "failed" / "broken.wav").is_file()
    assert '"job.done"' in out


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
