"""The spool's state machine: claim, start, put back, retry, commit, fail, recover.

Only the supervisor's loop calls these methods, so there is one mover of files.

    inbox/<rel>  --claim-->  STATE_DIR/work/<job>/src/<name>     (+ job.json, written first)
    work/<job>   --commit--> OUTBOX/<rel dir>/<stem>.<ext>       (link/replace from a temp name
                                                                  inside the outbox)
                             then work/<job> --rename--> STATE_DIR/done/<job>  (source archived
                                                                  there, or deleted)
    work/<job>   --fail-->   FAILED/<rel>  +  FAILED/<rel>.error.json

Every step first records its intent in ``job.json`` (written durably), so
``recover()`` after a kill -9 at any point finishes or undoes the step: each input
ends exactly once in the outbox or the failed folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path
from typing import Collection

from daemon import __version__, durable, log
from daemon.audio.io import TRANSCRIPT_EXTENSIONS
from daemon.spool.folders import ERROR_SUFFIX, ensure_dirs, error_report_path
from daemon.spool.moves import free_name, free_path, join, link_or_replace, move, same_file, unlink
from daemon.spool.record import MANIFEST, Job, JobState, iso, new_job_id, read_job, write_json

#: Output extension for an input extension when OUTPUT_FORMAT=same (we can't write raw AAC etc.).
SAME_FORMAT = {".wav": "wav", ".wave": "wav", ".flac": "flac", ".ogg": "ogg", ".oga": "ogg",
               ".opus": "opus", ".mp3": "mp3", ".m4a": "m4a", ".aac": "m4a", ".mp4": "m4a"}
S = JobState


class Spool:
    """``voices``: the names an inbox subfolder may carry to choose the voice of what is dropped
    in it (``inbox/<voice>/…``), given by the composition root (the engines know them); by
    default only VOICE_DAEMON_VOICE."""

    def __init__(self, settings, clock=time.time, *, voices: Collection[str] | None = None):
        self.s = settings
        self.clock = clock
        self.voices = frozenset({settings.voice} if voices is None else voices)
        self.inbox = Path(settings.inbox).absolute()
        self.outbox = Path(settings.outbox).absolute()
        self.failed_dir = Path(settings.failed_dir).absolute()
        self.state = Path(settings.state_dir).absolute()
        self.work = self.state / "work"
        self.done = self.state / "done"
        self.log = log.get("spool")

    # --- set-up -------------------------------------------------------------
    def ensure_dirs(self) -> None:
        """Refuse overlapping folders, then create them (SettingsError: exit 78)."""
        ensure_dirs(self.s, (self.inbox, self.outbox, self.failed_dir, self.work, self.done))

    def job_dir(self, job: Job) -> Path:
        return self.work / job.id

    def source(self, job: Job) -> Path:
        return self.job_dir(job) / "src" / job.name

    def scratch(self, job: Job) -> Path:
        return self.job_dir(job) / "tmp"

    # --- claim --------------------------------------------------------------
    def voice_for(self, rel: str) -> str | None:
        first, sep, _ = rel.partition("/")
        return first if sep and first in self.voices else None

    def claim(self, path: Path) -> Job | None:
        """Move ``path`` (inside the inbox) into a new job folder; None if it is gone already."""
        path = Path(path)
        rel = path.relative_to(self.inbox).as_posix()
        now = self.clock()
        job = Job(id=new_job_id(now), rel=rel, voice=self.voice_for(rel), claimed_at=now, updated_at=now)
        (self.job_dir(job) / "src").mkdir(parents=True)
        self._save(job)  # intent first: a crash now leaves a manifest whose source is still in the inbox
        try:
            self._move_in(job, path)
        except FileNotFoundError:
            shutil.rmtree(self.job_dir(job), ignore_errors=True)
            return None
        except BaseException:
            shutil.rmtree(self.job_dir(job), ignore_errors=True)
            raise
        self._take_companions(job, path)
        job.state = S.QUEUED
        self._save(job)
        return job

    def _move_in(self, job: Job, path: Path) -> None:
        try:
            os.rename(path, self.source(job))
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # Inbox on another filesystem: copy, then unlink.  Recovery drops a copy whose
        # original is still in the inbox, so a crash in between never yields two jobs.
        job.copied = True
        self._save(job)
        durable.copy(path, self.source(job))
        os.unlink(path)

    def _take_companions(self, job: Job, original: Path) -> None:
        for ext in TRANSCRIPT_EXTENSIONS:
            comp = original.with_suffix(ext)
            if comp == original or comp.name in job.companions:
                continue
            try:
                if comp.is_symlink() or not comp.is_file():
                    continue
                move(comp, self.source(job).parent / comp.name)
            except OSError:
                continue
            job.companions.append(comp.name)

    # --- run ----------------------------------------------------------------
    def output_ext(self, job: Job) -> str:
        fmt = self.s.output_format
        if fmt == "same":
            fmt = SAME_FORMAT.get(Path(job.name).suffix.lower(), "wav")
        return fmt

    def start(self, job: Job) -> Path:
        """Record a new attempt; return the temp output path (inside the outbox)."""
        stem = Path(job.name).stem[:40]  # room for the encoder's own temp suffix within NAME_MAX
        rel_tmp = join(job.rel_dir, f".{stem}.{job.id}.part.{self.output_ext(job)}")
        (self.outbox / rel_tmp).parent.mkdir(parents=True, exist_ok=True)
        self._clean_scratch(job)
        job.attempts += 1
        job.state, job.output_tmp = S.RUNNING, rel_tmp
        job.started_at = self.clock()
        self._save(job)
        return self.outbox / rel_tmp

    def put_back(self, job: Job) -> None:
        """An attempt interrupted by shutdown: it does not count, the job is resumed next start."""
        self._remove_tmp_outputs(job)
        self._clean_scratch(job)
        job.attempts = max(0, job.attempts - 1)
        job.state, job.not_before = S.QUEUED, 0.0
        self._save(job)

    def retry(self, job: Job, cause: str, stage: str, delay: float) -> None:
        self._remove_tmp_outputs(job)
        self._clean_scratch(job)
        job.history.append({"attempt": job.attempts, "cause": cause, "stage": stage, "at": self.clock()})
        job.state, job.not_before = S.QUEUED, self.clock() + delay
        self._save(job)

    # --- commit -------------------------------------------------------------
    def commit(self, job: Job, figures: dict | None = None) -> Path:
        """Publish the finished temp output under its final name, then archive the job."""
        tmp = self.outbox / job.output_tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the converted file {tmp} was not written")
        job.figures = dict(figures or {})
        job.output = free_name(self.outbox, join(job.rel_dir, Path(job.name).stem + "." + self.output_ext(job)),
                               overwrite=self.s.overwrite)
        job.state = S.COMMITTING
        self._save(job)  # the final name is known before it exists: recovery can tell done from not done
        self._publish(job)
        return self.outbox / job.output

    def _publish(self, job: Job) -> None:
        tmp, final = self.outbox / job.output_tmp, self.outbox / job.output
        if tmp.exists():
            if final.exists() and not self.s.overwrite and not same_file(tmp, final):
                # Someone put a file there since we chose the name (only possible after a crash).
                job.output = free_name(self.outbox, job.output, overwrite=False)
                self._save(job)
                final = self.outbox / job.output
            link_or_replace(tmp, final, self.s.overwrite)
            durable.fsync_dir(final.parent)
        side_tmp = tmp.with_suffix(".json")
        if side_tmp.exists():
            side = final.with_suffix(".json")
            if side.exists() and not self.s.overwrite:
                side = final.with_name(final.name + ".json")  # x.wav and x.mp3 both converted: x.mp3.json
            name_published_output(side_tmp, final.name)
            os.replace(side_tmp, side)
        job.state = S.COMMITTED
        self._save(job)
        self._archive(job)

    def _archive(self, job: Job) -> None:
        self._clean_scratch(job)
        src = self.source(job).parent
        if not self.s.keep_source and src.exists():
            shutil.rmtree(src)
        job.updated_at = self.clock()
        self._save(job)
        self.done.mkdir(parents=True, exist_ok=True)  # an admin may have removed it to free space
        os.rename(self.job_dir(job), self.done / job.id)

    # --- fail ---------------------------------------------------------------
    def fail(self, job: Job, cause: str, stage: str) -> Path:
        """Quarantine the input in the failed folder with NAME.error.json beside it."""
        self._remove_tmp_outputs(job)
        job.error = {"cause": cause, "stage": stage}
        job.failed = free_name(self.failed_dir, job.rel, overwrite=False, reserve_suffix=ERROR_SUFFIX)
        job.state = S.FAILING
        self._save(job)
        self._finish_fail(job)
        return self.failed_dir / job.failed

    def _finish_fail(self, job: Job) -> None:
        dest = self.failed_dir / job.failed
        dest.parent.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        report = {
            "input": job.rel, "cause": job.error["cause"], "stage": job.error["stage"],
            "attempts": job.attempts, "job_id": job.id, "voice": job.voice,
            "claimed_at": iso(job.claimed_at), "failed_at": iso(now),
            "history": [{**h, "at": iso(h["at"])} for h in job.history],
            "daemon_version": __version__, "engine": self.s.engine,
        }
        write_json(error_report_path(dest), report)
        src = self.source(job)
        if os.path.lexists(src):
            move(src, dest)
        # Whatever else is in src/ travelled with it (the manifest may predate a companion's move).
        for comp in sorted(os.listdir(src.parent)) if src.parent.is_dir() else []:
            if comp != job.name and not comp.startswith("."):
                move(src.parent / comp, free_path(dest.with_name(Path(dest.name).stem + Path(comp).suffix)))
        durable.fsync_dir(dest.parent)
        shutil.rmtree(self.job_dir(job))

    # --- recovery -----------------------------------------------------------
    def recover(self) -> list[Job]:
        """Finish or undo whatever a previous run left in work/; return the jobs to run, oldest first."""
        queued = []
        for d in sorted(self.work.iterdir()) if self.work.exists() else []:
            try:
                job = self._recover_one(d)
            except Exception as exc:  # one damaged job must not stop the daemon
                self.log.error("spool.recover_error", job_dir=str(d), error=f"{type(exc).__name__}: {exc}")
                continue
            if job is not None:
                queued.append(job)
        queued.sort(key=lambda j: (j.claimed_at, j.id))
        return queued

    def _recover_one(self, d: Path) -> Job | None:
        if not d.is_dir() or d.is_symlink():
            return None
        try:
            job = read_job(d)
        except (OSError, ValueError, TypeError):
            return self._recover_orphan(d)
        self.log.info("spool.recover", job_id=job.id, input=job.rel, state=str(job.state), attempts=job.attempts)
        if job.state == S.CLAIMING:
            if job.copied and os.path.lexists(self.inbox / job.rel):
                shutil.rmtree(d)  # the copy's unlink never happened: the original is still in the inbox
                return None
            if not os.path.lexists(self.source(job)):
                shutil.rmtree(d)  # the rename never happened: the file is still in the inbox
                return None
            self._take_companions(job, self.inbox / job.rel)
            job.state = S.QUEUED
        elif job.state == S.COMMITTING:
            tmp, final = self.outbox / job.output_tmp, self.outbox / job.output
            if tmp.exists() or final.exists():
                self._publish(job)
                return None
            job.state = S.QUEUED  # the output vanished: convert again
        elif job.state == S.COMMITTED:
            self._archive(job)
            return None
        elif job.state == S.FAILING:
            self._finish_fail(job)
            return None
        elif job.state == S.RUNNING:
            self._remove_tmp_outputs(job)
            job.history.append({"attempt": job.attempts, "cause": "the daemon stopped during this attempt",
                                "stage": "interrupted", "at": self.clock()})
            if job.attempts >= self.s.max_attempts:
                stops = sum(1 for h in job.history if h.get("stage") == "interrupted")
                self.fail(job, f"gave up after {job.attempts} attempts; the daemon stopped during {stops} of them",
                          "interrupted")
                return None
            job.state = S.QUEUED
        if not os.path.lexists(self.source(job)):
            self.log.error("spool.source_missing", job_id=job.id, input=job.rel)
            shutil.rmtree(d)
            return None
        self._clean_scratch(job)
        job.not_before = 0.0
        self._save(job)
        return job

    def _recover_orphan(self, d: Path) -> None:
        """A job folder without a readable manifest: quarantine whatever source it holds."""
        for f in sorted((d / "src").iterdir()) if (d / "src").is_dir() else []:
            job = Job(id=d.name, rel=f.name, state=S.FAILING, claimed_at=self.clock(),
                      error={"cause": "its job manifest was lost", "stage": "recover"})
            job.failed = free_name(self.failed_dir, f.name, overwrite=False, reserve_suffix=ERROR_SUFFIX)
            dest = self.failed_dir / job.failed
            dest.parent.mkdir(parents=True, exist_ok=True)
            write_json(error_report_path(dest),
                       {"input": f.name, "cause": job.error["cause"], "stage": "recover",
                        "daemon_version": __version__, "failed_at": iso(self.clock())})
            move(f, dest)
        shutil.rmtree(d)
        return None

    # --- helpers ------------------------------------------------------------
    def _save(self, job: Job) -> None:
        """Write job.json; TransitionError (nothing written) for a step out of order."""
        job.updated_at = self.clock()
        write_json(self.job_dir(job) / MANIFEST, job.to_manifest())
        job.saved()

    def _clean_scratch(self, job: Job) -> None:
        shutil.rmtree(self.scratch(job), ignore_errors=True)

    def _remove_tmp_outputs(self, job: Job) -> None:
        """The temp output, its sidecar, and the encoder's own temp files beside it."""
        if not job.output_tmp:
            return
        tmp = self.outbox / job.output_tmp
        for p in (tmp, tmp.with_suffix(".json")):
            unlink(p)
        if tmp.parent.is_dir():
            prefix = f".{tmp.stem}."
            for entry in os.scandir(tmp.parent):
                if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    unlink(Path(entry.path))


def name_published_output(sidecar: Path, name: str) -> None:
    """Point a sidecar's ``"output"`` at the published name (the worker only knew the temp name)."""
    import json

    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # not ours to repair: it is published as it is
    if isinstance(data, dict) and data.get("output") != name:
        data["output"] = name
        durable.write_text(sidecar, json.dumps(data, ensure_ascii=False, indent=2))
