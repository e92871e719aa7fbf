"""The spool's state machine: claim, start, put back, retry, commit, fail, recover.

Only the supervisor's loop calls these methods, so there is one mover of files.

    inbox/<rel>  --claim-->  STATE_DIR/work/<job>/src/<name>     (+ job.json, written first)
    work/<job>   --commit--> OUTBOX/<rel dir>/<stem>.<ext>       (the output the job finished in
                                                                  work/<job>/tmp/ moved to a temp
                                                                  name inside the outbox, then
                                                                  linked or renamed; its sidecar
                                                                  written beside it)
                             then work/<job> --rename--> STATE_DIR/done/<job>  (source archived
                                                                  there, or deleted)
    work/<job>   --fail-->   FAILED/<rel>  +  FAILED/<rel>.error.json

Every step first records its intent in ``job.json`` (written durably), so
``recover()`` (``recovery.py``) after a kill -9 at any point finishes or undoes the step:
each input ends exactly once in the outbox or the failed folder.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from daemon import __version__, durable, log
from daemon.audio.io import TRANSCRIPT_EXTENSIONS, output_formats
from daemon.audio.publish import write_rttm, write_sidecar_content
from daemon.capabilities import Capabilities
from daemon.durable import move
from daemon.errors import OutputError
from daemon.generation import Current, Generation, ReadsCurrent
from daemon.spool.folders import ensure_dirs, error_report_path
from daemon.spool.moves import (
    blocking_file,
    fit,
    fits,
    free_name,
    free_path,
    join,
    link_or_replace,
    same_file,
    unlink,
)
from daemon.spool.record import MANIFEST, Job, JobState, iso, new_job_id, write_json
from daemon.spool.recovery import Recovery

S = JobState
#: What a job writes beside its output: the sidecar, and the speakers' RTTM (VOICE_DAEMON_RTTM).
SIDECARS = (".json", ".rttm")
#: bytes of the input's stem kept in the temp output's name: with the job id, the encoder's own
#: temp suffix and the sidecar's, the longest temp name stays within NAME_MAX
TMP_STEM_BYTES = 120


class Published(NamedTuple):
    """Where a job's commit put its output and its sidecar (None: the engine wrote none)."""

    output: Path
    sidecar: Path | None


class Unfinished(Exception):
    """A step moved a file but could not record what it did (a full state disk): the job folder
    is as a crash would have left it, and ``Spool.recover_dir`` finishes it."""

    def __init__(self, job_dir: Path):
        super().__init__(f"job folder {job_dir} left half-recorded")
        self.job_dir = job_dir


class Spool(ReadsCurrent):
    """``capabilities``: what the engine can do (``daemon/capabilities.py``), given by the
    composition root: the voices an inbox subfolder may name (``inbox/<voice>/…``) and the output's
    format for each input; by default only VOICE_DAEMON_VOICE as a folder and VOICE_DAEMON_OUTPUT_FORMAT.

    ``current`` (``daemon/generation.py``) holds the settings and capabilities the spool reads when it
    acts: the supervisor shares that cell, so a reload's new generation reaches the spool too.  The
    folders are the first settings' for good (a reload cannot move them)."""

    def __init__(self, settings, clock=time.time, *, capabilities: Capabilities | None = None):
        caps = capabilities or Capabilities(settings.engine, voice_folders=frozenset({settings.voice}),
                                            **output_formats(settings.output_format))
        self.current = Current(Generation(settings, caps))
        self.clock = clock
        self.inbox = Path(settings.inbox).absolute()
        self.outbox = Path(settings.outbox).absolute()
        self.failed_dir = Path(settings.failed_dir).absolute()
        self.state = Path(settings.state_dir).absolute()
        self.work = self.state / "work"
        self.done = self.state / "done"
        self.log = log.get("spool")
        self.recovery = Recovery(self)

    # --- recovery (``recovery.py``) -------------------------------------------------
    def recover(self) -> list[Job]:
        """Finish or undo whatever a previous run left in work/; the jobs to run, oldest first."""
        return self.recovery.recover()

    def recover_dir(self, d: Path) -> Job | None:
        """``recover()`` for one job folder it could not recover at start."""
        return self.recovery.recover_dir(d)

    @property
    def unrecovered(self) -> list[Path]:
        """Job folders ``recover()`` could not recover (a full disk): ``recover_dir`` tries again."""
        return self.recovery.unrecovered

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
        return self.capabilities.voice_of_folder(rel)

    def claim(self, path: Path) -> Job | None:
        """Move ``path`` (inside the inbox) into a new job folder; None if it is gone already.

        ``Unfinished`` when the file was moved in but its job could not be recorded as queued
        (a full state disk): ``recover_dir`` finishes it."""
        path = Path(path)
        rel = path.relative_to(self.inbox).as_posix()
        now = self.clock()
        job = Job(id=new_job_id(now), rel=rel, voice=self.voice_for(rel), claimed_at=now, updated_at=now)
        try:
            (self.job_dir(job) / "src").mkdir(parents=True)
            self.save(job)  # intent first: a crash now leaves a manifest whose source is still in the inbox
            self._move_in(job, path)
        except FileNotFoundError:
            shutil.rmtree(self.job_dir(job), ignore_errors=True)
            return None
        except BaseException:
            shutil.rmtree(self.job_dir(job), ignore_errors=True)  # nothing was moved: the file stays
            raise
        self.take_companions(job, path)
        job.state = S.QUEUED
        try:
            self.save(job)
        except OSError as exc:
            raise Unfinished(self.job_dir(job)) from exc
        return job

    def _move_in(self, job: Job, path: Path) -> None:
        def copying() -> None:
            # Inbox on another filesystem: recovery drops a copy whose original is still in the
            # inbox, so a crash in between never yields two jobs.
            job.copied = True
            self.save(job)

        move(path, self.source(job), before_copy=copying)

    def take_companions(self, job: Job, original: Path) -> None:
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
        return self.ext_for(job.name)

    def ext_for(self, name: str) -> str:
        """The output's format for an input called ``name`` (the engine's capabilities say)."""
        return self.capabilities.output_ext(name)

    def start(self, job: Job) -> Path:
        """Record a new attempt; return the temp output path (inside the outbox).

        The attempt is counted before anything can fail, so a step that keeps failing ends in
        the failed folder; OutputError when a file in the outbox stands where the output's
        folder must go."""
        stem = fit(Path(job.name).stem, "", TMP_STEM_BYTES)  # room for the encoder's temp suffix
        rel_tmp = join(job.rel_dir, f".{stem}.{job.id}.part.{self.output_ext(job)}")
        with self._restoring(job):
            job.attempts += 1
            job.state, job.output_tmp = S.RUNNING, rel_tmp
            job.started_at = self.clock()
            self.save(job)
        blocker = blocking_file(self.outbox, job.rel_dir)
        if blocker is not None:
            raise OutputError(self.outbox / job.rel, f"{blocker} is a file, where the folder for "
                                                     f"{job.rel!r} would go in the outbox")
        (self.outbox / rel_tmp).parent.mkdir(parents=True, exist_ok=True)
        self.clean_scratch(job)
        return self.outbox / rel_tmp

    def put_back(self, job: Job, why: str | None = None, stage: str = "interrupted") -> None:
        """An attempt cut short, not by its input (shutdown, a full disk): it does not count.
        ``why`` is kept in the job's history."""
        self.remove_tmp_outputs(job)
        self.clean_scratch(job)
        job.attempts = max(0, job.attempts - 1)
        if why:
            job.history.append({"attempt": job.attempts + 1, "cause": why, "stage": stage, "at": self.clock(),
                                "charged": False})
        job.state, job.not_before = S.QUEUED, 0.0
        self.save(job)

    def retry(self, job: Job, cause: str, stage: str, delay: float) -> None:
        """An attempt failed for a reason worth another try.  It ended without the daemon dying,
        so a job suspected after an unclean stop is cleared."""
        self.remove_tmp_outputs(job)
        self.clean_scratch(job)
        job.history.append({"attempt": job.attempts, "cause": cause, "stage": stage, "at": self.clock()})
        job.state, job.not_before, job.suspect = S.QUEUED, self.clock() + delay, False
        self.save(job)

    # --- commit -------------------------------------------------------------
    def commit(self, job: Job, figures: dict | None = None) -> Published:
        """Publish the job's output under its final name, and its sidecar beside it, in one durable
        step; then archive the job; say where the output and its sidecar went.

        ``figures`` are ``run_job``'s: ``output``, the finished file in the job's work folder, and
        ``sidecar``, what the sidecar holds (None: no sidecar).  Picks up where an earlier call
        stopped (a full disk, say): a job already committing is published, one already committed
        is archived."""
        if job.state == S.RUNNING:
            figures = dict(figures or {})
            tmp, finished = self.outbox / job.output_tmp, self._inside_scratch(job, figures.get("output"))
            if not tmp.is_file() and not (finished is not None and finished.is_file()):
                raise FileNotFoundError(f"the converted file {figures.get('output') or tmp} was not written")
            with self._restoring(job):
                job.figures = figures
                job.output = self._output_name(job)
                job.state = S.COMMITTING
                self.save(job)  # the final name is known before it exists: recovery can tell done from not
        if job.state == S.COMMITTING:
            self.publish_output(job)
        elif job.state == S.COMMITTED:
            self.archive(job)
        return Published(self.outbox / job.output, self.outbox / job.sidecar if job.sidecar else None)

    def published(self, job: Job) -> bool:
        """Whether the job's output is in the outbox under its final name."""
        if not job.output or not fits(job.output) or self.finished(job) is not None:
            return False
        final = self.outbox / job.output
        return os.path.lexists(final) and (not os.path.lexists(self.outbox / job.output_tmp)
                                           or same_file(self.outbox / job.output_tmp, final))

    def finished(self, job: Job) -> Path | None:
        """The output the job finished in its work folder, while it is there (not yet moved to
        the outbox), else None."""
        path = self._inside_scratch(job, job.figures.get("output"))
        return path if path is not None and path.is_file() else None

    def _inside_scratch(self, job: Job, path) -> Path | None:
        """``path`` if it names a file inside the job's work folder: a manifest moves nothing else."""
        if not isinstance(path, str) or not path:
            return None
        p, scratch = Path(path), self.scratch(job)
        return p if p.parent == scratch or scratch in p.parents else None

    def _output_name(self, job: Job) -> str:
        # The format the attempt was started in: a reload since may have changed the one for new jobs.
        ext = Path(job.output_tmp).suffix[1:] if job.output_tmp else self.output_ext(job)
        return free_name(self.outbox, join(job.rel_dir, Path(job.name).stem + "." + ext), overwrite=self.s.overwrite)

    def publish_output(self, job: Job) -> None:
        if not fits(job.output):  # chosen by an older version, which let "NAME (1)" pass NAME_MAX
            job.output = self._output_name(job)
            self.save(job)
        tmp, final = self.outbox / job.output_tmp, self.outbox / job.output
        if (finished := self.finished(job)) is not None:
            # A rename, or a durable copy when the outbox is on another filesystem (under a temp name
            # of this job's, which the next start removes if a crash cuts the copy short).
            move(finished, tmp, copy_tmp=tmp.with_name(f".{tmp.stem}.copy{tmp.suffix}"))
        if tmp.exists():  # its bytes are on disk: the job's thread synced the output it finished
            if final.exists() and not self.s.overwrite and not same_file(tmp, final):
                # Someone put a file there since we chose the name (only possible after a crash).
                job.output = free_name(self.outbox, job.output, overwrite=False)
                job.sidecar = None  # it goes with the output's name
                self.save(job)
                final = self.outbox / job.output
            link_or_replace(tmp, final, self.s.overwrite)
            durable.fsync_dir(final.parent)
        content = job.figures.get("sidecar")
        if isinstance(content, dict):
            if job.sidecar is None:
                job.sidecar = self._beside(final, ".json").relative_to(self.outbox).as_posix()
                self.save(job)  # recorded before it is written: the reporter is told, never left to guess
            write_sidecar_content(self.outbox / job.sidecar, final.name, content)
        if isinstance(rttm := job.figures.get("rttm"), str) and rttm:  # the speakers' turns
            write_rttm(self._beside(final, ".rttm"), rttm)
        self.remove_tmp_outputs(job)  # what a worker killed while encoding left beside the output
        job.state = S.COMMITTED
        self.save(job)
        self.archive(job)

    def _beside(self, final: Path, ext: str) -> Path:
        """``x.json`` beside the output ``x.wav``; ``x.wav.json`` when ``x.json`` is taken (x.wav and
        x.mp3 both converted) and the outbox is not overwritten."""
        side = final.with_name(fit(final.stem, ext))
        if side.exists() and not self.s.overwrite:
            side = final.with_name(fit(final.name, ext))
        return side

    def archive(self, job: Job) -> None:
        self.clean_scratch(job)
        src = self.source(job).parent
        if not self.s.keep_source and src.exists():
            shutil.rmtree(src)
        job.updated_at = self.clock()
        self.save(job)
        self.done.mkdir(parents=True, exist_ok=True)  # an admin may have removed it to free space
        os.rename(self.job_dir(job), self.done / job.id)

    # --- fail ---------------------------------------------------------------
    def fail(self, job: Job, cause: str, stage: str) -> Path:
        """Quarantine the input in the failed folder with NAME.error.json beside it (a job already
        failing, whose move was cut short, goes on with it)."""
        self.remove_tmp_outputs(job)
        if job.state != S.FAILING:
            with self._restoring(job):
                job.error = {"cause": cause, "stage": stage}
                job.failed = free_name(self.failed_dir, job.rel, overwrite=False, companion=error_report_path,
                                       unblock=True)
                job.state = S.FAILING
                self.save(job)
        self.finish_fail(job)
        return self.failed_dir / job.failed

    def finish_fail(self, job: Job) -> None:
        dest = self.failed_dir / job.failed
        dest.parent.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        report = {
            "input": job.rel, "cause": job.error["cause"], "stage": job.error["stage"],
            "attempts": job.attempts, "job_id": job.id, "voice": job.voice,
            "claimed_at": iso(job.claimed_at), "failed_at": iso(now),
            "history": [{**h, "at": iso(h.get("at"))} for h in job.history],
            "daemon_version": __version__, "engine": self.s.engine,
        }
        write_json(error_report_path(dest), report)
        src = self.source(job)
        if os.path.lexists(src):
            move(src, dest)
        # Whatever else is in src/ travelled with it (the manifest may predate a companion's move).
        for comp in sorted(os.listdir(src.parent)) if src.parent.is_dir() else []:
            if comp != job.name and not comp.startswith("."):
                move(src.parent / comp, free_path(dest.with_name(fit(Path(dest.name).stem, Path(comp).suffix))))
        durable.fsync_dir(dest.parent)
        shutil.rmtree(self.job_dir(job))

    # --- helpers ------------------------------------------------------------
    def save(self, job: Job) -> None:
        """Write job.json; TransitionError (nothing written) for a step out of order."""
        job.updated_at = self.clock()
        write_json(self.job_dir(job) / MANIFEST, job.to_manifest())
        job.saved()

    @contextmanager
    def _restoring(self, job: Job):
        """Undo the block's changes to ``job`` in memory when its save fails (a full state disk):
        the job stays as its job.json says, and can be tried again."""
        before = {f: copy.copy(getattr(job, f)) for f in job.__dataclass_fields__}
        try:
            yield
        except BaseException:
            for f, value in before.items():
                setattr(job, f, value)
            raise

    def clean_scratch(self, job: Job) -> None:
        shutil.rmtree(self.scratch(job), ignore_errors=True)

    def remove_tmp_outputs(self, job: Job) -> None:
        """The temp output, its sidecar, and the encoder's own temp files beside it.  Best effort:
        what cannot be removed now (a read-only outbox) goes at the next start."""
        if not job.output_tmp:
            return
        tmp = self.outbox / job.output_tmp
        try:
            for p in (tmp, *(tmp.with_suffix(ext) for ext in SIDECARS)):
                unlink(p)
            if tmp.parent.is_dir():
                prefix = f".{tmp.stem}."
                for entry in os.scandir(tmp.parent):
                    if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                        unlink(Path(entry.path))
        except OSError as exc:
            self.log.warning("spool.temp_remove_error", job_id=job.id, error=str(exc))

