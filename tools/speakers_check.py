"""The speaker goals, printed (not timed tests): each part runs the real ``voice-daemon convert``.

    .venv/bin/python tools/speakers_check.py [--parts diarize,single,voices,cost] [--seeds 1,2,3]

- diarize: conversations of four people (tools/conversation.py, turns of 2–15 s) through
  ``convert`` with speakers on: diarization error rate (tools/der.py; reference speech is what
  Silero VAD hears inside each turn, 0.25 s collar) and the number of speakers found.
- single: each one-person recording (60 s): the number of speakers found (must be 1).
- voices: the conversation through ``resynth`` with espeak-ng, a voice variant per speaker: the
  share of output turns whose CAM++ embedding is nearer to its own target voice than to any other.
- cost: the same ``resynth`` job on 2 workers with speakers off and on, alternated: the job's
  wall seconds and the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import conversation  # noqa: E402
import der  # noqa: E402

VOICES = ("+m1", "+f3", "+klatt", "+croak")  # espeak-ng variants whose CAM++ embeddings lie apart
TEXTS = {"en": "We will meet again tomorrow morning at the station, if the weather allows it.",
         "ru": "Мы встретимся снова завтра утром на вокзале, если позволит погода.",
         "de": "Wir treffen uns morgen früh wieder am Bahnhof, wenn das Wetter es erlaubt.",
         "es": "Nos veremos de nuevo mañana por la mañana en la estación, si el tiempo lo permite."}


def convert(src: Path, out: Path, env: dict, *, engine: str = "shift", workers: int = 2) -> dict:
    """One ``voice-daemon convert``; its ``convert.done`` figures."""
    e = {**os.environ, "VOICE_DAEMON_LOG_FORMAT": "json", **env}
    p = subprocess.run([sys.executable, "-m", "daemon", "convert", "--engine", engine, "--workers", str(workers),
                        "--no-progress", "--overwrite", str(src), str(out)], cwd=ROOT, env=e,
                       capture_output=True, text=True, timeout=3600)
    for line in p.stderr.splitlines():
        if '"convert.done"' in line:
            return json.loads(line)
    raise RuntimeError(f"convert failed ({p.returncode}): {p.stderr[-2000:]}")


def speech_mask(wav: Path) -> np.ndarray:
    """10 ms frames where Silero VAD hears speech (the silences the chunks are cut in, removed)."""
    import soundfile as sf

    from daemon.audio import plan, vad

    probs, window_s = vad.speech_probabilities(str(wav))
    n = int(sf.info(str(wav)).duration / der.STEP) + 1
    mask = np.ones(n, bool)
    for s, e in plan.silences(probs, window_s, 16000):
        mask[int(s / 16000 / der.STEP):int(e / 16000 / der.STEP)] = False
    return mask


def diarize(work: Path, seeds: list[int], seconds: float) -> None:
    rows = []
    for seed in seeds:
        wav = work / f"conv{seed}.wav"
        turns = conversation.make(wav, seconds, seed)
        fig = convert(wav, work / f"conv{seed}-out.wav", {"VOICE_DAEMON_SPEAKERS": "on", "VOICE_DAEMON_RTTM": "true"})
        r = der.der(der.read_rttm(f"{wav}.ref.rttm"), der.read_rttm(fig["rttm"]), speech=speech_mask(wav))
        rows.append(r)
        print(f"diarize seed {seed}: {turns[-1][1]:.0f} s, {len(turns)} turns, 4 people -> "
              f"{r['hyp_speakers']} speakers, DER {100 * r['der']:.1f} % (missed {r['missed']:.1f} s, "
              f"false alarm {r['false_alarm']:.1f} s, confusion {r['confusion']:.1f} s of {r['speech']:.1f} s)",
              flush=True)
    ders = [100 * r["der"] for r in rows]
    print(f"diarize: DER {min(ders):.1f}–{max(ders):.1f} % (mean {np.mean(ders):.1f} %, goal ≤ 10 %); "
          f"right number of speakers in {sum(r['hyp_speakers'] == 4 for r in rows)}/{len(rows)}")


def single(work: Path) -> None:
    for name in conversation.PEOPLE:
        fig = convert(conversation.SPEECH / name, work / f"one-{name}", {"VOICE_DAEMON_SPEAKERS": "on"})
        print(f"single {name}: {fig['audio_seconds']:.0f} s -> {fig['speakers']} speaker(s) (goal: 1)", flush=True)


def _embedder():
    from types import SimpleNamespace

    import torch

    from daemon.models.speaker import SpeakerEmbedder

    torch.set_num_threads(1)
    return SpeakerEmbedder(SimpleNamespace(env_name=lambda f: "VOICE_DAEMON_" + f.upper()))


def _targets(model) -> np.ndarray:
    """Each target voice: the mean embedding of one sentence in each language, spoken by espeak-ng."""
    import soundfile as sf

    from daemon.audio.resample import resample

    out = []
    for variant in VOICES:
        embs = []
        for lang, text in TEXTS.items():
            wav = subprocess.run(["espeak-ng", "-v", lang + variant, "--stdout", text], capture_output=True,
                                 check=True).stdout
            a, rate = sf.read(io.BytesIO(wav), dtype="float32")
            embs.append(model.embed([resample(a, rate, 16000)])[0])
        m = np.mean(embs, axis=0)
        out.append(m / np.linalg.norm(m))
    return np.array(out)


def voices(work: Path, seconds: float, seed: int) -> None:
    import soundfile as sf

    from daemon.audio.resample import resample

    wav = work / f"conv{seed}.wav"
    conversation.make(wav, seconds, seed)
    out = work / f"conv{seed}-resynth.wav"
    fig = convert(wav, out, {"VOICE_DAEMON_SPEAKERS": "on", "VOICE_DAEMON_TTS": "espeak", "VOICE_DAEMON_LANGUAGE": "auto",
                             "VOICE_DAEMON_VOICES": ",".join(VOICES)}, engine="resynth")
    side = json.loads(Path(fig["sidecar"]).read_text())
    model = _embedder()
    targets = _targets(model)
    audio, rate = sf.read(str(out), dtype="float32")
    right = total = 0
    for t in side["turns"]:
        if t["end"] - t["start"] < 1.0:
            continue  # too short to tell a voice by
        piece = resample(audio[int(t["start"] * rate):int(t["end"] * rate)], rate, 16000)
        if not np.any(piece):
            continue  # nothing was spoken there (no words recognised)
        nearest = int(np.argmax(targets @ model.embed([piece])[0]))
        want = VOICES.index(next(s["voice"] for s in side["speakers"] if s["speaker"] == t["speaker"]))
        right += nearest == want
        total += 1
    print(f"voices: {right}/{total} output turns ({100 * right / max(1, total):.1f} %) nearest to their own "
          f"target voice (goal ≥ 95 %); speakers {[(s['speaker'], s['voice']) for s in side['speakers']]}", flush=True)


def cost(work: Path, seconds: float, seed: int, runs: int) -> None:
    wav = work / f"conv{seed}.wav"
    conversation.make(wav, seconds, seed)
    walls: dict[str, list[float]] = {"off": [], "on": []}
    env = {"VOICE_DAEMON_TTS": "espeak", "VOICE_DAEMON_LANGUAGE": "auto", "VOICE_DAEMON_VOICES": ",".join(VOICES)}
    for _ in range(runs):
        for mode in ("off", "on"):
            fig = convert(wav, work / f"cost-{mode}.wav", {**env, "VOICE_DAEMON_SPEAKERS": mode}, engine="resynth")
            walls[mode].append(fig["wall_seconds"])
            print(f"cost: speakers {mode}: {fig['wall_seconds']:.1f} s for {fig['audio_seconds']:.0f} s", flush=True)
    off, on = np.median(walls["off"]), np.median(walls["on"])
    print(f"cost: resynth on 2 workers, {seconds:.0f} s conversation: speakers off {off:.1f} s, on {on:.1f} s "
          f"(medians of {runs}, interleaved): {100 * (on / off - 1):+.1f} % (goal ≤ 10 %); "
          f"runs off {walls['off']} on {walls['on']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="diarize,single,voices,cost")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--seconds", type=float, default=200.0, help="length of each conversation")
    ap.add_argument("--runs", type=int, default=2, help="cost: runs of each mode")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="speakers-check-"))
    work.mkdir(parents=True, exist_ok=True)
    parts, seeds = a.parts.split(","), [int(s) for s in a.seeds.split(",")]
    if "diarize" in parts:
        diarize(work, seeds, a.seconds)
    if "single" in parts:
        single(work)
    if "voices" in parts:
        voices(work, a.seconds, seeds[0])
    if "cost" in parts:
        cost(work, a.seconds, seeds[0], a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
