"""The bed's goals measured on a mix the test makes (docs/background.md, "Figures").

``Keeper(settings)`` sets up this process as a worker (``pipeline.init_worker``: the engine, the VAD
and the separator) and runs the bed stage the workers run (``convert_chunk``'s), keeping what the
engine was given and gave back, so the output can be taken apart against the mix's known voice and
bed.  Used by tests/integration/test_bed_goals.py and tools/bed_check.py.
"""

from __future__ import annotations

import numpy as np

from daemon import pipeline
from daemon.audio import bed
from helpers.beds import chroma, chroma_corr, chroma_less, mix, profiles_corr, si_sdr

FRAME_S = 0.1  # frames of the residual's projection onto the voice


class Keeper:
    def __init__(self, settings):
        assert settings.background in ("auto", "keep")
        pipeline.init_worker(settings)
        self.settings, self.rate = settings, settings.sample_rate
        self.engine, self.stage = pipeline._state()["engine"], pipeline._state()["bed"]

    def convert(self, audio: np.ndarray) -> dict:
        seen: dict = {}

        def engine(voice):
            seen["voice"] = voice
            out, info = self.engine.process(voice, self.rate, voice=self.settings.voice, hints=None)
            seen["converted"] = np.asarray(out, dtype=np.float32)
            return out, info

        out, info = self.stage.convert(audio, self.rate, engine)
        return {"output": out, "info": info, **seen}

    def speech_mask(self, voice: np.ndarray) -> np.ndarray:
        """Where the clean voice speaks (its own VAD, the stage's gate): the truth for the goals."""
        probs = bed.vad_probabilities(pipeline._state()["vad"], bed.at_vad_rate(voice, self.rate))
        return bed.speech_mask(probs, len(voice), self.rate, self.settings.vad_threshold)


class Counting:
    """A separator that counts its separations (auto must run none on clean speech)."""

    def __init__(self, separator):
        self.separator, self.calls = separator, 0

    def vocals(self, audio, rate):
        self.calls += 1
        return self.separator.vocals(audio, rate)

    def models(self):
        return self.separator.models()


def auto_against_drop(keeper: Keeper, speech: np.ndarray) -> dict:
    """``auto`` on ``speech`` against the engine on it alone (``drop``): same bytes? separations run?"""
    state = pipeline._state()
    counting = Counting(state["bed"].separator)
    auto = bed.BedStage("auto", counting, state["vad"], threshold=keeper.settings.vad_threshold)
    out, info = auto.convert(speech, keeper.rate, lambda x: keeper.engine.process(x, keeper.rate, voice="", hints=None))
    drop, _ = keeper.engine.process(speech, keeper.rate, voice="", hints=None)
    return {"identical": out.tobytes() == np.asarray(drop, dtype=np.float32).tobytes(),
            "separations": counting.calls, "bed": info["bed"]}


def residual_db(bed_out: np.ndarray, true_bed: np.ndarray, voice: np.ndarray, under: np.ndarray, rate: int,
                duck_db: float) -> tuple[float, float]:
    """How far below the voice the original voice left in the bed is, under speech (dB): all of the
    bed's error counted as voice, and only its part along the voice (projected per 100 ms)."""
    err = bed_out - true_bed
    f = int(FRAME_S * rate)
    n = len(voice) // f
    e, v, u = (a[: n * f].reshape(n, f) for a in (err, voice, under))
    keep = u.min(axis=1)
    e, v = e[keep], v[keep]
    along = (e * v).sum(axis=1, keepdims=True) / ((v * v).sum(axis=1, keepdims=True) + 1e-12) * v
    return (round(bed.level_db(v) - bed.level_db(e) + duck_db, 1),
            round(bed.level_db(v) - bed.level_db(along) + duck_db, 1))


def goals(keeper: Keeper, speech: np.ndarray, music: np.ndarray, bed_db: float) -> dict:
    """Between phrases (output against input), the bed over the file, the voice left in the bed."""
    rate = keeper.rate
    audio, voice, true_bed = mix(speech, music, bed_db)
    run = keeper.convert(audio)
    out, converted = run["output"], run.get("converted")
    mask = keeper.speech_mask(voice)
    between, under = mask == 0, mask >= 0.999
    fig = {"bed_db": bed_db, "kept": run["info"]["bed"]["kept"],
           "between_sisdr": round(si_sdr(out[between], audio[between]), 1),
           "estimate_db": run["info"]["bed"].get("residual_db")}
    if converted is not None:
        bed_out = out - converted  # the bed as it was mixed (ducked) into the output
        duck = keeper.settings.background_duck_db
        fig["bed_sisdr"] = round(si_sdr(bed_out, true_bed), 1)
        fig["residual_all_db"], fig["residual_voice_db"] = residual_db(
            audio - run["voice"], true_bed, voice, under, rate, duck)
    fig.update(run=run, audio=audio, voice=voice, true_bed=true_bed, under=under)
    return fig


def shift_goals(keeper: Keeper, speech: np.ndarray, music: np.ndarray, bed_db: float) -> dict:
    """``goals``, and under speech: the bed's harmony in the output less the same shift of the clean
    voice; the voice's median F0 moved against the asked ratio."""
    from daemon.engines.shift import median_f0

    fig = goals(keeper, speech, music, bed_db)
    rate, under, out = keeper.rate, fig["under"], fig["run"]["output"]
    shifted, _ = keeper.engine.process(fig["voice"], rate, voice="", hints=None)
    fig["chroma_under"] = round(chroma_corr(out[under] - shifted[under], fig["true_bed"][under], rate), 3)
    # The same difference taken in power, bin by bin: phase-blind, so two renderings of the shifted
    # voice that do not line up sample for sample cancel; and with ``drop`` (the whole mix shifted)
    # for the figure a shifted bed gives.
    true_under = chroma(fig["true_bed"][under], rate)
    fig["chroma_under_power"] = round(profiles_corr(chroma_less(out[under], shifted[under], rate), true_under), 3)
    dropped, _ = keeper.engine.process(fig["audio"], rate, voice="", hints=None)
    fig["chroma_under_power_drop"] = round(
        profiles_corr(chroma_less(dropped[under], shifted[under], rate), true_under), 3)
    # The same with the voice the output was given (the shift of the separated voice): the bed as
    # it lies in the output.  Praat's shift of the separated voice and of the clean one differ by
    # more than the bed's level (their pitch marks fall apart), which the figure above counts as bed.
    bed_out = out - fig["run"]["converted"]
    fig["chroma_bed_under"] = round(chroma_corr(bed_out[under], fig["true_bed"][under], rate), 3)
    asked = 2 ** (keeper.settings.shift_semitones / 12)
    fig["f0_ratio"] = round(median_f0(fig["run"]["converted"], rate) / median_f0(fig["voice"], rate) / asked, 3)
    return fig


def resynth_goals(keeper: Keeper, speech: np.ndarray, music: np.ndarray, bed_db: float, reference: str,
                  asr) -> dict:
    """``goals``, and the round-trip WER of the new voice over the bed against the same speech
    converted without a bed (``asr(audio16k) -> text``)."""
    from daemon.audio.resample import resample
    from helpers.speech_metrics import wer

    fig = goals(keeper, speech, music, bed_db)
    clean, _ = keeper.engine.process(speech, keeper.rate, voice=keeper.settings.voice, hints=None)
    fig["wer_bed"] = round(wer(reference, asr(resample(fig["run"]["converted"], keeper.rate, 16000))), 3)
    fig["wer_clean"] = round(wer(reference, asr(resample(clean, keeper.rate, 16000))), 3)
    return fig


def figures(fig: dict) -> dict:
    """The printable part."""
    return {k: v for k, v in fig.items() if not isinstance(v, (np.ndarray, dict))}
