"""The target voices given to a file's speakers, in order of first appearance.

``resynth``: voice names (VOICE_DAEMON_VOICES, else VOICE alone).  ``shift``: one
``semitones/formant`` setting per speaker (VOICES, else SHIFT_SEMITONES/SHIFT_FORMANT followed
by its mirror and two more, so that two people stay two people after the disguise).  The
parent puts a speaker's voice into the chunk's turns; the engine reads it from there.
"""

from __future__ import annotations

from daemon.settings import shift_pair as parse_shift

SEMITONES, FORMANT = (-24.0, 24.0), (0.5, 2.0)


def speaker_voices(settings) -> list[str]:
    if settings.engine == "shift":
        if settings.voice_list:
            return [shift_label(*parse_shift(v)) for v in settings.voice_list]
        st, f = settings.shift_semitones, settings.shift_formant
        step = 3.0 if st >= 0 else -3.0
        presets = [(st, f), (-st, 1 / f), (st + step, f * 1.1), (-st - step, 1 / (f * 1.1))]
        out = []
        for a, b in presets:
            label = shift_label(min(max(a, SEMITONES[0]), SEMITONES[1]), min(max(b, FORMANT[0]), FORMANT[1]))
            if label not in out:
                out.append(label)
        return out
    return settings.voice_list or [settings.voice]


def voice_of(voices: list[str], speaker: int) -> str:
    """Speaker ``speaker`` (from 1)'s voice; past the end of the list the voices come round again."""
    return voices[(speaker - 1) % len(voices)]


def shift_label(semitones: float, formant: float) -> str:
    return f"{semitones:+g}/{formant:.3g}"


def turn_of(turns: list[dict], start: float, end: float) -> dict | None:
    """The turn a phrase [start, end) belongs to: the one it overlaps most, else the nearest."""
    if not turns:
        return None
    overlap = [min(end, t["end"]) - max(start, t["start"]) for t in turns]
    best = max(range(len(turns)), key=lambda i: overlap[i])
    if overlap[best] > 0:
        return turns[best]
    mid = (start + end) / 2
    return min(turns, key=lambda t: min(abs(mid - t["start"]), abs(mid - t["end"])))


def voice_spans(turns: list[dict], length: float) -> list[tuple[float, float, str]]:
    """[0, length) cut where the voice changes (halfway between the two turns): (start, end, voice)."""
    out: list[tuple[float, float, str]] = []
    for t in sorted(turns, key=lambda t: t["start"]):
        if out and out[-1][2] == t["voice"]:
            continue
        if out:
            prev_end = max(u["end"] for u in turns if u["start"] < t["start"])
            cut = (min(prev_end, t["start"]) + t["start"]) / 2
            out[-1] = (out[-1][0], cut, out[-1][2])
            out.append((cut, length, t["voice"]))
        else:
            out.append((0.0, length, t["voice"]))
    return out
