"""One job's speakers, for the stream (parent side, numpy only): which windows of a chunk to
embed, the chunk's turns with each speaker's voice once its embeddings are in, and what the
sidecar and the RTTM file say at the end.  The clustering is ``speakers.SpeakerTracker``."""

from __future__ import annotations

import numpy as np

from daemon.audio.speakers import SpeakerTracker, rttm, speech_spans, windows


class JobSpeakers:
    def __init__(self, params: dict, rate: int, window_s: float, threshold: float, voice: str | None):
        self.rate, self.window_s, self.vad_threshold = rate, window_s, threshold
        self.voices = list(params["voices"])
        if voice and params.get("by_name", True):
            self.voices[0] = voice  # a voice folder picks the first speaker's voice
        self.write_rttm = bool(params.get("rttm"))
        self.tracker = SpeakerTracker(threshold=params["threshold"], min_seconds=params["min_seconds"])
        self.spans: dict[int, list[tuple[int, int]]] = {}
        self.windows: dict[int, list[tuple[int, int]]] = {}
        self.ready: dict[int, np.ndarray] = {}

    def plan(self, index: int, start: int, end: int, probs: np.ndarray, first_window: int) -> list[tuple[int, int]]:
        """Chunk ``index`` = frames [start, end): the windows (frames from ``start``) to embed."""
        self.spans[index] = speech_spans(probs, first_window, self.window_s, self.rate, start, end, self.vad_threshold)
        self.windows[index] = windows(self.spans[index], self.rate)
        return self.windows[index]

    def embedded(self, index: int, embeddings: np.ndarray, offsets: dict[int, float]) -> dict[int, list[dict]]:
        """Chunk ``index``'s embeddings are in: the turns of every chunk now settled (they are
        settled in chunk order), {index: [{start, end, speaker, voice}, …]} in chunk seconds."""
        self.ready[index] = embeddings
        out = {}
        while (i := self.tracker.next_chunk) in self.ready:
            r = self.rate
            spans = [(s / r, e / r) for s, e in self.spans.pop(i)]
            wins = [(s / r, e / r) for s, e in self.windows.pop(i)]
            turns = self.tracker.add(i, offsets[i], spans, wins, self.ready.pop(i))
            out[i] = [{**t, "voice": self.voice_of(t["speaker"])} for t in turns]
        return out

    def voice_of(self, speaker: int) -> str:
        return self.voices[(speaker - 1) % len(self.voices)]

    def sidecar(self) -> dict:
        speakers = [{**s, "voice": self.voice_of(s["speaker"])} for s in self.tracker.summary()]
        return {"speakers": speakers, "turns": self.tracker.turns}

    def rttm(self, name: str) -> str:
        return rttm(name, self.tracker.turns)
