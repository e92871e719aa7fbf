"""`voice-daemon convert` with the resynth engine, as a user runs it: a real process, the warm
pool, real speech and the real offline models (tiny.en, Silero VAD, Piper's joe voice).

Checks issue 4's goals end to end: duration ±10 ms, phrase onsets within 0.25 s of
the source's, WER ≤ 0.2 when the output is recognised again, the sidecar JSON,
and a transcript beside the input.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from helpers.resynth_models import load, to16k, whisper
from helpers.speech_metrics import JFK_TEXT, check_onsets_and_words, onset_errors, onsets, transcribe, wer

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000


def convert(src: Path, out: Path, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    full.update({"VOICE_DAEMON_ENGINE": "resynth", "VOICE_DAEMON_TTS": "piper", "VOICE_DAEMON_LANGUAGE": "en",
                 "VOICE_DAEMON_WORKERS": "2", "VOICE_DAEMON_LOG_FORMAT": "json",
                 "VOICE_DAEMON_MODEL_DIR": str(tmp_path / "models")})
    full.update(env)
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(src), str(out)], capture_output=True,
                          text=True, timeout=600, env=full, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc



def _goals(src_path: Path, out: Path, reference: str) -> dict:
    src, res = load(src_path, RATE), load(out, RATE)
    assert abs(sf.info(str(out)).duration - sf.info(str(src_path)).duration) <= 0.010
    check_onsets_and_words(src, to16k(res, RATE), reference, whisper(), label=f"{src_path.name}: ")
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    # resynth finds the speakers by default (VOICE_DAEMON_SPEAKERS=auto): one person here.
    assert sidecar["phrases"] and {m["name"] for m in sidecar["models"]} == {"asr", "tts", "vad", "speaker"}
    assert [s["speaker"] for s in sidecar["speakers"]] == [1] and {p["speaker"] for p in sidecar["phrases"]} == {1}
    return sidecar


def test_convert_jfk(tmp_path, speech_dir):
    out = tmp_path / "jfk.wav"
    proc = convert(speech_dir / "fw_jfk.flac", out, tmp_path)
    assert "real-time factor" in proc.stdout
    sidecar = _goals(speech_dir / "fw_jfk.flac", out, JFK_TEXT)
    ph = sidecar["phrases"]
    assert all(set(p) >= {"start", "end", "text", "stressed", "stretch"} for p in ph)
    assert wer(JFK_TEXT, " ".join(p["text"] for p in ph)) <= 0.2


def test_convert_a_minute_in_several_chunks(tmp_path, speech_dir):
    src = speech_dir / "silero_vad_en.wav"
    out = tmp_path / "en.flac"
    convert(src, out, tmp_path, VOICE_DAEMON_CHUNK_SECONDS="20")
    reference = transcribe(whisper(), load(src, RATE))
    sidecar = _goals(src, out, reference)
    starts = [p["start"] for p in sidecar["phrases"]]
    assert starts == sorted(starts) and starts[-1] > 40  # chunk-relative times made absolute


def test_convert_with_a_transcript_beside_the_input(tmp_path, speech_dir):
    src = tmp_path / "speech.flac"
    src.write_bytes((speech_dir / "fw_jfk.flac").read_bytes())
    cues = [(0.4, 2.3, "And so, my fellow Americans,"), (3.3, 4.4, "ask not"),
            (5.4, 7.7, "what your nation can do for you,"), (8.2, 10.5, "ask what you can do for your nation.")]
    srt = "\n".join(f"{i + 1}\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n{t}\n".replace(".", ",", 2)
                    for i, (a, b, t) in enumerate(cues))
    src.with_suffix(".srt").write_text(srt, encoding="utf-8")
    out = tmp_path / "out.wav"
    proc = convert(src, out, tmp_path)
    assert '"event": "convert.transcript"' in proc.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert [p["text"] for p in sidecar["phrases"]] == [c[2] for c in cues]
    assert [p["start"] for p in sidecar["phrases"]] == pytest.approx([c[0] for c in cues], abs=0.002)
    res = load(out, RATE)
    errors = onset_errors([c[0] for c in cues], onsets(res, 100))
    assert max(errors) <= 0.1, errors
    hyp = transcribe(whisper(), res)
    assert "nation" in hyp.lower() and wer(" ".join(c[2] for c in cues), hyp) <= 0.2, hyp


def test_convert_with_a_plain_text_transcript_over_several_chunks(tmp_path, speech_dir):
    """A .txt beside the audio has no timing: each chunk recognises its slots and takes its words from it."""
    src = tmp_path / "talk.wav"
    src.write_bytes((speech_dir / "silero_vad_en.wav").read_bytes())
    text = transcribe(whisper(), load(src, RATE)).replace("Dublin", "London").replace("philosophy", "economics")
    src.with_suffix(".txt").write_text(text, encoding="utf-8")
    out = tmp_path / "talk.out.wav"
    convert(src, out, tmp_path, VOICE_DAEMON_CHUNK_SECONDS="20")
    sidecar = _goals(src, out, text)
    spoken = " ".join(p["text"] for p in sidecar["phrases"])
    assert "London" in spoken and "economics" in spoken and wer(text, spoken) <= 0.1, spoken


def _cli(*args, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    # These describe the resynth engine's models and voices (`shift` loads only the VAD, has no voices).
    full.update({"VOICE_DAEMON_LOG_FORMAT": "json", "VOICE_DAEMON_ENGINE": "resynth", **env})
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=120, env=full, cwd=ROOT)


def test_voices_lists_the_configured_tts_speakers(tmp_path):
    from helpers.fake_silero import build_fake_silero

    proc = _cli("voices", VOICE_DAEMON_TTS="piper")
    assert proc.returncode == 0 and proc.stdout.startswith("synthesiser: piper (VOICE_DAEMON_TTS=piper)")
    assert [line.split()[1:3] for line in proc.stdout.splitlines() if line.startswith("*")] == [
        ["en_US-joe-medium", "piper"]]
    # Silero: the stand-in torch.package (the real weights cannot be downloaded here); a model file
    # present is what TTS=auto takes first for Russian.
    model = build_fake_silero(tmp_path / "v4_ru.pt")
    proc = _cli("voices", VOICE_DAEMON_TTS_MODEL=str(model), VOICE_DAEMON_VOICE="baya")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("synthesiser: silero (auto, language ru: the best usable here)")
    starred = [line.split() for line in proc.stdout.splitlines() if line.startswith("*")]
    assert starred == [["*", "baya", "silero", "ru", "female", "CC-BY-NC-SA-4.0"]]
    assert "kseniya" in proc.stdout
    proc = _cli("voices", VOICE_DAEMON_TTS_MODEL=str(model), VOICE_DAEMON_VOICE="alice")
    assert proc.returncode == 78 and "VOICE_DAEMON_VOICE=alice" in proc.stderr


def test_models_shows_presence_hashes_and_what_to_do(tmp_path):
    proc = _cli("models", VOICE_DAEMON_TTS="piper")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:] if not line.startswith("(")}
    assert set(rows) == {"vad", "asr", "stress", "tts", "separation", "speaker"}  # resynth finds speakers by default
    assert "(separation: licence MIT; Deezer Spleeter 2-stems" in proc.stdout
    assert all(r[2] == "yes" and len(r[5]) == 64 for r in rows.values())
    # The default Silero model is not on disk and (here) cannot be fetched: exit 78 with the fix.
    proc = _cli("models", "--fetch", VOICE_DAEMON_MODEL_DIR=str(tmp_path / "m"), VOICE_DAEMON_TTS_MODEL="v0_xx",
                VOICE_DAEMON_TTS="silero")
    assert proc.returncode == 78
    assert "VOICE_DAEMON_TTS_MODEL" in proc.stderr and str(tmp_path / "m" / "v0_xx.pt") in proc.stderr


def test_missing_model_stops_convert_with_one_clear_message(tmp_path, speech_dir):
    full = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    full.update({"VOICE_DAEMON_ENGINE": "resynth", "VOICE_DAEMON_TTS": "piper", "VOICE_DAEMON_LANGUAGE": "en",
                 "VOICE_DAEMON_PIPER_VOICE": str(tmp_path / "nope.onnx"), "VOICE_DAEMON_WORKERS": "1",
                 "VOICE_DAEMON_LOG_FORMAT": "json"})
    proc = subprocess.run([sys.executable, "-m", "daemon", "convert", str(speech_dir / "fw_jfk.flac"),
                           str(tmp_path / "o.wav")], capture_output=True, text=True, timeout=300, env=full, cwd=ROOT)
    assert proc.returncode == 78, proc.stderr[-2000:]
    assert "VOICE_DAEMON_PIPER_VOICE" in proc.stderr and str(tmp_path / "nope.onnx") in proc.stderr
    assert not (tmp_path / "o.wav").exists()


def test_the_same_input_gives_the_same_bytes_on_a_busy_machine(tmp_path, speech_dir):
    """What is spoken and how it is fitted must not depend on how busy the machine is: the same
    file converted on a quiet machine and with both cores kept busy by another process (two
    `yes > /dev/null`) gives byte-identical outputs.  Two workers and 5 s chunks, so which worker
    converts which chunk, and what it converted before, changes between the runs."""
    src = speech_dir / "silero_vad_en_num.wav"
    quiet, busy = tmp_path / "quiet.wav", tmp_path / "busy.wav"
    env = {"VOICE_DAEMON_CHUNK_SECONDS": "5", "VOICE_DAEMON_SAMPLE_RATE": "22050"}
    said = convert(src, quiet, tmp_path, **env).stdout
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)]
    try:
        convert(src, busy, tmp_path, **env)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert re.search(r"\b([2-9]|\d\d+) chunks, 2 processes", said), said  # several chunks on two workers
    assert quiet.read_bytes() == busy.read_bytes()
