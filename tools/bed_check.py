"""Print the bed's goals (docs/background.md, "Figures"): ``.venv/bin/python tools/bed_check.py``.

Mixes the shared recordings with generated music beds (tests/helpers/beds.py) 6 to 12 dB below the
speech and runs the workers' bed stage on them in this process, with ``keep``:
shift on 30 s of silero_vad_en.wav, resynth (Piper English) on fw_jfk.flac; then ``auto`` on the
clean recordings against ``drop``.  Takes a few minutes on one core.  The separation's own cost:
tools/separation_check.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import bed_goals, beds  # noqa: E402
from helpers.resynth_models import load, settings, whisper  # noqa: E402
from helpers.speech_metrics import JFK_TEXT, transcribe  # noqa: E402

SPEECH = ROOT.parent / "shared" / "data" / "speech"
RATE = 48000
SEEDS = (0, 1, 2)


def _row(label: str, fig: dict, seconds: float) -> None:
    print(label, bed_goals.figures(fig), f"({seconds:.1f} s)", flush=True)


def main() -> None:
    from daemon.settings import Settings

    speech = load(SPEECH / "silero_vad_en.wav", RATE)[: 30 * RATE]
    keeper = bed_goals.Keeper(Settings(engine="shift", background="keep", workers=1, threads_per_worker=1))
    print("shift, keep: goals between_sisdr >= 20, chroma_under_power >= 0.6 (chroma_under_power_drop: the same "
          "figure with the whole mix shifted), f0_ratio 1 +- 0.05, residual_all_db >= 15")
    for bed_db in (6, 9, 12):
        for seed in SEEDS:
            t0 = time.perf_counter()
            fig = bed_goals.shift_goals(keeper, speech, beds.make_bed(30, RATE, seed), bed_db)
            _row(f"  bed {bed_db} dB seed {seed}:", fig, time.perf_counter() - t0)
    print("auto on clean speech: same samples as drop, no separation")
    for name in ("silero_vad_en.wav", "silero_vad_ru.wav", "silero_vad_de.wav", "silero_vad_es.wav", "fw_jfk.flac"):
        print(f"  {name}:", bed_goals.auto_against_drop(keeper, load(SPEECH / name, RATE)[: 30 * RATE]), flush=True)

    jfk = load(SPEECH / "fw_jfk.flac", RATE)
    keeper = bed_goals.Keeper(settings(tts="piper", language="en", background="keep"))
    print("resynth (Piper English), keep: goals between_sisdr >= 20, bed_sisdr >= 8, wer_bed <= wer_clean + 0.05, "
          "residual_all_db >= 15")
    for bed_db in (6, 9, 12):
        for seed in SEEDS:
            t0 = time.perf_counter()
            fig = bed_goals.resynth_goals(keeper, jfk, beds.make_bed(len(jfk) / RATE, RATE, seed), bed_db, JFK_TEXT,
                                          lambda a: transcribe(whisper(), a))
            _row(f"  bed {bed_db} dB seed {seed}:", fig, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
