"""The bed: everything in a chunk that is not the voice (music, effects, the room), kept under the new voice.

    chunk ──VAD──▶ auto: is there a bed worth keeping?  no ─▶ the engine on the chunk (what `drop` does)
      └─ separator ─▶ vocals ──× speech mask──▶ voice ─▶ engine ─▶ converted ─┐
                       bed = chunk − voice ──(ducked under speech)────────────+─▶ output

The speech mask is 0 between phrases, so there the voice is exactly zero, the bed is the chunk
itself and the output equals the input sample for sample; it rises to 1 over each phrase (the
windows where the VAD hears speech in the chunk or in the voice stem, widened by ``HANG_S`` and
ramped), where the separator's voice stem is converted.
The bed is ``chunk − voice``, not the separator's accompaniment: what the separator's masks do
not cover (above about 11 kHz) stays in the bed.

Pure numpy apart from the two models it is handed (the worker's Silero VAD and the separator):
``pipeline.convert_chunk`` calls ``BedStage.convert`` around the engine on every backend.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from daemon.audio.resample import resample

VAD_RATE, WINDOW, CONTEXT = 16000, 512, 64  # Silero VAD's rate, window and context (audio/vad.py)
HANG_S = 0.2          # speech mask widened this much each side of the VAD's speech windows
#: auto keeps the bed when what lies between phrases is at most this far below the speech (the
#: shared recordings' own floors: 14 to 41 dB; a music bed mixed 6 to 12 dB below: 5 to 13 dB)
KEEP_WITHIN_DB = 16.0
TONAL_DB = 30.0       # ... and is tonal (``tonality_db``)
FLOOR_DBFS = -70.0    # ... and is a sound, not digital silence or dither
MIN_GAP_WINDOWS = 10  # auto needs 0.32 s between phrases to judge a chunk; less: no bed is kept
GAP_PROBABILITY = 0.35  # auto's "between phrases": windows the VAD gives less than this, and so both neighbours
NO_SPEECH_DBFS = -45.0  # auto keeps a chunk without speech whole only when it is this loud: music, not a room floor
UNHEARD_VOICE_DB = 6.0  # a chunk without speech whose voice stem is within this of its level is mostly a voice the VAD missed
EPS = 1e-12

Convert = Callable[[np.ndarray], tuple[np.ndarray, dict]]


def at_vad_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` at 16 kHz, padded with zeros to whole VAD windows."""
    x16 = resample(audio, rate, VAD_RATE)
    return np.concatenate([x16, np.zeros(-len(x16) % WINDOW, np.float32)])


def vad_probabilities(vad, x16: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability per 32 ms window of ``x16`` (``at_vad_rate``; ``vad``: a ``SplitVad``)."""
    probs, _ = vad.probabilities(vad.features(x16, np.zeros(CONTEXT, np.float32)), None)
    return np.asarray(probs, dtype=np.float32)


def speech_mask(probs: np.ndarray, frames: int, rate: int, threshold: float = 0.5,
                hang_s: float = HANG_S) -> np.ndarray:
    """A smooth 0…1 gain per sample: 1 over speech (windows at or above ``threshold``, widened by
    ``hang_s`` each side), exactly 0 elsewhere, a ramp of about two windows between."""
    if frames == 0 or not len(probs):
        return np.zeros(frames, np.float32)
    window_s = WINDOW / VAD_RATE
    speech = (np.asarray(probs) >= threshold).astype(np.float64)
    hang = int(np.ceil(hang_s / window_s))
    if hang:
        speech = (np.convolve(speech, np.ones(2 * hang + 1), mode="same") > 0).astype(np.float64)
    # A short Hann smoothing at window resolution, then linear between window centres: exact zeros
    # stay zeros (a sum of zeros), and the cost does not grow with the sample rate.
    ramp = np.hanning(5)[1:-1]
    smooth = np.convolve(speech, ramp / ramp.sum(), mode="same")
    centres = (np.arange(len(smooth)) + 0.5) * window_s * rate
    mask = np.interp(np.arange(frames), centres, smooth)
    mask[mask < 1e-6] = 0.0
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + EPS)) if len(x) else -120.0


def worth_keeping(x16: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> tuple[bool, dict]:
    """``auto``'s rule, from the chunk at 16 kHz (``at_vad_rate``) and its VAD windows: keep the bed
    when the windows between phrases (below ``threshold``, and so are both neighbours) hold a sound
    (above ``FLOOR_DBFS``) that is within ``KEEP_WITHIN_DB`` of the speech and tonal (``TONAL_DB``:
    music, not the steady hiss of a noisy recording); with no speech at all, when the chunk is such
    a tonal sound (a missed voice is converted, as ``drop`` would).
    Returns the decision and the figures it was made from."""
    frames = x16[: len(probs) * WINDOW].reshape(len(probs), WINDOW)
    speech = np.asarray(probs) >= threshold
    # Between phrases means the VAD is sure there is no voice: windows it half hears (a soft word, a
    # voice under the threshold) are neither speech nor gap, so they cannot pass for a loud bed.
    quiet = np.asarray(probs) < min(GAP_PROBABILITY, threshold)
    gap = quiet & np.roll(quiet, 1) & np.roll(quiet, -1)
    figures: dict = {"gap_seconds": round(float(gap.sum()) * WINDOW / VAD_RATE, 3)}
    if gap.sum() < MIN_GAP_WINDOWS:
        return False, figures
    figures["gap_dbfs"] = round(level_db(frames[gap]), 1)
    if figures["gap_dbfs"] <= FLOOR_DBFS:
        return False, figures
    figures["gap_tonal_db"] = round(tonality_db(frames[gap]), 1)
    if not speech.any():
        return figures["gap_tonal_db"] >= TONAL_DB and figures["gap_dbfs"] > NO_SPEECH_DBFS, figures
    figures["gap_below_speech_db"] = round(level_db(frames[speech]) - figures["gap_dbfs"], 1)
    return (figures["gap_below_speech_db"] <= KEEP_WITHIN_DB and figures["gap_tonal_db"] >= TONAL_DB), figures


def tonality_db(frames: np.ndarray) -> float:
    """Mean over 32 ms frames of the strongest bin against the median bin, 125 Hz to 6 kHz, in dB:
    about 20 to 25 for a noise floor, above 33 with chords playing (docs/background.md)."""
    power = np.abs(np.fft.rfft(frames * np.hanning(WINDOW), axis=1)) ** 2
    band = power[:, 4:200] + EPS
    return float(np.mean(10 * np.log10(band.max(axis=1) / np.median(band, axis=1))))


def duck_gain(mask: np.ndarray, duck_db: float) -> np.ndarray:
    """The bed's gain: 1 between phrases, ``-duck_db`` dB under speech, following the mask."""
    floor = 10.0 ** (-duck_db / 20.0)
    return (1.0 - (1.0 - floor) * mask).astype(np.float32)


def residual_db(bed16: np.ndarray, voice16: np.ndarray, speech: np.ndarray, duck_db: float) -> float | None:
    """An estimate of how far below the voice the original speech left in the bed lies, under speech,
    in dB after ducking (higher is better).  From the bed and the voice taken out, both at 16 kHz in
    whole VAD windows, and the windows that hold speech (``speech``): the bed's power spectrum under
    speech in excess of its spectrum between phrases is taken for voice.  It costs two FFTs of the
    chunk at 16 kHz; a bed that changes between the phrases and under them (a louder chorus) counts
    as voice, so the estimate errs low.  None without speech, or without 0.32 s between phrases."""
    speech = np.asarray(speech, dtype=bool)
    gap = ~(speech | np.roll(speech, 1) | np.roll(speech, -1))
    if not speech.any() or gap.sum() < MIN_GAP_WINDOWS:
        return None
    n = len(speech)
    spectra = np.abs(np.fft.rfft(bed16[: n * WINDOW].reshape(n, WINDOW) * np.hanning(WINDOW), axis=1)) ** 2
    excess = np.maximum(spectra[speech].mean(axis=0) - spectra[gap].mean(axis=0), 0.0).sum()
    voice = np.abs(np.fft.rfft(voice16[: n * WINDOW].reshape(n, WINDOW)[speech] * np.hanning(WINDOW), axis=1)) ** 2
    return round(float(10 * np.log10((voice.sum(axis=1).mean() + EPS) / (excess + EPS))) + duck_db, 1)


class BedStage:
    """The bed around the engine, per chunk, in a worker: ``separator`` (``vocals(audio, rate)``)
    and ``vad`` (a ``SplitVad``) are the worker's own, loaded once."""

    def __init__(self, mode: str, separator, vad, *, duck_db: float = 0.0, threshold: float = 0.5,
                 estimate: bool = True):
        if mode not in ("auto", "keep"):
            raise ValueError(f"a bed stage for mode {mode!r}: only auto and keep have one")
        self.mode, self.separator, self.vad = mode, separator, vad
        self.duck_db, self.threshold, self.estimate = duck_db, threshold, estimate

    def convert(self, audio: np.ndarray, rate: int, convert: Convert) -> tuple[np.ndarray, dict]:
        """``convert`` (the engine, samples in and out) on the chunk's voice, mixed back over its bed;
        or on the whole chunk, untouched by this stage, where ``auto`` finds no bed to keep."""
        audio = np.asarray(audio, dtype=np.float32)
        x16 = at_vad_rate(audio, rate)
        probs = vad_probabilities(self.vad, x16)
        figures: dict = {}
        if self.mode == "auto":
            keep, figures = worth_keeping(x16, probs, self.threshold)
            if not keep:
                result, info = convert(audio)
                return result, {**info, "bed": {"mode": self.mode, "kept": False, **figures}}
        unheard = False
        if not (probs >= self.threshold).any():  # no speech: the whole chunk is bed; the engine hears silence
            stem = self.separator.vocals(audio, rate).astype(np.float32) if level_db(audio) > FLOOR_DBFS else audio * 0
            # ... unless the voice stem says the VAD missed a voice: then the stem over the whole chunk is
            # the voice, converted and mixed back, so no original voice passes through unconverted.
            unheard = level_db(audio) > FLOOR_DBFS and level_db(stem) > level_db(audio) - UNHEARD_VOICE_DB
            mask = np.ones_like(audio) if unheard else np.zeros_like(audio)
            voice = stem if unheard else mask
        else:
            stem = self.separator.vocals(audio, rate).astype(np.float32)
            # Speech where the VAD hears it in the chunk or in the voice stem: a soft onset under
            # loud music is still taken out with the voice (and the recogniser hears it).
            probs = np.maximum(probs, vad_probabilities(self.vad, at_vad_rate(stem, rate)))
            mask = speech_mask(probs, len(audio), rate, self.threshold)
            voice = mask * stem
        bed = audio - voice
        converted, info = convert(voice)
        converted = np.asarray(converted, dtype=np.float32)
        out = converted + bed * duck_gain(mask, self.duck_db) if self.duck_db else converted + bed
        bed_info = {"mode": self.mode, "kept": True, "duck_db": self.duck_db, "speech_seconds": round(float(mask.sum()) / rate, 3),
                    **figures, **({"unheard_voice": True} if unheard else {})}
        if self.estimate:
            bed_info["residual_db"] = residual_db(at_vad_rate(bed, rate), at_vad_rate(voice, rate),
                                                  probs >= self.threshold, self.duck_db)
        models = [*info.get("models", []), *self.separator.models()]
        return out.astype(np.float32), {**info, "models": models, "bed": bed_info}


def summarize(infos: list[dict]) -> dict | None:
    """The sidecar's ``background`` from the chunks' infos: the mode, how many chunks kept their bed
    (and in how many a voice the VAD did not hear was taken out over the whole chunk), and the residual estimate over them (the worst chunk, and the speech-weighted mean); None
    without a bed stage (``drop``) or when ``auto`` kept no bed."""
    beds = [i["bed"] for i in infos if isinstance(i.get("bed"), dict)]
    kept = [b for b in beds if b.get("kept")]
    mode = beds[0]["mode"] if beds else None
    if not kept and mode != "keep":
        return None
    out: dict = {"mode": mode, "kept_chunks": len(kept), "chunks": len(infos)}
    if unheard := sum(1 for b in kept if b.get("unheard_voice")):
        out["unheard_voice_chunks"] = unheard  # a voice the VAD did not hear, taken out over the whole chunk
    if kept:
        out["duck_db"] = kept[0].get("duck_db", 0.0)
    est = [(b["residual_db"], b.get("speech_seconds", 0.0)) for b in kept if b.get("residual_db") is not None]
    if est:
        weight = sum(s for _, s in est) or 1.0
        power = sum(10 ** (-db / 10) * s for db, s in est) / weight
        out["residual_db"] = {"worst": min(db for db, _ in est), "mean": round(-10 * np.log10(power + EPS), 1)}
    return out
