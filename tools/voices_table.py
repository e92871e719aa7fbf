#!/usr/bin/env python3
"""The offline Russian voices side by side: round-trip WER, speed, sex, licence.

Recognises ``silero_vad_ru.wav`` (60 s) once with the multilingual Whisper base, has every offline
voice speak those phrases into their slots (the resynth engine, timed phrases, one thread), and
judges each output with the same Whisper base against its transcript of the source, as
tests/integration/test_resynth_russian.py does.  RTF is the synthesis stage's seconds over the
audio's seconds, each voice warm.  ``--repeat N`` runs each voice N times and prints the spread.

    .venv/bin/python tools/voices_table.py [--voices anna,aleksandr] [--repeat 1]

A figure to read, not a test: the machine's load moves the RTF column (WER does not depend on it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
SPEECH = ROOT.parent / "shared" / "data" / "speech" / "silero_vad_ru.wav"
RATE = 24000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="", help="comma-separated voice names (default: every offline Russian voice)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per voice (the spread is printed)")
    ap.add_argument("--input", default=str(SPEECH))
    args = ap.parse_args()

    from daemon.engines.resynth.asr import group_phrases
    from daemon.models import system_tts, voices
    from helpers.resynth_models import base_whisper, chunk_events, engine, load, to16k
    from helpers.speech_metrics import transcribe, wer

    src = load(Path(args.input), RATE)
    model = base_whisper()
    src16 = to16k(src, RATE)
    reference = transcribe(model, src16, "ru")
    recogniser = engine(tts="espeak", language="ru", sample_rate=RATE).asr
    regions = recogniser.regions(src16)
    words, _lang = recogniser.words(src16)
    phrases = group_phrases(words, regions)
    hints = {"phrases": phrases, "timed": True}

    s = engine(tts="espeak", language="ru", sample_rate=RATE).settings
    rows = [(v.name, "rhvoice", v.sex, v.licence) for v in voices.usable(s, "rhvoice") if v.language == "ru"]
    rows += [(system_tts.FESTIVAL_RUSSIAN, "festival", "male", "BSD-like"), ("ru", "espeak", "male", "GPL-3.0+")]
    wanted = {n.strip() for n in args.voices.split(",") if n.strip()}
    rows = [r for r in rows if not wanted or r[0] in wanted]

    print(f"source: {Path(args.input).name}, {len(src) / RATE:.1f} s, {len(phrases)} phrases; "
          f"reference (Whisper base): {reference[:90]}…", file=sys.stderr)
    print("| voice | synthesiser | sex | licence | round-trip WER | TTS real-time factor |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    for name, tts, sex, licence in rows:
        eng = engine(tts=tts, language="ru", sample_rate=RATE, asr_model="none")
        eng.tts.synthesize("Привет.", eng.tts.check_voice(name))  # RHVoice reads a voice's data at its first use
        rates, rtfs = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with chunk_events() as chunks:
                out, _info = eng.process(src, RATE, voice=name, hints=hints)
            rtfs.append(sum(c["tts_seconds"] for c in chunks) / (len(src) / RATE))
            rates.append(wer(reference, transcribe(model, to16k(out, RATE), "ru")))
            print(f"  {name}: WER {rates[-1]:.3f}, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        spread = f" (spread {max(rates) - min(rates):.3f} over {len(rates)})" if len(rates) > 1 else ""
        print(f"| {name} | {tts} | {sex} | {licence} | {sum(rates) / len(rates):.3f}{spread} | "
              f"{min(rtfs):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
