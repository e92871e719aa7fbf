"""The supervisor with a real watcher, real spool and a real spawn pool whose workers
really crash.  Only the job's orchestration is scripted (the real pipeline cannot be made
to crash on demand): it sends the pool tasks from tests/helpers/pool_tasks.py."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from daemon.backends.local import WorkerPool
from daemon.engines import capabilities
from daemon.generation import Generation
from daemon.jobs import Task
from daemon.metrics import Metrics
from daemon.settings import Settings
from daemon.spool import Spool
from daemon.supervisor import Events, Signals, Supervisor
from daemon.systemd import Notifier
from daemon.watcher import Watcher
from helpers import wait_until


def scripted_run_job(submit, input, output, work_dir, *, voice=None, group="", transcript=None, progress=None):
    name = Path(input).name
    marks = Path(work_dir).parents[2] / "marks"  # STATE_DIR/work/<job>/tmp -> STATE_DIR/marks
    marks.mkdir(exist_ok=True)
    if name.startswith("crash"):
        submit(Task("helpers.pool_tasks:exit_now", {"code": 9}, group=group)).result()
    elif name.startswith("bad"):
        submit(Task("helpers.pool_tasks:input_error", {"path": name, "cause": "is scripted to be bad"})).result()
    elif name.startswith("flaky"):  # the worker dies twice (one whole job attempt), then it works
        submit(Task("helpers.pool_tasks:crash_until", {"counter": str(marks / name), "crashes": 2})).result()
    elif name.startswith("gate"):
        submit(Task("helpers.pool_tasks:wait_for_file", {"path": str(marks / "open")})).result()
    res = submit(Task("helpers.pool_tasks:whoami", {"tag": name})).result()
    done = Path(work_dir) / f"finished{Path(output).suffix}"  # as run_job: finished in the work folder
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_bytes(b"converted " + name.encode())
    return {"output": str(done), "audio_seconds": 1.0, "wall_seconds": 0.1, "worker_pids": [res.worker_pid],
            "attempts": res.attempts}


class Running:
    """A supervisor loop in a thread; ``stop()`` does what SIGTERM's handler does."""

    def __init__(self, settings, *, resume: bool = False, run_job=scripted_run_job, workers: int = 2,
                 reloader=None):
        self.spool = Spool(settings)
        self.spool.ensure_dirs()
        recovered = self.spool.recover() if resume else []
        self.pool = WorkerPool(workers=workers, max_attempts=2, start_timeout=120).start()
        events = Events()
        self.signals = Signals(events)
        # No systemd here (the notifier is a no-op without NOTIFY_SOCKET); metrics counted, not served.
        gen = Generation(settings, self.spool.capabilities, self.pool, run_job)
        self.sup = Supervisor(gen, self.spool, events=events, signals=self.signals,
                              notifier=Notifier(environ={}), metrics=Metrics(settings), clock=time.time,
                              reloader=reloader)
        self.watcher = Watcher(settings, self.sup.on_candidate)
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(recovered,), name="supervisor-under-test")
        self.thread.start()

    def _run(self, recovered):
        self.result = self.sup.run(self.watcher, recovered)

    def stop(self, signals: int = 1):
        for _ in range(signals):
            self.signals.receive("SIGTERM")
        self.thread.join(120)
        assert not self.thread.is_alive()
        self.pool.close(5)
        return self.result


@pytest.fixture
def settings(tmp_path):
    return Settings(inbox=tmp_path / "inbox", outbox=tmp_path / "outbox", failed_dir=tmp_path / "failed",
                    state_dir=tmp_path / "state", settle_seconds=0.2, rescan_seconds=5, max_attempts=2,
                    retry_backoff_seconds=0.1, shutdown_grace_seconds=0.3, workers=2)


def drop(speech_dir: Path, settings, name: str) -> None:
    dst = Path(settings.inbox) / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(speech_dir / "silero_vad_ru_num.wav", dst)


def test_retries_with_backoff_then_quarantine(settings, speech_dir):
    run = Running(settings)
    try:
        for name in ("crash.wav", "bad.wav", "flaky.wav", "ok.wav"):
            drop(speech_dir, settings, name)
        failed, outbox = Path(settings.failed_dir), Path(settings.outbox)
        wait_until(lambda: {p.name for p in outbox.iterdir()} >= {"flaky.wav", "ok.wav"}
                   and {"crash.wav.error.json", "bad.wav.error.json"} <= {p.name for p in failed.iterdir()}, 120)
    finally:
        assert run.stop() == 0
    bad = json.loads((failed / "bad.wav.error.json").read_text())
    assert bad["attempts"] == 1 and bad["stage"] == "engine" and "scripted to be bad" in bad["cause"]
    crash = json.loads((failed / "crash.wav.error.json").read_text())
    assert crash["attempts"] == 2 and len(crash["history"]) == 1, crash
    assert (outbox / "flaky.wav").read_bytes() == b"converted flaky.wav"
    done = [json.loads(p.read_text()) for p in (Path(settings.state_dir) / "done").glob("*/job.json")]
    assert {d["rel"]: d["attempts"] for d in done} == {"flaky.wav": 2, "ok.wav": 1}
    flaky = next(d for d in done if d["rel"] == "flaky.wav")
    assert flaky["history"][0]["stage"] == "crash"
    assert sorted(p.name for p in outbox.iterdir()) == ["flaky.wav", "ok.wav"]


def test_shutdown_puts_unfinished_jobs_back_and_the_next_start_resumes_them(settings, speech_dir):
    run = Running(settings)
    work = Path(settings.state_dir) / "work"
    try:
        drop(speech_dir, settings, "gate.wav")
        # A claim makes the job's folder, then its job.json (written whole, by a rename): a folder
        # without one yet is a claim under way.
        wait_until(lambda: [d for d in work.iterdir() if (d / "job.json").is_file()
                            and json.loads((d / "job.json").read_text())["state"] == "running"], 60)
    finally:
        assert run.stop() == 0  # the grace (0.3 s) passes with the job still waiting on its gate
    (job_dir,) = list(work.iterdir())
    manifest = json.loads((job_dir / "job.json").read_text())
    assert manifest["state"] == "queued" and manifest["attempts"] == 0
    assert list(Path(settings.outbox).rglob("*")) == []
    (Path(settings.state_dir) / "marks" / "open").touch()
    again = Running(settings, resume=True)
    try:
        wait_until(lambda: (Path(settings.outbox) / "gate.wav").exists(), 60)
    finally:
        assert again.stop() == 0
    assert list(work.iterdir()) == []


class Reloader:
    """The test's own reloader (the composition root's reads the env file, which the e2e SIGHUP
    test covers): reads other settings, and builds their generation: a pool of its own and a job
    runner that notes each input it ran."""

    def __init__(self, settings):
        self.settings = settings.model_copy(update={"output_format": "flac", "max_attempts": 5,
                                                    "retry_backoff_seconds": 0.7})
        self.ran: list[str] = []
        self.gen: Generation | None = None

    def read(self):
        return self.settings

    def build(self, settings) -> Generation:
        def run_job(submit, input, output, work_dir, **kw):
            self.ran.append(Path(input).name)
            return scripted_run_job(submit, input, output, work_dir, **kw)

        pool = WorkerPool(workers=1, max_attempts=2, start_timeout=120)
        self.gen = Generation(settings, capabilities(settings), pool, run_job)
        return self.gen


def test_a_reload_swaps_one_generation_that_every_part_reads_and_a_running_job_keeps_its_own(settings, speech_dir):
    """SIGHUP's reload with two real pools: the spool, the reporter and the schedule read the new
    generation; the job that was running finishes on the old pool, which then closes."""
    reloader = Reloader(settings)
    run = Running(settings, reloader=reloader)
    work = Path(settings.state_dir) / "work"
    old = run.sup.gen
    try:
        drop(speech_dir, settings, "gate.wav")  # runs until the test opens its gate: across the swap
        # A claim makes the job's folder before its job.json: a folder without one is skipped.
        wait_until(lambda: [d for d in work.iterdir() if (d / "job.json").is_file()
                            and json.loads((d / "job.json").read_text())["state"] == "running"], 60)
        assert run.sup.schedule.retry_delay(2, retryable=True) is None  # the first settings: 2 attempts
        run.signals.reload()
        wait_until(lambda: run.sup.gen is reloader.gen, 120)
        new = reloader.gen
        # One assignment reached every part that reads the settings or the capabilities.
        assert run.sup.spool.s is new.settings and run.sup.report.s is new.settings
        assert run.sup.spool.capabilities is new.capabilities and run.sup.report.capabilities is new.capabilities
        assert run.sup.schedule.retry_delay(2, retryable=True) == 1.4
        assert run.sup.pool is new.pool
        (gate,) = run.sup.running.values()
        assert gate.pool is old.pool  # started before the swap: its generation's pool to the end
        drop(speech_dir, settings, "after.wav")
        wait_until(lambda: (Path(settings.outbox) / "after.flac").exists(), 60)  # the new output format
        (Path(settings.state_dir) / "marks" / "open").touch()
        wait_until(lambda: (Path(settings.outbox) / "gate.wav").exists(), 60)  # claimed before: wav
        wait_until(lambda: not run.sup.reloading.old_pools, 30)  # closed once its last job was done
        assert reloader.ran == ["after.wav"]
    finally:
        assert run.stop() == 0
        if reloader.gen is not None:
            reloader.gen.pool.close(5)
    assert old.pool.broken is None and sorted(p.name for p in Path(settings.outbox).iterdir()) == [
        "after.flac", "gate.wav"]
