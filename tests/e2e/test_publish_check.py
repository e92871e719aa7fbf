"""Every output is checked before it is published: a damaged one is an attempt that failed.

The damage is injected into the real programs (`voice-daemon run` and its spawn workers,
`voice-daemon convert`) by ``tests/helpers/damage/sitecustomize.py``: each encoded output is cut
to half its bytes, as a failing disk or encoder would leave it, before the pipeline's rename.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_daemon import cut

from helpers import media, wait_until

ROOT = Path(__file__).resolve().parents[2]
DAMAGE = str(ROOT / "tests" / "helpers" / "damage")


def damaged(env: dict, log: Path, times: int | None = None) -> dict:
    env.update({"PYTHONPATH": os.pathsep.join(filter(None, [DAMAGE, env.get("PYTHONPATH")])),
                "VD_TEST_DAMAGE": str(log)})
    if times is not None:
        env["VD_TEST_DAMAGE_TIMES"] = str(times)
    return env


def test_a_damaged_output_is_retried_then_quarantined_with_the_reason(daemon, speech_dir, tmp_path):
    d = daemon(max_attempts=2)
    damaged(d.env, tmp_path / "damage.log")
    d.start()
    cut(speech_dir, d.inbox / "talk.wav", "silero_vad_en.wav", 0, 6.0)
    wait_until(lambda: d.settled(1), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")
    assert d.stop() == 0
    d.assert_exactly_once([], ["talk.wav"])
    err = d.error("talk.wav")
    assert err["stage"] == "verify" and err["attempts"] == 2, err
    assert err["cause"].startswith("The output failed its check before publishing: it is truncated"), err
    assert len(d.events("job.retry")) == 1 and d.events("job.retry")[0]["stage"] == "verify"
    assert len((tmp_path / "damage.log").read_text().splitlines()) == 2  # both attempts were damaged


def test_a_damaged_first_attempt_is_retried_and_the_good_one_published(daemon, speech_dir, tmp_path):
    d = daemon()
    damaged(d.env, tmp_path / "damage.log", times=1)
    d.start()
    cut(speech_dir, d.inbox / "talk.wav", "silero_vad_en.wav", 0, 6.0)
    wait_until(lambda: d.settled(1), 120, message=f"outcomes {d.outputs()} {d.quarantined()}")
    assert d.stop() == 0
    d.assert_exactly_once(["talk.wav"], [])
    assert abs(media.duration(d.outbox / "talk.wav") - 6.0) <= 0.010
    [done] = d.events("job.done")
    assert done["attempts"] == 2
    check = done["check"]  # the check's figures, in the job's one log line
    assert check["decoded_seconds"] == 6.0 and check["difference_ms"] == 0.0 and check["non_finite"] == 0
    assert check["peak_dbfs"] > -30 and check["allowed_ms"] == 10.0


def test_convert_refuses_to_publish_a_damaged_output(tmp_path, speech_dir):
    out = tmp_path / "jfk.flac"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_WORKERS": "1"})
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(speech_dir / "fw_jfk.flac"), str(out)],
                          cwd=ROOT, env=damaged(env, tmp_path / "damage.log"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 73, proc.stderr
    assert f"{out}: the output failed its check before publishing: it cannot be decoded" in proc.stderr
    assert list(tmp_path.glob("*jfk*")) == [], "a damaged or temporary output was left"
    good = subprocess.run([sys.executable, "-m", "daemon", "convert", str(speech_dir / "fw_jfk.flac"), str(out)],
                          cwd=ROOT, env={**env, "VD_TEST_DAMAGE": ""}, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
    assert '"check": {"decoded_seconds": 11.0' in good.stderr  # convert.done carries the figures
