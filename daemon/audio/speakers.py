"""Who speaks when: speech windows of a chunk, and speakers that stay the same across chunks.

Pure numpy, for the parent (which never imports torch).  A worker embeds each chunk's speech
windows (``pipeline.chunk_speakers``); ``SpeakerTracker.add`` takes the chunks' embeddings in
chunk order and answers each chunk's turns at once, so a chunk's engine knows its speakers before
it runs, while later chunks are still being decoded.  The same input gives the same speakers:
every step is deterministic and depends only on the chunks before.

Within a chunk, windows are grouped by average-linkage clustering at cosine distance
``threshold``; each group joins the known speaker whose centroid is within ``threshold`` of its
own, or starts a candidate.  A candidate becomes a speaker (the next number, in order of first
appearance) once it has ``min_seconds`` of speech; until then its turns go to the nearest speaker,
so a voice heard for two words does not get a voice of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.audio.plan import silences

#: Embedding windows: this long, this far apart (seconds; overlapping windows cost twice as much and
#: scored no better on the test conversations); a shorter stretch of speech is one window.
WINDOW_S, HOP_S = 1.5, 1.5
#: Speech shorter than this gets no window of its own: it takes its neighbour's speaker.
MIN_SPAN_S = 0.3


def speech_spans(part: np.ndarray, w0: int, window_s: float, rate: int, lo: int, hi: int,
                 threshold: float) -> list[tuple[int, int]]:
    """Speech in frames [lo, hi) of the file, from the VAD's probabilities ``part`` (window ``w0``
    on): (start, end) frames relative to ``lo`` (the complement of the silences chunks are cut in)."""
    base = int(w0 * window_s * rate)
    quiet = [(s + base, e + base) for s, e in silences(part, window_s, rate, threshold=threshold)]
    spans, pos = [], lo
    for s, e in quiet + [(hi, hi)]:
        s, e = max(lo, min(hi, s)), max(lo, min(hi, e))
        if s - pos >= MIN_SPAN_S * rate:
            spans.append((pos - lo, s - lo))
        pos = max(pos, e)
    return spans


def windows(spans: list[tuple[int, int]], rate: int) -> list[tuple[int, int]]:
    """The embedding windows (frames) over speech ``spans``: ``WINDOW_S`` long every ``HOP_S``,
    the last one flush with the span's end; a span shorter than a window is one window."""
    win, hop = int(WINDOW_S * rate), int(HOP_S * rate)
    out = []
    for s, e in spans:
        if e - s <= win:
            out.append((s, e))
            continue
        starts = list(range(s, e - win + 1, hop))
        if starts[-1] + win < e:
            starts.append(e - win)
        out += [(a, a + win) for a in starts]
    return out


def cluster(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage agglomerative clustering of unit vectors, merging while the closest pair
    of clusters is nearer than ``threshold`` in cosine distance; labels 0… in order of first
    appearance.  O(n³) on a chunk's windows (tens), deterministic (ties: the lowest indices)."""
    n = len(emb)
    if n == 0:
        return np.zeros(0, np.int64)
    dist = 1.0 - np.clip(emb @ emb.T, -1.0, 1.0)
    members = [[i] for i in range(n)]
    sizes = np.ones(n)
    np.fill_diagonal(dist, np.inf)
    alive = np.ones(n, bool)
    while alive.sum() > 1:
        d = np.where(alive[:, None] & alive[None, :], dist, np.inf)
        k = int(np.argmin(d))
        a, b = divmod(k, n)
        if d[a, b] >= threshold:
            break
        a, b = min(a, b), max(a, b)
        # Average linkage: the distance to the union is the size-weighted mean of the two.
        merged = (dist[a] * sizes[a] + dist[b] * sizes[b]) / (sizes[a] + sizes[b])
        dist[a, :], dist[:, a] = merged, merged
        dist[a, a] = np.inf
        sizes[a] += sizes[b]
        members[a] += members[b]
        alive[b] = False
        dist[b, :], dist[:, b] = np.inf, np.inf
    labels = np.zeros(n, np.int64)
    for i in np.flatnonzero(alive):
        labels[members[i]] = min(members[i])
    _, first = np.unique(labels, return_index=True)
    order = {labels[i]: rank for rank, i in enumerate(sorted(first))}
    return np.array([order[x] for x in labels], np.int64)


@dataclass
class _Voiceprint:
    total: np.ndarray            # sum of the unit embeddings heard
    seconds: float               # speech heard
    speaker: int | None = None   # its number once it has enough speech

    def centroid(self) -> np.ndarray:
        n = np.linalg.norm(self.total)
        return self.total / n if n else self.total


@dataclass
class SpeakerTracker:
    threshold: float = 0.4
    min_seconds: float = 3.0
    prints: list[_Voiceprint] = field(default_factory=list)
    speakers: int = 0
    turns: list[dict] = field(default_factory=list)   # every turn so far, seconds of the file
    next_chunk: int = 0

    def add(self, index: int, offset_s: float, spans: list[tuple[float, float]],
            wins: list[tuple[float, float]], emb: np.ndarray) -> list[dict]:
        """Chunk ``index`` (they must come in order): its speech ``spans`` and embedding windows
        (seconds from the chunk's start) with their embeddings; returns the chunk's turns,
        ``{"start", "end", "speaker"}`` in seconds from the chunk's start (speakers count from 1)."""
        if index != self.next_chunk:
            raise ValueError(f"chunk {index} came before chunk {self.next_chunk}")
        self.next_chunk += 1
        if not len(wins):
            return []
        emb = np.asarray(emb, np.float32).reshape(len(wins), -1)
        local = cluster(emb, self.threshold)
        seconds = np.zeros(local.max() + 1)
        for t in _turns(spans, wins, local):
            seconds[t["speaker"]] += t["end"] - t["start"]
        prints = [self._join(emb[local == g].sum(axis=0), float(seconds[g])) for g in range(local.max() + 1)]
        for p in prints:   # in order of first appearance in the chunk
            if p.speaker is None and p.seconds >= self.min_seconds:
                p.speaker = self._new_speaker()
        if not any(p.speaker for p in self.prints):  # nobody yet: the chunk's most heard voice speaks
            max(prints, key=lambda p: p.seconds).speaker = self._new_speaker()
        labels = [self._speaker_of(prints[g]) for g in local]
        turns = _turns(spans, wins, labels)
        self.turns += [{**t, "start": round(t["start"] + offset_s, 3), "end": round(t["end"] + offset_s, 3)}
                       for t in turns]
        return turns

    def _join(self, total: np.ndarray, seconds: float) -> _Voiceprint:
        """The voiceprint this group belongs to (the nearest within the threshold), or a new one."""
        c = total / (np.linalg.norm(total) or 1.0)
        best, best_d = None, self.threshold
        for p in self.prints:
            d = 1.0 - float(c @ p.centroid())
            if d < best_d:
                best, best_d = p, d
        if best is None:
            best = _Voiceprint(np.zeros_like(total), 0.0)
            self.prints.append(best)
        best.total = best.total + total
        best.seconds += seconds
        return best

    def _new_speaker(self) -> int:
        self.speakers += 1
        return self.speakers

    def _speaker_of(self, p: _Voiceprint) -> int:
        if p.speaker is not None:
            return p.speaker
        known = [q for q in self.prints if q.speaker is not None]
        return max(known, key=lambda q: float(p.centroid() @ q.centroid())).speaker

    def summary(self) -> list[dict]:
        """Each speaker: number, seconds of speech, turns."""
        out = {}
        for t in self.turns:
            s = out.setdefault(t["speaker"], {"speaker": t["speaker"], "seconds": 0.0, "turns": 0})
            s["seconds"] = round(float(s["seconds"] + t["end"] - t["start"]), 3)
            s["turns"] += 1
        return [out[k] for k in sorted(out)]


def _turns(spans, wins, labels) -> list[dict]:
    """Each span cut where its windows' speaker changes (halfway between the windows' centres);
    neighbouring pieces of one speaker joined into one turn."""
    centres = np.array([(s + e) / 2 for s, e in wins])
    turns: list[dict] = []
    for s, e in spans:
        inside = [i for i, c in enumerate(centres) if s <= c <= e]
        if not inside:  # too short for a window: the nearest window's speaker
            inside = [int(np.argmin(np.abs(centres - (s + e) / 2)))]
        pos = s
        for k, i in enumerate(inside):
            end = e if k == len(inside) - 1 else (centres[i] + centres[inside[k + 1]]) / 2
            _append(turns, pos, end, labels[i])
            pos = end
    return turns


def _append(turns: list[dict], start: float, end: float, speaker: int) -> None:
    if end <= start:
        return
    if turns and turns[-1]["speaker"] == speaker and start - turns[-1]["end"] < 1e-6:
        turns[-1]["end"] = round(end, 3)
    else:
        turns.append({"start": round(start, 3), "end": round(end, 3), "speaker": int(speaker)})


def rttm(name: str, turns: list[dict]) -> str:
    """NIST RTTM: one SPEAKER line per turn (file, channel 1, onset, duration, speaker name)."""
    file_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "audio"
    return "".join(f"SPEAKER {file_id} 1 {t['start']:.3f} {t['end'] - t['start']:.3f} <NA> <NA> "
                   f"speaker{t['speaker']} <NA> <NA>\n" for t in turns)
