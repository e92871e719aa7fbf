"""Speakers on the parent side (pure numpy): speech windows, clustering, the tracker that keeps a
speaker's number across chunks, the voices each speaker gets, RTTM; the per-speaker engines' pieces."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.audio import speakers as S
from daemon.audio.diarization import JobSpeakers
from daemon.audio.plan import StreamPlanner
from daemon.engines.voices import speaker_voices, turn_of, voice_spans
from daemon.settings import Settings

RATE = 16000
WIN_S = 0.032


def people(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` orthogonal unit "voices"."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q[:n]


def heard(voice: np.ndarray, k: int, seed: int, noise: float = 0.25) -> np.ndarray:
    """``k`` noisy unit embeddings of one voice (cosine to it about 0.97)."""
    x = voice + noise * np.random.default_rng(seed).normal(size=(k, len(voice))) / np.sqrt(len(voice))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_cluster_groups_by_voice_and_numbers_by_first_appearance():
    v = people(3)
    emb = np.vstack([heard(v[2], 3, 1), heard(v[0], 4, 2), heard(v[2], 2, 3), heard(v[1], 3, 4)])
    labels = S.cluster(emb, 0.4)
    assert labels.tolist() == [0] * 3 + [1] * 4 + [0] * 2 + [2] * 3
    assert S.cluster(emb, 0.4).tolist() == labels.tolist()  # deterministic
    assert S.cluster(emb, 1.99).tolist() == [0] * 12         # a loose threshold: one speaker


def test_speech_spans_are_the_complement_of_the_silences():
    probs = np.zeros(int(10 / WIN_S), np.float32)
    probs[int(1 / WIN_S):int(3 / WIN_S)] = 0.9
    probs[int(5 / WIN_S):int(5.2 / WIN_S)] = 0.9   # 0.2 s: shorter than a span may be
    probs[int(6 / WIN_S):int(9 / WIN_S)] = 0.9
    spans = S.speech_spans(probs, 0, WIN_S, RATE, 0, 10 * RATE, 0.5)
    near([(a / RATE, b / RATE) for a, b in spans], [(1.0, 3.0), (6.0, 9.0)])
    # Relative to a chunk that starts at 4 s, from the probabilities of its windows only.
    w0 = int(4 / WIN_S)
    part = S.speech_spans(probs[w0:], w0, WIN_S, RATE, 4 * RATE, 10 * RATE, 0.5)
    near([(a / RATE, b / RATE) for a, b in part], [(2.0, 5.0)])


def near(got, want, tol=S.MIN_SPAN_S / 4):
    """Spans equal within the silences' padding (a cut never clips a word's edge)."""
    assert len(got) == len(want) and all(abs(g - w) <= tol for gs, ws in zip(got, want) for g, w in zip(gs, ws)), got


def test_windows_cover_each_span_flush_to_its_end():
    w = S.windows([(0, int(4 * RATE)), (5 * RATE, int(5.8 * RATE))], RATE)
    assert w[0] == (0, int(S.WINDOW_S * RATE))
    assert w[-2][1] == 4 * RATE and w[-1] == (5 * RATE, int(5.8 * RATE))
    assert all(b - a <= S.WINDOW_S * RATE for a, b in w)


def _feed(tracker, chunks, first=0):
    """chunks: list of [(start_s, end_s, embedding)] per chunk, 30 s apart."""
    out = []
    for i, segs in enumerate(chunks, first):
        spans = [(s, e) for s, e, _ in segs]
        emb = np.vstack([x for *_, x in segs]) if segs else np.zeros((0, 32))
        out.append(tracker.add(i, 30.0 * i, spans, spans, emb))
    return out


def test_a_speaker_keeps_their_number_across_chunks():
    v = people(3)
    t = S.SpeakerTracker(threshold=0.4, min_seconds=3.0)
    a = [(0.0, 1.5, heard(v[1], 1, 1)[0]), (1.5, 3.0, heard(v[1], 1, 2)[0]), (3.0, 4.5, heard(v[1], 1, 3)[0]),
         (5.0, 6.5, heard(v[0], 1, 4)[0]), (6.5, 8.0, heard(v[0], 1, 5)[0]), (8.0, 9.5, heard(v[0], 1, 6)[0])]
    b = [(0.0, 1.5, heard(v[0], 1, 7)[0]), (1.5, 3.0, heard(v[0], 1, 8)[0]),
         (4.0, 5.5, heard(v[2], 1, 9)[0]), (5.5, 7.0, heard(v[2], 1, 10)[0]), (7.0, 8.5, heard(v[2], 1, 11)[0]),
         (9.0, 10.5, heard(v[1], 1, 12)[0]), (10.5, 12.0, heard(v[1], 1, 13)[0])]
    first, second = _feed(t, [a, b])
    assert [x["speaker"] for x in first] == [1, 2]
    assert [x["speaker"] for x in second] == [2, 3, 1]
    assert [x["start"] for x in t.turns[2:]] == [30.0, 34.0, 39.0]  # the file's seconds
    with pytest.raises(ValueError):
        t.add(5, 0.0, [], [], np.zeros((0, 32)))


def test_a_few_words_do_not_make_a_speaker_until_there_is_enough_speech():
    v = people(2)
    t = S.SpeakerTracker(threshold=0.4, min_seconds=3.0)
    main = [(float(k), k + 1.0, heard(v[0], 1, k)[0]) for k in range(0, 8)]
    short = [(10.0, 11.2, heard(v[1], 1, 50)[0])]
    first, second = _feed(t, [main + short, short + main])
    assert {x["speaker"] for x in first} == {1} and {x["speaker"] for x in second} == {1}
    assert _feed(t, [[]], first=2) == [[]]
    third = _feed(t, [main + [(10.0, 11.2, heard(v[1], 1, 51)[0])]], first=3)[0]
    assert [x["speaker"] for x in third] == [1, 2]  # 3.6 s heard now: a speaker of their own
    assert [s["speaker"] for s in t.summary()] == [1, 2]


def test_job_speakers_settle_chunks_in_order_and_give_voices():
    v = people(2)
    planner = StreamPlanner(RATE, 30 * RATE, 0, WIN_S)
    planner.add(np.r_[np.ones(int(4 / WIN_S)), np.zeros(int(1 / WIN_S)), np.ones(int(4 / WIN_S))].astype(np.float32))
    js = JobSpeakers({"voices": ["kseniya", "aidar"], "threshold": 0.4, "min_seconds": 1.0, "by_name": True},
                     RATE, WIN_S, 0.5, voice="baya")
    w0 = js.plan(0, 0, 4 * RATE, *planner.probs_between(0, 4 * RATE))
    w1 = js.plan(1, 4 * RATE, 9 * RATE, *planner.probs_between(4 * RATE, 9 * RATE))
    assert js.embedded(1, heard(v[1], len(w1), 1), {0: 0.0, 1: 4.0}) == {}   # waits for chunk 0
    done = js.embedded(0, heard(v[0], len(w0), 2), {0: 0.0, 1: 4.0})
    assert sorted(done) == [0, 1]
    assert done[0][0]["voice"] == "baya" and done[1][0]["voice"] == "aidar"  # a voice folder picks the first
    side = js.sidecar()
    assert [(s["speaker"], s["voice"]) for s in side["speakers"]] == [(1, "baya"), (2, "aidar")]
    lines = js.rttm("my talk.wav").splitlines()
    assert lines[0].split()[:2] == ["SPEAKER", "my_talk.wav"] and lines[1].split()[7] == "speaker2"


def test_speaker_voices_per_engine():
    assert speaker_voices(Settings(engine="resynth", voices="kseniya,aidar")) == ["kseniya", "aidar"]
    assert speaker_voices(Settings(engine="resynth", voice="baya")) == ["baya"]
    shift = speaker_voices(Settings(engine="shift", shift_semitones=4, shift_formant=1.15))
    assert shift[:2] == ["+4/1.15", "-4/0.87"] and len(set(shift)) == len(shift) == 4
    assert speaker_voices(Settings(engine="shift", voices="3/1.1, -2/0.9")) == ["+3/1.1", "-2/0.9"]


def test_turns_pick_a_phrase_voice_and_cut_a_chunk_between_speakers():
    turns = [{"start": 0.5, "end": 3.0, "speaker": 1, "voice": "a"}, {"start": 4.0, "end": 6.0, "speaker": 2, "voice": "b"},
             {"start": 6.2, "end": 7.0, "speaker": 2, "voice": "b"}, {"start": 8.0, "end": 9.0, "speaker": 1, "voice": "a"}]
    assert turn_of(turns, 2.5, 4.5)["voice"] == "a"
    assert turn_of(turns, 7.2, 7.6)["voice"] == "b"   # in no turn: the nearest
    assert turn_of([], 0, 1) is None
    assert voice_spans(turns, 10.0) == [(0.0, 3.5, "a"), (3.5, 7.5, "b"), (7.5, 10.0, "a")]
