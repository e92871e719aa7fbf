"""The spool: the filesystem is the durable queue.

Only the supervisor's loop calls these methods, so there is one mover of files.

    inbox/<rel>  --claim-->  STATE_DIR/work/<job>/src/<name>     (+ job.json, written first)
    work/<job>   --commit--> OUTBOX/<rel dir>/<stem>.<ext>       (link/replace from a temp name
                                                                  inside the outbox)
                             then work/<job> --rename--> STATE_DIR/done/<job>  (source archived
                                                                  there, or deleted)
    work/<job>   --fail-->   FAILED/<rel>  +  FAILED/<rel>.error.json

Every step first records its intent in ``job.json`` (written atomically), so
``recover()`` after a kill -9 at any point finishes or undoes the step: each input
ends exactly once in the outbox or the failed folder.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daemon import __version__, log
from daemon.audio.io import TRANSCRIPT_EXTENSIONS
from daemon.settings import SILERO_SPEAKERS, SettingsError

MANIFEST = "job.json"
#: Output extension for an input extension when OUTPUT_FORMAT=same (we can't write raw AAC etc.).
SAME_FORMAT = {".wav": "wav", ".wave": "wav", ".flac": "flac", ".ogg": "ogg", ".oga": "ogg",
               ".opus": "opus", ".mp3": "mp3", ".m4a": "m4a", ".aac": "m4a", ".mp4": "m4a"}
FOLDERS = (("inbox", "VOICE_DAEMON_INBOX"), ("outbox", "VOICE_DAEMON_OUTBOX"),
           ("failed_dir", "VOICE_DAEMON_FAILED_DIR"), ("state_dir", "VOICE_DAEMON_STATE_DIR"))


@dataclass
class Job:
    """What ``job.json`` holds.  Paths are relative: ``rel`` to the inbox, ``output`` to the outbox."""

    id: str
    rel: str                       # original path relative to the inbox (posix separators)
    voice: str | None = None       # from an inbox/<voice>/ folder
    state: str = "claiming"        # claiming → queued → running → committing → committed | failing
    attempts: int = 0              # attempts started
    claimed_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    not_before: float = 0.0        # retry backoff: not started before this time
    companions: list[str] = field(default_factory=list)  # transcripts that travel with the audio
    copied: bool = False           # claimed by copy + unlink (inbox on another filesystem)
    output_tmp: str | None = None  # temp name inside the outbox, relative to it
    output: str | None = None      # final name, recorded before the link/replace
    failed: str | None = None      # path inside the failed folder, recorded before the move
    error: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def rel_dir(self) -> str:
        return self.rel.rpartition("/")[0]

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Spool:
    def __init__(self, settings, clock=time.time):
        self.s = settings
        self.clock = clock
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
        check_folders(self.s)
        for d in (self.inbox, self.outbox, self.failed_dir, self.work, self.done):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SettingsError(_var_for(self.s, d), d, f"allowed: a folder this user can create ({exc.strerror})") from None

    def job_dir(self, job: Job) -> Path:
        return self.work / job.id

    def source(self, job: Job) -> Path:
        return self.job_dir(job) / "src" / job.name

    def scratch(self, job: Job) -> Path:
        return self.job_dir(job) / "tmp"

    # --- claim --------------------------------------------------------------
    def voice_for(self, rel: str) -> str | None:
        first, sep, _ = rel.partition("/")
        return first if sep and first in known_voices(self.s) else None

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
        job.state = "queued"
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
        _copy_durably(path, self.source(job))
        os.unlink(path)

    def _take_companions(self, job: Job, original: Path) -> None:
        for ext in TRANSCRIPT_EXTENSIONS:
            comp = original.with_suffix(ext)
            if comp == original or comp.name in job.companions:
                continue
            try:
                if comp.is_symlink() or not comp.is_file():
                    continue
                _move(comp, self.source(job).parent / comp.name)
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
        rel_tmp = _join(job.rel_dir, f".{stem}.{job.id}.part.{self.output_ext(job)}")
        (self.outbox / rel_tmp).parent.mkdir(parents=True, exist_ok=True)
        self._clean_scratch(job)
        job.attempts += 1
        job.state, job.output_tmp = "running", rel_tmp
        job.started_at = self.clock()
        self._save(job)
        return self.outbox / rel_tmp

    def put_back(self, job: Job) -> None:
        """An attempt interrupted by shutdown: it does not count, the job is resumed next start."""
        self._remove_tmp_outputs(job)
        self._clean_scratch(job)
        job.attempts = max(0, job.attempts - 1)
        job.state, job.not_before = "queued", 0.0
        self._save(job)

    def retry(self, job: Job, cause: str, stage: str, delay: float) -> None:
        self._remove_tmp_outputs(job)
        self._clean_scratch(job)
        job.history.append({"attempt": job.attempts, "cause": cause, "stage": stage, "at": self.clock()})
        job.state, job.not_before = "queued", self.clock() + delay
        self._save(job)

    # --- commit -------------------------------------------------------------
    def commit(self, job: Job, figures: dict | None = None) -> Path:
        """Publish the finished temp output under its final name, then archive the job."""
        tmp = self.outbox / job.output_tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the converted file {tmp} was not written")
        job.figures = dict(figures or {})
        job.output = self._free_name(self.outbox, _join(job.rel_dir, Path(job.name).stem + "." + self.output_ext(job)),
                                     overwrite=self.s.overwrite)
        job.state = "committing"
        self._save(job)  # the final name is known before it exists: recovery can tell done from not done
        self._publish(job)
        return self.outbox / job.output

    def _publish(self, job: Job) -> None:
        tmp, final = self.outbox / job.output_tmp, self.outbox / job.output
        if tmp.exists():
            if final.exists() and not self.s.overwrite and not _same_file(tmp, final):
                # Someone put a file there since we chose the name (only possible after a crash).
                job.output = self._free_name(self.outbox, job.output, overwrite=False)
                self._save(job)
                final = self.outbox / job.output
            _link_or_replace(tmp, final, self.s.overwrite)
            _fsync_dir(final.parent)
        side_tmp = tmp.with_suffix(".json")
        if side_tmp.exists():
            side = final.with_suffix(".json")
            if side.exists() and not self.s.overwrite:
                side = final.with_name(final.name + ".json")  # x.wav and x.mp3 both converted: x.mp3.json
            os.replace(side_tmp, side)
        job.state = "committed"
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
        job.failed = self._free_name(self.failed_dir, job.rel, overwrite=False, reserve_suffix=".error.json")
        job.state = "failing"
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
            "claimed_at": _iso(job.claimed_at), "failed_at": _iso(now),
            "history": [{**h, "at": _iso(h["at"])} for h in job.history],
            "daemon_version": __version__, "engine": self.s.engine,
        }
        _write_json(error_report_path(dest), report)
        src = self.source(job)
        if os.path.lexists(src):
            _move(src, dest)
        # Whatever else is in src/ travelled with it (the manifest may predate a companion's move).
        for comp in sorted(os.listdir(src.parent)) if src.parent.is_dir() else []:
            if comp != job.name and not comp.startswith("."):
                _move(src.parent / comp, self._free_path(dest.with_name(Path(dest.name).stem + Path(comp).suffix)))
        _fsync_dir(dest.parent)
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
            job = Job.from_dict(json.loads((d / MANIFEST).read_text(encoding="ascii")))
        except (OSError, ValueError, TypeError):
            return self._recover_orphan(d)
        self.log.info("spool.recover", job_id=job.id, input=job.rel, state=job.state, attempts=job.attempts)
        if job.state == "claiming":
            if job.copied and os.path.lexists(self.inbox / job.rel):
                shutil.rmtree(d)  # the copy's unlink never happened: the original is still in the inbox
                return None
            if not os.path.lexists(self.source(job)):
                shutil.rmtree(d)  # the rename never happened: the file is still in the inbox
                return None
            self._take_companions(job, self.inbox / job.rel)
            job.state = "queued"
        elif job.state == "committing":
            tmp, final = self.outbox / job.output_tmp, self.outbox / job.output
            if tmp.exists() or final.exists():
                self._publish(job)
                return None
            job.state = "queued"  # the output vanished: convert again
        elif job.state == "committed":
            self._archive(job)
            return None
        elif job.state == "failing":
            self._finish_fail(job)
            return None
        elif job.state == "running":
            self._remove_tmp_outputs(job)
            job.history.append({"attempt": job.attempts, "cause": "the daemon stopped during this attempt",
                                "stage": "interrupted", "at": self.clock()})
            if job.attempts >= self.s.max_attempts:
                stops = sum(1 for h in job.history if h.get("stage") == "interrupted")
                self.fail(job, f"gave up after {job.attempts} attempts; the daemon stopped during {stops} of them",
                          "interrupted")
                return None
            job.state = "queued"
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
            job = Job(id=d.name, rel=f.name, state="failing", claimed_at=self.clock(),
                      error={"cause": "its job manifest was lost", "stage": "recover"})
            job.failed = self._free_name(self.failed_dir, f.name, overwrite=False, reserve_suffix=".error.json")
            dest = self.failed_dir / job.failed
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write_json(error_report_path(dest),
                        {"input": f.name, "cause": job.error["cause"], "stage": "recover",
                         "daemon_version": __version__, "failed_at": _iso(self.clock())})
            _move(f, dest)
        shutil.rmtree(d)
        return None

    # --- helpers ------------------------------------------------------------
    def _save(self, job: Job) -> None:
        job.updated_at = self.clock()
        _write_json(self.job_dir(job) / MANIFEST, asdict(job))

    def _clean_scratch(self, job: Job) -> None:
        shutil.rmtree(self.scratch(job), ignore_errors=True)

    def _remove_tmp_outputs(self, job: Job) -> None:
        """The temp output, its sidecar, and the encoder's own temp files beside it."""
        if not job.output_tmp:
            return
        tmp = self.outbox / job.output_tmp
        for p in (tmp, tmp.with_suffix(".json")):
            _unlink(p)
        if tmp.parent.is_dir():
            prefix = f".{tmp.stem}."
            for entry in os.scandir(tmp.parent):
                if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    _unlink(Path(entry.path))

    def _free_name(self, root: Path, rel: str, *, overwrite: bool, reserve_suffix: str = "") -> str:
        """``rel`` if free (or overwrite), else ``stem (1).ext``, ``stem (2).ext``…"""
        path = root / rel
        if overwrite:
            return rel
        return self._free_path(path, reserve_suffix).relative_to(root).as_posix()

    @staticmethod
    def _free_path(path: Path, reserve_suffix: str = "") -> Path:
        def taken(p: Path) -> bool:
            return os.path.lexists(p) or (reserve_suffix and os.path.lexists(p.with_name(p.name + reserve_suffix)))

        if not taken(path):
            return path
        stem, ext = path.stem, path.suffix
        n = 1
        while taken(candidate := path.with_name(f"{stem} ({n}){ext}")):
            n += 1
        return candidate


# --- module helpers ---------------------------------------------------------
def new_job_id(now: float) -> str:
    """Sortable by claim time, unique: 20250101T120000-1a2b3c4d."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(4)


def known_voices(settings) -> set[str]:
    return set(SILERO_SPEAKERS) | {settings.voice}


def check_folders(settings) -> None:
    """Refuse equal or nested folders: the daemon would eat its own output or spool."""
    paths = [(var, Path(getattr(settings, f)).absolute().resolve()) for f, var in FOLDERS]
    for i, (var_a, a) in enumerate(paths):
        for var_b, b in paths[i + 1:]:
            if a == b or a in b.parents or b in a.parents:
                raise SettingsError(var_a, a, f"allowed: a folder that neither contains nor lies inside "
                                              f"{var_b}={b} (the folders must not overlap)")


def _var_for(settings, path: Path) -> str:
    for f, var in FOLDERS:
        if Path(getattr(settings, f)).absolute() in (path, *path.parents):
            return var
    return "VOICE_DAEMON_STATE_DIR"


def error_report_path(dest: Path) -> Path:
    """NAME.error.json beside NAME; shortened when that would pass the 255-byte name limit."""
    name = dest.name + ".error.json"
    if len(os.fsencode(name)) > 255:
        stem = os.fsencode(dest.name)[:200].decode("utf-8", "ignore")
        name = f"{stem}….error.json"
    return dest.with_name(name)


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _write_json(path: Path, data: dict) -> None:
    """Atomic and durable: temp file, fsync, rename, fsync the folder.

    ASCII with escapes, so file names that are not valid UTF-8 survive the round trip.
    """
    # Named after the target (short, fixed): a retry after a crash reuses and replaces it.
    tmp = path.with_name(f".vd-{hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]}.tmp")
    with open(tmp, "w", encoding="ascii") as f:
        json.dump(data, f, ensure_ascii=True, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _link_or_replace(tmp: Path, final: Path, overwrite: bool) -> None:
    """Publish atomically.  Without overwrite a hard link never replaces a file that
    appeared meanwhile; after a crash between link and unlink both names are one inode,
    which recovery recognises."""
    if overwrite:
        os.replace(tmp, final)
        return
    if not final.exists():
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise
        except OSError:  # filesystems without hard links (FAT, some network mounts)
            os.replace(tmp, final)
            return
    os.unlink(tmp)


def _move(src: Path, dest: Path) -> None:
    """rename, or copy + unlink across filesystems (repeatable: a crash midway redoes it)."""
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if os.path.islink(src):
            os.symlink(os.readlink(src), dest)
        else:
            _copy_durably(src, dest)
        os.unlink(src)


def _copy_durably(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".vd-{hashlib.sha1(os.fsencode(dest.name)).hexdigest()[:16]}.copy")
    shutil.copy2(src, tmp, follow_symlinks=False)
    if not os.path.islink(tmp):
        fsync_file(tmp)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


# --- `voice-daemon status` --------------------------------------------------
def collect_status(settings) -> dict:
    sp = Spool(settings)
    queued, in_flight = [], []
    for d in sorted(sp.work.iterdir()) if sp.work.is_dir() else []:
        try:
            job = Job.from_dict(json.loads((d / MANIFEST).read_text(encoding="ascii")))
        except (OSError, ValueError, TypeError):
            continue
        item = {"job_id": job.id, "input": job.rel, "voice": job.voice, "attempts": job.attempts,
                "state": job.state, "claimed_at": _iso(job.claimed_at)}
        (in_flight if job.state in ("running", "committing", "committed", "failing") else queued).append(item)
    done = sorted(p.name for p in sp.done.iterdir()) if sp.done.is_dir() else []
    failed = sorted(p.relative_to(sp.failed_dir).as_posix()[: -len(".error.json")]
                    for p in sp.failed_dir.rglob("*.error.json")) if sp.failed_dir.is_dir() else []
    waiting = 0
    if sp.inbox.is_dir():
        from daemon.audio.names import classify

        for root, dirs, files in os.walk(sp.inbox):
            rel_root = Path(root).relative_to(sp.inbox)
            waiting += sum(1 for f in files if classify((rel_root / f).as_posix())[0] == "audio")
    return {"running_pid": daemon_pid(settings), "inbox_waiting": waiting, "queued": queued,
            "in_flight": in_flight, "done": len(done), "last_done": done[-5:], "failed": len(failed),
            "failed_inputs": failed[-20:], "folders": {f: str(Path(getattr(settings, f)).absolute()) for f, _ in FOLDERS}}


LOCK = "daemon.lock"


def acquire_lock(state_dir: Path):
    """Hold STATE_DIR/daemon.lock for this process's life; None if another daemon holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def daemon_pid(settings) -> int | None:
    """The pid of the daemon holding the state folder's lock, or None."""
    path = Path(settings.state_dir).absolute() / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def cli_status(settings, args) -> int:
    st = collect_status(settings)
    if getattr(args, "json", False):
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return 0
    pid = st["running_pid"]
    print(f"daemon:      {'running, pid ' + str(pid) if pid else 'not running'}")
    print(f"inbox:       {st['inbox_waiting']} audio file(s) waiting   ({st['folders']['inbox']})")
    print(f"queued:      {len(st['queued'])}")
    if pid:
        print(f"in flight:   {len(st['in_flight'])}")
    else:
        print(f"interrupted: {len(st['in_flight'])}   (resumed at the next start)")
    for item in st["in_flight"]:
        print(f"  {item['job_id']}  {item['state']:<10} attempt {item['attempts']}  {item['input']!r}")
    print(f"done:        {st['done']}   ({st['folders']['outbox']})")
    print(f"failed:      {st['failed']}   ({st['folders']['failed_dir']})")
    for name in st["failed_inputs"]:
        print(f"  {name!r}")
    return 0
