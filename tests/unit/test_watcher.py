"""Readiness rules: ignore patterns, settle, decodable header, links, size limit.

The Settler is driven with a hand-moved clock (no sleeps) on real files; the probe is
the real one (daemon.audio.io.probe) on real recordings and on junk.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from daemon.watcher import Settler, Watcher, classify


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def inbox(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    return d


@pytest.fixture
def clock():
    return Clock()


def settler(inbox, clock, settle=2.0, max_bytes=10**9):
    return Settler(inbox, settle, max_bytes, clock=clock)


def speech(speech_dir, inbox, name="a.wav", src="silero_vad_ru_num.wav") -> Path:
    p = inbox / name
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(speech_dir / src, p)
    return p


@pytest.mark.parametrize("rel,kind", [
    ("a.wav", "audio"), ("A.MP3", "audio"), ("x/y/z.flac", "audio"), ("v.opus", "audio"), ("v.oga", "audio"),
    ("v.m4a", "audio"), ("v.aac", "audio"), ("v.ogg", "audio"), ("имя файла.mp3", "audio"),
    ("a.srt", "transcript"), ("a.vtt", "transcript"), ("a.txt", "transcript"),
    (".hidden.wav", "ignore"), (".hid/a.wav", "ignore"), ("a.wav.part", "ignore"), ("a.wav.tmp", "ignore"),
    ("a.mp3.crdownload", "ignore"), ("~a.wav", "ignore"), (".~lock.a.wav#", "ignore"),
    ("notes.pdf", "ignore"), ("noext", "ignore"), ("a.wav.json", "ignore"),
])
def test_classify(rel, kind):
    assert classify(rel)[0] == kind


def test_ready_only_after_size_and_mtime_settle(speech_dir, inbox, clock):
    s = settler(inbox, clock)
    p = speech(speech_dir, inbox)
    s.nominate(p)
    assert s.check(p) is None  # first sight starts the clock
    clock.t += 1.9
    assert s.check(p) is None
    clock.t += 0.2
    c = s.check(p)
    assert c.verdict == "ready" and c.rel == "a.wav" and c.size == p.stat().st_size
    assert s.pending == {}


def test_a_growing_file_is_never_ready(speech_dir, inbox, clock):
    s = settler(inbox, clock)
    data = (speech_dir / "silero_vad_en.wav").read_bytes()
    p = inbox / "slow.wav"
    with open(p, "wb") as f:
        for i in range(0, len(data), len(data) // 20):
            f.write(data[i:i + len(data) // 20])
            f.flush()
            s.nominate(p)
            assert s.check(p) is None, "taken while still growing"
            clock.t += 1.5  # each write lands before the settle time passes
    clock.t += 0.6  # settle time since the last write was seen
    c = s.check(p)
    assert c.verdict == "ready" and c.size == len(data)


def test_a_touched_file_restarts_the_settle_time(speech_dir, inbox, clock):
    s = settler(inbox, clock)
    p = speech(speech_dir, inbox)
    s.nominate(p)
    s.check(p)
    clock.t += 1.5
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert s.check(p) is None
    clock.t += 1.5
    assert s.check(p) is None
    clock.t += 0.6
    assert s.check(p).verdict == "ready"


def test_undecodable_files_wait_longer_then_go_to_quarantine(inbox, clock):
    s = settler(inbox, clock)
    p = inbox / "fake.mp3"
    # Fixed bytes with no 0xFF: random bytes could hold an MPEG frame sync by chance, and the
    # probe would then find a container "with no audio stream" instead of no audio at all.
    rng = random.Random(11)
    p.write_bytes(bytes(rng.randrange(0, 255) for _ in range(50_000)))
    s.nominate(p)
    s.check(p)
    clock.t += 2.5
    assert s.check(p) is None  # maybe the header is still on its way
    clock.t += s.bad_settle
    c = s.check(p)
    assert c.verdict == "not_audio" and "not" in c.reason, c


@pytest.mark.parametrize("content,verdict", [(b"", "empty"), (b"hello, world", "not_audio"),
                                             (b"RIFF\x00\x00\x00\x00WAVE", "not_audio")])
def test_empty_and_fake_audio(inbox, clock, content, verdict):
    s = settler(inbox, clock)
    p = inbox / "x.wav"
    p.write_bytes(content)
    s.nominate(p)
    s.check(p)
    clock.t += s.bad_settle + 0.1
    assert s.check(p).verdict == verdict


def test_truncated_audio_with_a_good_header_is_taken(speech_dir, inbox, clock):
    # The decoder decides later what a cut-off file yields; intake only needs a header.
    s = settler(inbox, clock)
    p = inbox / "cut.mp3"
    p.write_bytes((speech_dir / "fw_multilingual.mp3").read_bytes()[:30000])
    s.nominate(p)
    s.check(p)
    clock.t += 2.1
    assert s.check(p).verdict == "ready"


def test_too_big(speech_dir, inbox, clock):
    s = settler(inbox, clock, max_bytes=1000)
    p = speech(speech_dir, inbox)
    s.nominate(p)
    s.check(p)
    clock.t += 2.1
    c = s.check(p)
    assert c.verdict == "too_big" and "VOICE_DAEMON_MAX_INPUT_BYTES" in c.reason


def test_symlinks_are_handed_over_as_links_and_never_read(speech_dir, inbox, clock, tmp_path):
    probed = []
    s = Settler(inbox, 2.0, 10**9, clock=clock, probe=lambda p: probed.append(p))
    outside = tmp_path / "outside.wav"
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", outside)
    inside = speech(speech_dir, inbox, "real.wav")
    for name, target in (("out.wav", outside), ("in.wav", inside), ("dir.wav", tmp_path)):
        (inbox / name).symlink_to(target)
        s.nominate(inbox / name)
        assert s.check(inbox / name).verdict == "symlink"
    (inbox / "notes").symlink_to(tmp_path)
    s.nominate(inbox / "notes")
    assert s.check(inbox / "notes") is None
    assert probed == []


def test_never_reads_through_a_linked_folder(speech_dir, inbox, clock, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    speech(speech_dir, elsewhere, "secret.wav")
    (inbox / "linked").symlink_to(elsewhere)
    probed = []
    s = Settler(inbox, 2.0, 10**9, clock=clock, probe=lambda p: probed.append(p))
    p = inbox / "linked" / "secret.wav"
    s.nominate(p)
    s.check(p)
    clock.t += 2.1
    assert s.check(p) is None and probed == []


def test_directories_named_like_audio_and_ignored_names(inbox, clock):
    s = settler(inbox, clock)
    (inbox / "x.wav").mkdir()
    for name in ("x.wav", "a.wav.part", ".b.wav", "notes.pdf", "lone.txt"):
        p = inbox / name
        if not p.exists():
            p.write_bytes(b"x")
        s.nominate(p)
        assert s.check(p) is None
        clock.t += 100
        assert s.check(p) is None
    assert s.pending == {}


def test_a_handed_file_is_not_handed_twice(speech_dir, inbox, clock):
    s = settler(inbox, clock)
    p = speech(speech_dir, inbox)
    s.nominate(p)
    s.check(p)
    clock.t += 2.1
    assert s.check(p).verdict == "ready"
    s.nominate(p)  # a rescan before the supervisor claimed it
    clock.t += 5
    assert s.check_all() == [] and s.check_all() == []
    s.forget_gone(older_than=60)
    assert list(s.handed) == [p]
    clock.t += 60
    s.forget_gone(older_than=60)  # never claimed (e.g. no permission to move it): offer it again
    assert s.handed == {}
    s.nominate(p)
    s.check(p)
    clock.t += 2.1
    assert s.check(p).verdict == "ready"
    p.unlink()
    s.forget_gone()
    assert s.handed == {}


def test_a_lone_text_is_a_job_only_for_resynth_and_waits_for_its_audio(speech_dir, inbox, clock):
    text = inbox / "notes.txt"
    text.write_text("Read me aloud.")
    plain = settler(inbox, clock)
    tts = Settler(inbox, 2.0, 10**9, clock=clock, text_jobs=True)
    for s in (plain, tts):
        s.nominate(text)
        assert s.check(text) is None
    clock.t += 2.1
    assert plain.check(text) is None and plain.pending == {}  # shift: ignored
    assert tts.check(text) is None  # settled as audio would be, but a text waits longer for its audio
    clock.t += tts.bad_settle
    assert tts.check(text).verdict == "ready"
    # with its audio beside it, the same text is that audio's transcript, not a job
    other = inbox / "talk.txt"
    other.write_text("Hello.")
    speech(speech_dir, inbox, "talk.wav")
    tts.nominate(other)
    assert tts.check(other) is None
    clock.t += 100
    assert tts.check(other) is None and other not in tts.pending


def test_a_file_that_crashed_the_probe_is_reported_bad_at_the_next_start(tmp_path):
    from daemon.audio.header import GuardedProbe

    marker = tmp_path / "probing"
    hostile, fine = tmp_path / "hostile.mp3", tmp_path / "fine.wav"
    seen = []

    def probe(path):
        seen.append((path, marker.read_text()))  # the marker names the file while it is parsed
        return None

    guard = GuardedProbe(marker, probe)
    assert guard(fine) is None and seen == [(fine, str(fine))] and not marker.exists()
    marker.write_text(str(hostile))  # as if the process died inside the decoder
    restarted = GuardedProbe(marker, probe)
    assert not marker.exists()
    assert restarted(hostile) == GuardedProbe.CAUSE and len(seen) == 1  # not parsed again
    assert restarted(fine) is None and len(seen) == 2


def test_the_probe_guard_reads_headers_even_when_the_state_disk_is_full(tmp_path):
    """Issue 11, fault 7: the marker cannot be written on a full state disk; the header is read
    all the same (once, without a word on every tick) and no partial marker is left."""
    from daemon.audio.header import GuardedProbe
    from helpers.disks import fill, tmpfs

    with tmpfs(tmp_path / "state", "1m") as state:
        fill(state)
        guard = GuardedProbe(state / "probing", lambda path: None)
        assert guard(tmp_path / "fine.wav") is None and not (state / "probing").exists()


# --- fast pick-up: closed after writing, header and length agree ---------------------------
def fast_settler(inbox, clock, settle=2.0, closed=0.2):
    return Settler(inbox, settle, 10**9, clock=clock, closed_settle=closed)


def test_a_file_closed_after_writing_goes_after_the_short_settle(speech_dir, inbox, clock):
    s = fast_settler(inbox, clock)
    p = speech(speech_dir, inbox)
    s.nominate(p, closed=True)
    assert s.check(p) is None  # first sight after the close
    assert s.next_due() == pytest.approx(0.2)  # the checker wakes for it, not at its next tick
    clock.t += 0.19
    assert s.check(p) is None
    clock.t += 0.02
    c = s.check(p)
    assert c is not None and c.verdict == "ready"
    assert s.closed == {} and s.next_due() is None


def test_without_the_close_event_the_full_settle_applies(speech_dir, inbox, clock):
    s = fast_settler(inbox, clock)
    p = speech(speech_dir, inbox)
    s.nominate(p)  # created or modified only: polling, NFS, `mv` from an unwatched folder
    assert s.check(p) is None
    clock.t += 1.0
    assert s.check(p) is None
    clock.t += 1.01
    assert s.check(p).verdict == "ready"


def test_a_cut_copy_waits_the_full_settle_even_when_closed(speech_dir, inbox, clock):
    """A writer that closes and reopens: after the first close the header declares more than is there."""
    s = fast_settler(inbox, clock)
    data = (speech_dir / "silero_vad_en.wav").read_bytes()
    p = inbox / "reopened.wav"
    p.write_bytes(data[: len(data) // 2])
    s.nominate(p, closed=True)
    assert s.check(p) is None
    clock.t += 1.0
    assert s.check(p) is None  # past the short settle, but the WAV header says it is not all there
    assert s.next_due() is None  # and nothing to wake early for
    with open(p, "ab") as f:  # the writer comes back and finishes
        f.write(data[len(data) // 2:])
    s.nominate(p, closed=True)
    assert s.check(p) is None
    clock.t += 0.21
    assert s.check(p).verdict == "ready"


def test_a_file_written_again_after_its_close_loses_the_short_settle(speech_dir, inbox, clock):
    s = fast_settler(inbox, clock)
    data = (speech_dir / "silero_vad_en.wav").read_bytes()
    p = inbox / "again.wav"
    p.write_bytes(data)
    s.nominate(p, closed=True)
    assert s.check(p) is None
    with open(p, "r+b") as f:  # reopened and changed, no new close seen yet
        f.seek(1000)
        f.write(b"\0" * 10)
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 1_000_000))
    assert s.check(p) is None
    clock.t += 0.5
    assert s.check(p) is None and p not in s.closed
    clock.t += 1.6
    assert s.check(p).verdict == "ready"


def test_the_short_settle_is_never_longer_than_the_full_one(inbox, clock):
    assert Settler(inbox, 0.1, 10, clock=clock, closed_settle=0.5).closed_settle == 0.1
    assert Settler(inbox, 2.0, 10, clock=clock).closed_settle == 2.0  # not given: no fast path


def test_the_watcher_asks_the_generation_in_use_whether_a_lone_text_is_a_job(inbox):
    """A reload that changes the engine changes what the watcher takes, with no restart: it reads
    the shared cell's capabilities as files come."""
    from daemon.engines import abilities
    from daemon.generation import Current, Generation
    from daemon.settings import Settings

    settings = Settings(inbox=inbox, settle_seconds=0.2, engine="shift")
    current = Current(Generation(settings, abilities("shift")))
    watcher = Watcher(settings, lambda cand: None, current=current)
    assert not watcher.settler._text_jobs()
    current.gen = Generation(settings.model_copy(update={"engine": "resynth"}), abilities("resynth"))
    assert watcher.settler._text_jobs()
    assert Watcher(settings, lambda cand: None).settler._text_jobs() is False  # no cell: the configured engine
