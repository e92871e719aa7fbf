"""The spool's state machine on real folders: claim, commit, fail, retry, recover."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from daemon.engines import capabilities, voice_folders
from daemon.settings import Settings, SettingsError
from daemon.spool import Spool, acquire_lock, check_folders, collect_status, daemon_pid


def make_settings(tmp_path: Path, **kw) -> Settings:
    base = dict(inbox=tmp_path / "inbox", outbox=tmp_path / "outbox", failed_dir=tmp_path / "failed",
                state_dir=tmp_path / "state", settle_seconds=0.3, workers=2, max_attempts=3)
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def spool(tmp_path):
    sp = Spool(make_settings(tmp_path), capabilities=capabilities(make_settings(tmp_path), voices={"baya", "kseniya"}))
    sp.ensure_dirs()
    return sp


def drop(sp: Spool, rel: str, data: bytes = b"RIFF-fake-audio") -> Path:
    p = sp.inbox / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def visible(root: Path) -> list[str]:
    """Files under root that a user sees (hidden temp names excluded)."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out.append(rel)
    return out


def everything(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def forge_manifest(sp: Spool, job) -> None:
    """Write job.json as a crash would have left it: no check of the state's transition."""
    (sp.job_dir(job) / "job.json").write_text(json.dumps(asdict(job)), encoding="ascii")


def convert(sp: Spool, job, payload: bytes = b"converted") -> Path:
    tmp = sp.start(job)
    tmp.write_bytes(payload)
    return sp.commit(job, {"audio_seconds": 1.0}).output


# --- folders ------------------------------------------------------------------
def test_overlapping_folders_are_refused(tmp_path):
    for kw in ({"outbox": tmp_path / "inbox" / "out"}, {"state_dir": tmp_path / "inbox"},
               {"inbox": tmp_path / "state" / "in"}, {"failed_dir": tmp_path / "outbox"}):
        with pytest.raises(SettingsError) as exc:
            check_folders(make_settings(tmp_path, **kw))
        assert exc.value.exit_code == 78
        assert "must not overlap" in str(exc.value) and "\n" not in str(exc.value)
    check_folders(make_settings(tmp_path))  # siblings are fine


def test_ensure_dirs_creates_missing_folders(tmp_path):
    sp = Spool(make_settings(tmp_path / "deep" / "er"))
    sp.ensure_dirs()
    for d in (sp.inbox, sp.outbox, sp.failed_dir, sp.work, sp.done):
        assert d.is_dir()


# --- claim --------------------------------------------------------------------
def test_claim_moves_the_file_and_writes_a_manifest(spool):
    src = drop(spool, "a b 'c'.wav")
    job = spool.claim(src)
    assert not src.exists()
    assert spool.source(job).read_bytes() == b"RIFF-fake-audio"
    manifest = json.loads((spool.job_dir(job) / "job.json").read_text())
    assert manifest["rel"] == "a b 'c'.wav" and manifest["state"] == "queued" and manifest["attempts"] == 0
    assert manifest["voice"] is None


def test_claim_of_a_vanished_file_leaves_nothing(spool):
    assert spool.claim(spool.inbox / "gone.wav") is None
    assert list(spool.work.iterdir()) == []


def test_voice_folder_and_mirrored_subfolders(spool):
    job = spool.claim(drop(spool, "baya/x.mp3"))
    assert job.voice == "baya"
    other = spool.claim(drop(spool, "podcasts/2024/y.flac"))
    assert other.voice is None
    convert(spool, job)
    convert(spool, other)
    assert visible(spool.outbox) == ["baya/x.mp3", "podcasts/2024/y.flac"]


def test_the_voices_a_folder_may_name_are_given_by_the_builder(tmp_path):
    settings = make_settings(tmp_path, voice="kseniya")
    sp = Spool(settings, capabilities=capabilities(settings, voices={"alice", "bob"}))
    sp.ensure_dirs()
    assert sp.claim(drop(sp, "alice/x.wav")).voice == "alice"
    assert sp.claim(drop(sp, "baya/x.wav")).voice is None  # a Silero speaker, but not one offered here
    assert sp.claim(drop(sp, "bob")).voice is None  # a file, not a folder
    default = Spool(make_settings(tmp_path / "2", voice="alice"))  # without capabilities=: the configured one
    assert default.capabilities.voice_folders == {"alice"}
    assert {"alice", "baya", "kseniya"} <= voice_folders(default.s)  # what the daemon passes (`shift`: labels)


def test_voice_folders_offer_only_the_voices_a_model_has(tmp_path):
    model = tmp_path / "v4_ru.pt"
    silero = make_settings(tmp_path, engine="resynth", tts="silero", tts_model=str(model), voice="alice")
    assert "aidar" not in voice_folders(silero)  # no Silero model file: no Silero speaker is offered
    model.write_bytes(b"present")  # only presence is looked at here; the worker loads and checks it
    assert {"alice", "aidar", "baya", "kseniya"} <= voice_folders(silero)


def test_transcripts_travel_with_their_audio(spool):
    drop(spool, "talk.srt", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    job = spool.claim(drop(spool, "talk.wav"))
    assert job.companions == ["talk.srt"]
    assert (spool.source(job).parent / "talk.srt").exists()
    assert not (spool.inbox / "talk.srt").exists()
    convert(spool, job)
    assert everything(spool.done / job.id / "src") == ["talk.srt", "talk.wav"]


def test_names_that_are_not_valid_utf8_survive_the_manifest(spool):
    name = os.fsdecode(b"bad-\xff-name \xd0\xbf\xd1\x80\xd0\xb8\n.wav")
    job = spool.claim(drop(spool, name))
    again = Spool(spool.s).recover()
    assert [j.rel for j in again] == [name]
    convert(spool, again[0])
    assert (spool.outbox / name).exists()
    assert job.id == again[0].id


# --- commit -------------------------------------------------------------------
def test_commit_publishes_atomically_and_archives_the_source(spool):
    job = spool.claim(drop(spool, "song.mp3"))
    tmp = spool.start(job)
    assert tmp.parent == spool.outbox and tmp.name.startswith(".") and tmp.suffix == ".mp3"
    tmp.write_bytes(b"out")
    final, sidecar = spool.commit(job)
    assert sidecar is None
    assert final == spool.outbox / "song.mp3" and final.read_bytes() == b"out"
    assert everything(spool.outbox) == ["song.mp3"]
    assert list(spool.work.iterdir()) == []
    done = json.loads((spool.done / job.id / "job.json").read_text())
    assert done["state"] == "committed" and done["output"] == "song.mp3" and done["attempts"] == 1
    assert (spool.done / job.id / "src" / "song.mp3").read_bytes() == b"RIFF-fake-audio"


def test_keep_source_false_deletes_it_after_the_output_exists(tmp_path):
    sp = Spool(make_settings(tmp_path, keep_source=False))
    sp.ensure_dirs()
    job = sp.claim(drop(sp, "a.wav"))
    convert(sp, job)
    assert (sp.outbox / "a.wav").exists()
    assert not (sp.done / job.id / "src").exists()


@pytest.mark.parametrize("fmt,name,expected", [("same", "a.aac", "a.m4a"), ("same", "a.oga", "a.ogg"),
                                               ("flac", "a.mp3", "a.flac"), ("same", "a.b.opus", "a.b.opus")])
def test_output_name_follows_the_format(tmp_path, fmt, name, expected):
    sp = Spool(make_settings(tmp_path, output_format=fmt))
    sp.ensure_dirs()
    assert convert(sp, sp.claim(drop(sp, name))).name == expected


def test_an_existing_output_is_never_overwritten(spool):
    (spool.outbox / "a.wav").write_bytes(b"mine")
    first = convert(spool, spool.claim(drop(spool, "a.wav")), b"one")
    second = convert(spool, spool.claim(drop(spool, "a.wav")), b"two")
    assert (spool.outbox / "a.wav").read_bytes() == b"mine"
    assert first.name == "a (1).wav" and first.read_bytes() == b"one"
    assert second.name == "a (2).wav" and second.read_bytes() == b"two"


def test_the_longest_names_still_fit(spool):
    name = "я" * 120 + ".wav"  # 244 bytes: temp names must not exceed NAME_MAX
    out = convert(spool, spool.claim(drop(spool, name)))
    assert out.name == name


def test_the_longest_names_can_fail_too(spool):
    name = "я" * 122 + ".wav"  # 248 bytes: NAME.error.json would pass 255
    dest = spool.fail(spool.claim(drop(spool, name)), "bad", "decode")
    assert dest.name == name
    (report,) = spool.failed_dir.glob("*.error.json")
    assert json.loads(report.read_text())["input"] == name


def test_long_names_that_collide_still_fit(tmp_path):
    """Issue 11, fault 5: a 250-byte name dropped twice needed `NAME (1).wav`, past NAME_MAX; the
    commit failed with ENAMETOOLONG and the job stayed in `committing` for good."""
    sp = Spool(make_settings(tmp_path, output_format="flac"))
    sp.ensure_dirs()
    for name in ("a" * 246 + ".wav", "я" * 125 + ".wav"):  # 250 bytes each; .flac is one byte longer
        outs = [convert(sp, sp.claim(drop(sp, name)), b"%d" % i) for i in range(3)]
        for out in outs:
            assert len(os.fsencode(out.name)) <= 255 and out.suffix == ".flac"
            out.name.encode("utf-8")  # cut at a character boundary, not inside one
        assert [o.name.endswith(e) for o, e in zip(outs, (".flac", " (1).flac", " (2).flac"))] == [True] * 3
        assert [o.read_bytes() for o in outs] == [b"0", b"1", b"2"]
    failed = [sp.fail(sp.claim(drop(sp, "b" * 251 + ".wav")), "bad", "decode") for _ in range(2)]
    assert failed[1].name.endswith(" (1).wav") and len(os.fsencode(failed[1].name)) <= 255
    reports = sorted(sp.failed_dir.glob("*.error.json"))
    assert len(reports) == 2 and all(len(os.fsencode(r.name)) <= 255 for r in reports)
    assert sorted(json.loads(r.read_text())["input"] for r in reports) == ["b" * 251 + ".wav"] * 2
    assert list(sp.work.iterdir()) == [] and [p for p in everything(sp.outbox) if p.startswith(".")] == []


def test_a_job_left_committing_with_a_name_too_long_is_published_under_one_that_fits(spool):
    """What the older version left behind: job.json in `committing` naming an output past NAME_MAX
    (every restart logged spool.recover_error again)."""
    name = "c" * 250 + ".wav"
    (spool.outbox / name).write_bytes(b"first")
    job = spool.claim(drop(spool, name))
    spool.start(job).write_bytes(b"second")
    job.output, job.state = name[:-4] + " (1).wav", "committing"
    forge_manifest(spool, job)
    assert Spool(spool.s).recover() == []
    second = [p for p in everything(spool.outbox) if p != name]
    assert len(second) == 1 and second[0].endswith(" (1).wav") and len(second[0]) <= 255
    assert (spool.outbox / second[0]).read_bytes() == b"second" and list(spool.work.iterdir()) == []


def test_a_blocked_output_path_fails_at_once_naming_the_file(spool):
    """Issue 11, fault 6: outbox/z.wav is a file and inbox/z.wav/inner.wav arrives: the attempt was
    counted after the mkdir, so it retried for ever with attempts 0."""
    from daemon.errors import OutputError

    (spool.outbox / "z.wav").write_bytes(b"an earlier output")
    job = spool.claim(drop(spool, "z.wav/inner.wav"))
    with pytest.raises(OutputError) as exc:
        spool.start(job)
    assert f"{spool.outbox / 'z.wav'} is a file" in exc.value.cause
    assert json.loads((spool.job_dir(job) / "job.json").read_text())["attempts"] == 1  # counted first
    # The failed folder may be blocked the same way (z.wav itself failed before): a free name is used.
    (spool.failed_dir / "z.wav").write_bytes(b"an earlier failure")
    dest = spool.fail(job, exc.value.cause, "output")
    assert dest == spool.failed_dir / "z (1).wav" / "inner.wav" and dest.read_bytes() == b"RIFF-fake-audio"
    assert (spool.failed_dir / "z (1).wav" / "inner.wav.error.json").is_file()
    assert (spool.outbox / "z.wav").read_bytes() == b"an earlier output"


def test_a_dead_encoders_temp_file_goes_when_the_job_is_published(spool):
    """Issue 11, fault 2: a worker SIGKILLed while encoding leaves ..<temp>.voice-daemon-<pid>.tmp.wav;
    the pool's retry publishes the output, and that file is removed with the job's other temps."""
    job = spool.claim(drop(spool, "a.wav"))
    tmp = spool.start(job)
    leftover = tmp.with_name(f".{tmp.stem}.voice-daemon-4242.tmp.wav")
    leftover.write_bytes(b"half an encoding")
    tmp.write_bytes(b"the retry's output")
    spool.commit(job)
    assert everything(spool.outbox) == ["a.wav"]


def test_temp_files_of_jobs_gone_from_work_are_removed_at_start(spool):
    done = spool.claim(drop(spool, "sub/a.wav"))
    tmp = spool.start(done)
    tmp.write_bytes(b"x")
    spool.commit(done)
    (spool.outbox / "sub" / f".{tmp.stem}.voice-daemon-77.tmp.wav").write_bytes(b"half")  # after the commit
    (spool.outbox / f".a.{done.id}.part.json").write_bytes(b"{}")
    (spool.outbox / ".DS_Store").write_bytes(b"the user's")
    (spool.outbox / "sub" / ".notes.part.txt").write_bytes(b"the user's")
    alive = spool.claim(drop(spool, "b.wav"))
    spool.start(alive).write_bytes(b"out")
    alive.output, alive.state = "b.wav", "committing"
    forge_manifest(spool, alive)
    Spool(spool.s).recovery.sweep_outbox()
    assert sorted(p for p in everything(spool.outbox) if "/." in "/" + p) == [
        ".DS_Store", f".b.{alive.id}.part.wav", "sub/.notes.part.txt"]


def test_two_inputs_with_one_stem_get_two_outputs(tmp_path):
    sp = Spool(make_settings(tmp_path, output_format="wav"))
    sp.ensure_dirs()
    a, b = sp.claim(drop(sp, "x.mp3")), sp.claim(drop(sp, "x.flac"))
    ta, tb = sp.start(a), sp.start(b)  # both in flight at once
    ta.write_bytes(b"a")
    tb.write_bytes(b"b")
    sp.commit(b)
    sp.commit(a)
    assert sorted(visible(sp.outbox)) == ["x (1).wav", "x.wav"]


def test_overwrite_replaces(tmp_path):
    sp = Spool(make_settings(tmp_path, overwrite=True))
    sp.ensure_dirs()
    (sp.outbox / "a.wav").write_bytes(b"old")
    convert(sp, sp.claim(drop(sp, "a.wav")), b"new")
    assert everything(sp.outbox) == ["a.wav"] and (sp.outbox / "a.wav").read_bytes() == b"new"


def test_commit_without_output_raises_and_retry_cleans_up(spool):
    job = spool.claim(drop(spool, "a.wav"))
    spool.start(job)
    with pytest.raises(FileNotFoundError):
        spool.commit(job)
    spool.retry(job, "the converted file was not written", "commit", delay=5)
    assert job.state == "queued" and job.not_before > 0 and job.history[0]["stage"] == "commit"
    assert everything(spool.outbox) == []


def test_sidecar_follows_the_output(spool):
    job = spool.claim(drop(spool, "a.wav"))
    tmp = spool.start(job)
    tmp.write_bytes(b"x")
    (spool.outbox / "a.wav").write_bytes(b"other")
    spool.commit(job, {"sidecar": {}})
    assert everything(spool.outbox) == ["a (1).json", "a (1).wav", "a.wav"]


def test_the_sidecar_names_the_published_output_not_the_temp_file(spool):
    """The published sidecar names the published file (here "a (1).wav", the free name chosen at
    commit), never a temp name."""
    job = spool.claim(drop(spool, "a.wav"))
    tmp = spool.start(job)
    tmp.write_bytes(b"x")
    (spool.outbox / "a.wav").write_bytes(b"other")
    spool.commit(job, {"sidecar": {"phrases": [{"text": "привет"}]}})
    side = json.loads((spool.outbox / "a (1).json").read_text(encoding="utf-8"))
    assert side == {"output": "a (1).wav", "phrases": [{"text": "привет"}]}


def test_sidecars_of_one_stem_in_two_formats_do_not_collide(spool):
    for name in ("a.wav", "a.mp3"):
        job = spool.claim(drop(spool, name))
        tmp = spool.start(job)
        tmp.write_bytes(name.encode())
        spool.commit(job, {"sidecar": {"of": name}})
    assert everything(spool.outbox) == ["a.json", "a.mp3", "a.mp3.json", "a.wav"]
    assert json.loads((spool.outbox / "a.json").read_text())["of"] == "a.wav"



def finish_in_work(sp: Spool, job, payload: bytes = b"converted") -> Path:
    """What run_job leaves: the finished output in the job's work folder."""
    done = sp.scratch(job) / f"finished.{sp.output_ext(job)}"
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_bytes(payload)
    return done


def test_the_commit_is_the_one_publish_of_what_the_job_finished_in_its_work_folder(spool):
    job = spool.claim(drop(spool, "talk.wav"))
    spool.start(job)
    done = finish_in_work(spool, job, b"out")
    assert everything(spool.outbox) == []  # nothing reaches the outbox before the commit
    final, sidecar = spool.commit(job, {"output": str(done), "sidecar": {"phrases": [{"text": "hi"}]}})
    assert final == spool.outbox / "talk.wav" and final.read_bytes() == b"out"
    assert json.loads(sidecar.read_text()) == {"output": "talk.wav", "phrases": [{"text": "hi"}]}
    assert everything(spool.outbox) == ["talk.json", "talk.wav"] and not done.exists()


def test_a_commit_cut_short_before_its_move_is_finished_by_recovery(spool, monkeypatch):
    import daemon.spool.machine as machine

    job = spool.claim(drop(spool, "talk.wav"))
    spool.start(job)
    done = finish_in_work(spool, job, b"out")

    def killed(src, dest, **kw):
        raise KeyboardInterrupt  # the daemon dies with the name chosen and recorded, nothing moved

    monkeypatch.setattr(machine, "move", killed)
    with pytest.raises(KeyboardInterrupt):
        spool.commit(job, {"output": str(done), "sidecar": {"of": "talk.wav"}})
    monkeypatch.undo()
    assert everything(spool.outbox) == [] and done.exists()
    assert Spool(spool.s).recover() == []  # published, not converted again
    assert everything(spool.outbox) == ["talk.json", "talk.wav"] and (spool.outbox / "talk.wav").read_bytes() == b"out"
    assert list(spool.work.iterdir()) == []


def test_a_commit_moves_nothing_from_outside_the_jobs_work_folder(spool, tmp_path):
    job = spool.claim(drop(spool, "talk.wav"))
    spool.start(job)
    elsewhere = tmp_path / "elsewhere.wav"
    elsewhere.write_bytes(b"not the job's")
    with pytest.raises(FileNotFoundError):
        spool.commit(job, {"output": str(elsewhere)})
    assert elsewhere.read_bytes() == b"not the job's" and everything(spool.outbox) == []


def test_commit_says_where_the_output_and_its_sidecar_went(spool):
    """The reporter is told, not left to guess between ``a.json`` and ``a.mp3.json``."""
    went = []
    for name in ("a.wav", "a.mp3", "b.wav"):
        job = spool.claim(drop(spool, name))
        tmp = spool.start(job)
        tmp.write_bytes(name.encode())
        went.append(spool.commit(job, {"sidecar": {"of": name}} if name != "b.wav" else {}))
        assert json.loads((spool.done / job.id / "job.json").read_text())["sidecar"] == (
            went[-1].sidecar.name if went[-1].sidecar else None)
    o = spool.outbox
    assert went == [(o / "a.wav", o / "a.json"), (o / "a.mp3", o / "a.mp3.json"), (o / "b.wav", None)]


# --- failure --------------------------------------------------------------------
def test_fail_quarantines_with_an_error_report(spool):
    drop(spool, "sub/bad.txt", b"words")
    job = spool.claim(drop(spool, "sub/bad.wav"))
    tmp = spool.start(job)
    tmp.write_bytes(b"half")
    spool.retry(job, "worker died", "engine", delay=0.1)
    spool.start(job)
    dest = spool.fail(job, "is not a readable audio file", "decode")
    assert dest == spool.failed_dir / "sub" / "bad.wav"
    assert dest.read_bytes() == b"RIFF-fake-audio"
    report = json.loads((spool.failed_dir / "sub" / "bad.wav.error.json").read_text())
    assert report["cause"] == "is not a readable audio file" and report["stage"] == "decode"
    assert report["attempts"] == 2 and report["daemon_version"] and report["failed_at"].endswith("Z")
    assert report["history"][0]["cause"] == "worker died"
    assert everything(spool.failed_dir) == ["sub/bad.txt", "sub/bad.wav", "sub/bad.wav.error.json"]
    assert everything(spool.outbox) == [] and list(spool.work.iterdir()) == []


def test_failed_names_never_collide(spool):
    for _ in range(2):
        spool.fail(spool.claim(drop(spool, "x.wav")), "bad", "decode")
    assert everything(spool.failed_dir) == ["x (1).wav", "x (1).wav.error.json", "x.wav", "x.wav.error.json"]


def test_symlinks_are_quarantined_without_being_followed(spool, tmp_path):
    target = tmp_path / "secret.wav"
    target.write_bytes(b"outside")
    link = spool.inbox / "link.wav"
    link.symlink_to(target)
    spool.fail(spool.claim(link), "is a symbolic link", "intake")
    moved = spool.failed_dir / "link.wav"
    assert moved.is_symlink() and target.read_bytes() == b"outside"


def test_put_back_does_not_count_the_attempt(spool):
    job = spool.claim(drop(spool, "a.wav"))
    spool.start(job).write_bytes(b"partial")
    spool.put_back(job)
    assert job.attempts == 0 and job.state == "queued"
    assert everything(spool.outbox) == []


# --- recovery at every crash point -------------------------------------------
class Crash(BaseException):
    """Stands for kill -9: raised instead of performing the N-th filesystem change."""


class _CrashingOS:
    MUTATING = {"rename", "replace", "link", "unlink", "symlink"}

    def __init__(self, real, budget: list[int]):
        self._real, self._budget = real, budget

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name not in self.MUTATING:
            return attr

        def step(*a, **kw):
            if self._budget[0] == 0:
                raise Crash(name)
            self._budget[0] -= 1
            return attr(*a, **kw)

        return step


class _CrashingShutil(_CrashingOS):
    MUTATING = {"rmtree"}


def _patch_everywhere(monkeypatch, name: str, value) -> None:
    """Replace module ``name`` (os, shutil) in every module that moves or writes the spool's files."""
    import daemon.durable
    import daemon.spool

    modules = [daemon.durable] + [m for key, m in sorted(sys.modules.items()) if key.startswith("daemon.spool.")]
    assert len(modules) > 3, "the spool's modules were not all found"
    for m in modules:
        if hasattr(m, name):
            monkeypatch.setattr(m, name, value)


def _lifecycle(sp: Spool, mode: str):
    """What the daemon does with one file: claim → attempt → commit (or fail)."""
    for job in sp.recover():
        _finish(sp, job, mode)
    for p in sorted(sp.inbox.rglob("*.wav")):  # what the watcher would hand over
        if p.is_file():
            job = sp.claim(p)
            if job is not None:
                _finish(sp, job, mode)


def _finish(sp: Spool, job, mode: str):
    tmp = sp.start(job)
    tmp.write_bytes(b"converted")
    if mode == "fail":
        sp.fail(job, "is not audio", "decode")
    else:
        sp.commit(job)


@pytest.mark.parametrize("mode", ["commit", "fail"])
@pytest.mark.parametrize("keep_source", [True, False])
def test_kill_at_every_step_then_restart_gives_exactly_one_outcome(tmp_path, monkeypatch, mode, keep_source):
    steps = 0
    while True:
        root = tmp_path / f"{mode}-{steps}"
        sp = Spool(make_settings(root, keep_source=keep_source))
        sp.ensure_dirs()
        drop(sp, "dir/take one.wav")
        drop(sp, "dir/take one.srt", b"subs")
        budget = [steps]
        _patch_everywhere(monkeypatch, "os", _CrashingOS(os, budget))
        _patch_everywhere(monkeypatch, "shutil", _CrashingShutil(shutil, budget))
        crashed = False
        try:
            _lifecycle(sp, mode)
        except Crash:
            crashed = True
        monkeypatch.undo()
        _lifecycle(Spool(sp.s), mode)  # the restart, with no crash
        assert everything(sp.inbox) == [], steps
        assert list(sp.work.iterdir()) == [], steps
        if mode == "commit":
            assert everything(sp.outbox) == ["dir/take one.wav"], steps
            assert (sp.outbox / "dir/take one.wav").read_bytes() == b"converted"
            assert everything(sp.failed_dir) == [], steps
            done = list(sp.done.iterdir())
            assert len(done) == 1, steps
            if keep_source:
                assert everything(done[0] / "src") == ["take one.srt", "take one.wav"], steps
        else:
            assert everything(sp.outbox) == [], steps
            assert everything(sp.failed_dir) == ["dir/take one.srt", "dir/take one.wav",
                                                 "dir/take one.wav.error.json"], steps
        if not crashed:
            break
        steps += 1
    assert steps > 8  # the sequence really was cut at many points


def test_a_job_that_kept_killing_the_daemon_is_quarantined(tmp_path):
    sp = Spool(make_settings(tmp_path, max_attempts=2))
    sp.ensure_dirs()
    job = sp.claim(drop(sp, "a.wav"))
    for expected in (1, 2):
        sp.start(job).write_bytes(b"partial")  # then the daemon dies
        jobs = Spool(sp.s).recover()
        if expected == 1:
            assert [j.attempts for j in jobs] == [1]
            job = jobs[0]
        else:
            assert jobs == []
    report = json.loads((sp.failed_dir / "a.wav.error.json").read_text())
    assert report["stage"] == "interrupted" and "2 attempts; the daemon stopped during 2 of them" in report["cause"]
    assert everything(sp.outbox) == []


def test_a_daemon_crash_is_charged_only_to_a_job_that_was_alone_in_flight(tmp_path):
    """Issue 11, fault 3: every job in flight was charged for every crash, so bystanders of a few
    kill -9 ended in failed/.  Now the others are uncharged suspects (run alone next), and only a
    job alone in flight is charged; a failure that ends normally clears the suspicion."""
    sp = Spool(make_settings(tmp_path, max_attempts=2))
    sp.ensure_dirs()
    jobs = [sp.claim(drop(sp, f"{n}.wav")) for n in "abc"]
    for job in jobs:
        sp.start(job).write_bytes(b"partial")  # the daemon dies with three in flight
    resumed = Spool(sp.s).recover()
    assert [(j.attempts, j.suspect, j.charges) for j in resumed] == [(0, True, 0)] * 3
    assert resumed[0].history[0]["cause"] == "the daemon stopped during this attempt, with other jobs in flight"
    a = resumed[0]
    for charges in (1, 2):  # then twice with a alone in flight
        sp.start(a).write_bytes(b"partial")
        resumed = Spool(sp.s).recover()
        if charges == 1:
            a = next(j for j in resumed if j.rel == "a.wav")
            assert (a.attempts, a.charges) == (1, 1)
    assert sorted(j.rel for j in resumed) == ["b.wav", "c.wav"]  # a.wav: quarantined at 2 charges
    report = json.loads((sp.failed_dir / "a.wav.error.json").read_text())
    assert report["stage"] == "interrupted" and "while this job was the only one in flight" in report["cause"]
    b = resumed[0]
    sp.start(b)
    sp.retry(b, "a worker died", "crash", delay=0)
    assert not b.suspect and not json.loads((sp.job_dir(b) / "job.json").read_text())["suspect"]


def test_committing_after_an_outside_file_took_the_name(spool):
    job = spool.claim(drop(spool, "a.wav"))
    spool.start(job).write_bytes(b"ours")
    job.output, job.state = "a.wav", "committing"
    spool.save(job)  # the daemon died right after recording the name
    (spool.outbox / "a.wav").write_bytes(b"theirs")
    assert Spool(spool.s).recover() == []
    assert (spool.outbox / "a.wav").read_bytes() == b"theirs"
    assert (spool.outbox / "a (1).wav").read_bytes() == b"ours"


def test_a_job_folder_without_manifest_is_quarantined(spool):
    d = spool.work / "20250101T000000-deadbeef" / "src"
    d.mkdir(parents=True)
    (d / "lost.wav").write_bytes(b"x")
    assert spool.recover() == []
    assert everything(spool.failed_dir) == ["lost.wav", "lost.wav.error.json"]


@pytest.mark.parametrize("manifest, reason", [
    ("[]", "it holds a JSON list, not an object"),
    ('"queued"', "it holds a JSON str, not an object"),
    ('{"rel": "a.wav"}', "it has no 'id'"),
    ('{"id": "ID", "rel": "a.wav", "attempts": "two"}', "its 'attempts' is str"),
    ('{"id": "ID", "rel": "a.wav", "state": "exploded"}', "its state 'exploded' is not one this version knows"),
    ('{"id": "ID", "rel": "../../etc/passwd"}', "does not stay inside its folder"),
    ('{"id": "20990101T000000-00000000", "rel": "a.wav"}', "lies in the folder of job"),
    ('{"id": "ID", "rel": "a.wav", "state": "committing"}', "it is committing without 'output_tmp'"),
    ('{"id": "ID", "rel": "a.wav", "history": [1]}', "its history holds something other than objects"),
    ('{"id": "ID", "rel": ', "it is not valid JSON"),
    ('{"id": "ID", "rel": "é.wav"}', "it is not ASCII JSON"),
])
def test_a_damaged_manifest_sends_the_audio_to_failed_with_a_reason(spool, manifest, reason):
    """Issue 11, fault 8: a job.json that is JSON but not a job (``[]``) left the job stuck in work/
    and made `status` crash; now recovery quarantines its audio, and `status` lists it as damaged."""
    job = spool.claim(drop(spool, "sub/a.wav"))
    drop(spool, "b.wav")
    other = spool.claim(spool.inbox / "b.wav")
    (spool.job_dir(job) / "job.json").write_text(manifest.replace("ID", job.id), encoding="utf-8")
    st = collect_status(spool.s)
    assert [d["job_id"] for d in st["damaged"]] == [job.id] and reason in st["damaged"][0]["reason"]
    assert [j["job_id"] for j in st["queued"]] == [other.id]
    assert [j.id for j in Spool(spool.s).recover()] == [other.id]  # the sound job goes on
    assert everything(spool.failed_dir) == ["a.wav", "a.wav.error.json"]
    report = json.loads((spool.failed_dir / "a.wav.error.json").read_text())
    assert report["cause"].startswith("its job manifest (job.json) is unusable: ") and reason in report["cause"]
    assert report["stage"] == "recover" and report["job_id"] == job.id
    assert sorted(p.name for p in spool.work.iterdir()) == [other.id]


def test_status_never_fails_on_the_spool(spool, tmp_path):
    """Damaged manifests, a stray file in work/, a name that is not UTF-8: `status --json` (a real
    process) exits 0 and prints valid UTF-8 JSON."""
    import subprocess

    bad = os.fsdecode(b"caf\xe9-\xff.wav")  # Latin-1 bytes: not UTF-8
    spool.claim(drop(spool, bad))
    spool.fail(spool.claim(drop(spool, bad)), "bad", "decode")
    drop(spool, bad)  # waiting in the inbox
    broken = spool.claim(drop(spool, "x.wav"))
    (spool.job_dir(broken) / "job.json").write_text("[]")
    (spool.work / "stray-file").write_text("not a job")
    (spool.work / "20250101T000000-0badf00d").mkdir()  # no manifest at all
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_DAEMON_")}
    env.update({"VOICE_DAEMON_INBOX": str(spool.inbox), "VOICE_DAEMON_OUTBOX": str(spool.outbox),
                "VOICE_DAEMON_FAILED_DIR": str(spool.failed_dir), "VOICE_DAEMON_STATE_DIR": str(spool.state)})
    out = {}
    for args in (["--json"], []):
        proc = subprocess.run([sys.executable, "-m", "daemon", "status", *args], env=env, capture_output=True,
                              timeout=60)
        assert proc.returncode == 3 and proc.stderr == b"", proc.stderr  # 3: no daemon runs
        out[bool(args)] = proc.stdout.decode("utf-8")  # strict: raw non-UTF-8 bytes would raise here
    st = json.loads(out[True])
    assert "damaged:     2" in out[False]
    assert st["inbox_waiting"] == 1 and [f["input"] for f in st["latest_failed"]] == ["caf\\xe9-\\xff.wav"]
    assert [q["input"] for q in st["queued"]] == ["caf\\xe9-\\xff.wav"]
    assert sorted(d["reason"] for d in st["damaged"]) == ["it holds a JSON list, not an object",
                                                         "its job manifest was lost"]


def test_copy_claim_whose_original_survived_is_dropped(spool):
    job = spool.claim(drop(spool, "a.wav"))
    # as if the inbox were on another filesystem and the daemon died before unlinking the original
    job.copied, job.state = True, "claiming"
    forge_manifest(spool, job)
    drop(spool, "a.wav")
    assert spool.recover() == []
    assert everything(spool.inbox) == ["a.wav"] and list(spool.work.iterdir()) == []


def test_claim_across_filesystems_copies_then_unlinks(spool, monkeypatch):
    import errno

    class CrossDevice:
        def __getattr__(self, name):
            return getattr(os, name)

        def rename(self, src, dst):
            if Path(src).is_relative_to(spool.inbox):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return os.rename(src, dst)

    _patch_everywhere(monkeypatch, "os", CrossDevice())
    src = drop(spool, "far away.wav")
    drop(spool, "far away.vtt", b"WEBVTT")
    job = spool.claim(src)
    assert job.copied and not src.exists() and not (spool.inbox / "far away.vtt").exists()
    assert spool.source(job).read_bytes() == b"RIFF-fake-audio"
    assert everything(spool.source(job).parent) == ["far away.vtt", "far away.wav"]


def test_recovery_orders_jobs_by_claim_time(spool):
    ids = [spool.claim(drop(spool, f"{n}.wav")).id for n in "cab"]
    assert [j.id for j in Spool(spool.s).recover()] == ids


# --- status and lock ------------------------------------------------------------
def test_status_counts_every_state(spool):
    drop(spool, "waiting.wav")
    drop(spool, "ignored.tmp")
    queued = spool.claim(drop(spool, "q.wav"))
    running = spool.claim(drop(spool, "r.wav"))
    spool.start(running)
    convert(spool, spool.claim(drop(spool, "d.wav")))
    spool.fail(spool.claim(drop(spool, "f.wav")), "bad", "decode")
    st = collect_status(spool.s)
    assert st["inbox_waiting"] == 1
    assert [j["job_id"] for j in st["queued"]] == [queued.id]
    assert [j["job_id"] for j in st["in_flight"]] == [running.id]
    assert st["done"] == 1 and st["failed"] == 1 and [f["input"] for f in st["latest_failed"]] == ["f.wav"]
    assert st["running_pid"] is None


def test_the_lock_admits_one_daemon(spool):
    fd = acquire_lock(spool.state)
    try:
        assert fd is not None
        assert acquire_lock(spool.state) is None
        assert daemon_pid(spool.s) == os.getpid()
    finally:
        os.close(fd)
    assert daemon_pid(spool.s) is None
