"""Recovery: what a previous run left in work/ is finished or undone at start.

``Recovery(spool)`` redoes the spool's own steps (``machine.py``): every job folder is brought
to a state the supervisor can go on from, whatever point a kill -9 or a power cut stopped it at;
temp files of jobs no longer in work/ are removed from the outbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from daemon import __version__
from daemon.durable import move
from daemon.spool.folders import error_report_path
from daemon.spool.moves import free_name, unlink
from daemon.spool.record import MANIFEST, Job, JobState, iso, read_job, write_json

S = JobState
#: a job's temp names in the outbox: ``.<stem>.<job id>.part.<ext>``, its sidecar, and the
#: encoder's own ``..<stem>.<job id>.part.voice-daemon-<pid>.tmp.<ext>``
TEMP_NAME = re.compile(r"^\..*\.(?P<job>\d{8}T\d{6}-[0-9a-f]{8})\.part\.", re.S)


class Recovery:
    """Owned by its ``Spool``: reads its folders and settings, and finishes each step through it."""

    def __init__(self, spool):
        self.spool = spool
        self.log = spool.log
        self.unrecovered: list[Path] = []  # job folders a full disk kept from being recovered

    def recover(self) -> list[Job]:
        """Finish or undo whatever a previous run left in work/; return the jobs to run, oldest first.

        A job folder that cannot be recovered now (a full disk) is left as it is and named in
        ``unrecovered``, for ``recover_dir`` to try again."""
        dirs = sorted(self.spool.work.iterdir()) if self.spool.work.exists() else []
        in_flight = sum(1 for d in dirs if _saved_state(d) == S.RUNNING)
        queued, self.unrecovered = [], []
        for d in dirs:
            try:
                job = self._recover_one(d, in_flight)
            except Exception as exc:  # one damaged job must not stop the daemon
                self.log.error("spool.recover_error", job_dir=str(d), error=f"{type(exc).__name__}: {exc}")
                self.unrecovered.append(d)
                continue
            if job is not None:
                queued.append(job)
        queued.sort(key=lambda j: (j.claimed_at, j.id))
        self.sweep_outbox()
        return queued

    def recover_dir(self, d: Path) -> Job | None:
        """``recover()`` for one job folder it could not recover at start (an attempt found there
        in flight is not charged: who else was running then is no longer known)."""
        return self._recover_one(d, in_flight=2)

    def sweep_outbox(self) -> None:
        """Remove the temp files of jobs that are no longer in work/: what a worker killed while
        encoding, or a daemon killed while publishing, left in the outbox under a hidden name."""
        live = {d.name for d in self.spool.work.iterdir()} if self.spool.work.is_dir() else set()
        removed = []
        for root, dirs, files in os.walk(self.spool.outbox):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                m = TEMP_NAME.match(name)
                if m and m["job"] not in live:
                    unlink(Path(root) / name)
                    removed.append(name)
        if removed:
            self.log.info("spool.temp_removed", count=len(removed), first=removed[0])

    def _recover_one(self, d: Path, in_flight: int) -> Job | None:
        if not d.is_dir() or d.is_symlink():
            return None
        try:
            job = read_job(d)
        except FileNotFoundError:
            return self._recover_orphan(d, "its job manifest was lost")
        except (OSError, ValueError, TypeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.log.error("spool.manifest_unusable", job_dir=str(d), error=why)
            return self._recover_orphan(d, f"its job manifest ({MANIFEST}) is unusable: {why}")
        self.log.info("spool.recover", job_id=job.id, input=job.rel, state=str(job.state), attempts=job.attempts)
        if job.state == S.CLAIMING:
            if job.copied and os.path.lexists(self.spool.inbox / job.rel):
                shutil.rmtree(d)  # the copy's unlink never happened: the original is still in the inbox
                return None
            if not os.path.lexists(self.spool.source(job)):
                shutil.rmtree(d)  # the rename never happened: the file is still in the inbox
                return None
            self.spool.take_companions(job, self.spool.inbox / job.rel)
            job.state = S.QUEUED
        elif job.state == S.COMMITTING:
            tmp, final = self.spool.outbox / job.output_tmp, self.spool.outbox / job.output
            if tmp.exists() or final.exists() or self.spool.finished(job) is not None:
                self.spool.publish_output(job)
                return None
            job.state = S.QUEUED  # the output vanished: convert again
        elif job.state == S.COMMITTED:
            self.spool.archive(job)
            return None
        elif job.state == S.FAILING:
            self.spool.finish_fail(job)
            return None
        elif job.state == S.RUNNING:
            self._interrupted(job, alone=in_flight == 1)
            if job.state == S.FAILING:
                return None
            job.state = S.QUEUED
        if not os.path.lexists(self.spool.source(job)):
            self.log.error("spool.source_missing", job_id=job.id, input=job.rel)
            shutil.rmtree(d)
            return None
        self.spool.clean_scratch(job)
        job.not_before = 0.0
        self.spool.save(job)
        return job

    def _interrupted(self, job: Job, alone: bool) -> None:
        """An attempt the daemon's death cut short.  Only a job that was alone in flight is charged
        with it (a file that crashes the daemon ends in the failed folder after MAX_ATTEMPTS such
        deaths); the others were bystanders.  Either way the job is a suspect: suspects run one at
        a time, so the next death while one runs is charged to it alone."""
        self.spool.remove_tmp_outputs(job)
        cause = "the daemon stopped during this attempt" + ("" if alone else ", with other jobs in flight")
        job.history.append({"attempt": job.attempts, "cause": cause, "stage": "interrupted", "at": self.spool.clock(),
                            "charged": alone})
        job.suspect = True
        if not alone:
            job.attempts = max(0, job.attempts - 1)
        elif job.attempts >= self.spool.s.max_attempts:
            self.spool.fail(job, f"gave up after {job.attempts} attempts; the daemon stopped during {job.charges} of them "
                           "while this job was the only one in flight", "interrupted")

    def _recover_orphan(self, d: Path, cause: str) -> None:
        """A job folder without a usable manifest: quarantine whatever source it holds, each
        file with an error report that says why."""
        for f in sorted((d / "src").iterdir()) if (d / "src").is_dir() else []:
            if f.name.startswith("."):
                continue  # a copy cut short: the original is still where it was
            rel = free_name(self.spool.failed_dir, f.name, overwrite=False, companion=error_report_path)
            dest = self.spool.failed_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_json(error_report_path(dest),
                       {"input": f.name, "cause": cause, "stage": "recover", "job_id": d.name,
                        "daemon_version": __version__, "failed_at": iso(self.spool.clock())})
            move(f, dest)
            self.log.error("spool.quarantined_orphan", job_dir=str(d), quarantined=rel, cause=cause)
        shutil.rmtree(d)
        return None


def _saved_state(job_dir: Path) -> str | None:
    """The state job.json holds, without validating the rest (None when it cannot be read)."""
    try:
        data = json.loads((job_dir / MANIFEST).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return data.get("state") if isinstance(data, dict) else None
