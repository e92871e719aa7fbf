"""`voice-daemon status`: read the spool's folders (never write them) and say what is where.

The folders come from the settings, unless the state folder holds the record a running (or
the last) daemon wrote at start (``daemon.json``): then its inbox, outbox and failed folder
are the ones that daemon uses, so ``status --state-dir DIR`` alone finds everything.

It never fails on what it finds: a damaged job manifest is listed as damaged (the next start
quarantines it), an unreadable folder as a problem, and names that are not valid UTF-8 are
shown with ``\\xNN`` escapes for their bytes, so ``--json`` is always valid UTF-8.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon import __version__
from daemon.audio.names import classify
from daemon.spool.folders import ERROR_SUFFIX, folder_paths
from daemon.spool.lock import daemon_pid, read_record
from daemon.spool.machine import Spool
from daemon.spool.record import IN_FLIGHT, iso, read_job

#: The systemd unit's VOICE_DAEMON_STATE_DIR (its Environment= line): where to hint when the
#: configured folder holds no daemon.
SERVICE_STATE_DIR = Path("/var/lib/voice-daemon/state")
LATEST = 5          # done jobs listed
LATEST_FAILED = 20  # failed inputs listed
#: `status` exits so when no daemon holds the state folder (LSB, as `systemctl is-active`).
EXIT_NOT_RUNNING = 3


def status_settings(settings):
    """The settings with the folders a daemon recorded in the state folder, if it did."""
    record = read_record(Path(settings.state_dir).absolute())
    folders = (record or {}).get("folders") or {}
    known = {k: Path(v) for k, v in folders.items() if k in ("inbox", "outbox", "failed_dir") and v}
    return settings.model_copy(update=known) if known else settings


def printable(name: str) -> str:
    """``name`` as valid UTF-8: bytes that are not UTF-8 (surrogate escapes) become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def collect_status(settings) -> dict:
    settings = status_settings(settings)
    sp = Spool(settings)  # only its folders are read
    problems: list[str] = []
    queued, in_flight, damaged = [], [], []
    for d in _listdir(sp.work, problems):
        if not d.is_dir():
            continue
        try:
            job = read_job(d)
        except (OSError, ValueError, TypeError) as exc:
            damaged.append({"job_id": printable(d.name), "reason": printable(_why(exc))})
            continue
        item = {"job_id": job.id, "input": printable(job.rel), "voice": job.voice, "attempts": job.attempts,
                "state": job.state, "claimed_at": iso(job.claimed_at)}
        (in_flight if job.state in IN_FLIGHT else queued).append(item)
    done = [p.name for p in _listdir(sp.done, problems)]
    reports = sorted(p for p in _walk(sp.failed_dir, problems) if p.name.endswith(ERROR_SUFFIX))
    waiting = sum(1 for p in _walk(sp.inbox, problems)
                  if classify(p.relative_to(sp.inbox).as_posix())[0] == "audio")
    pid = daemon_pid(settings)
    return {"version": __version__, "running_pid": pid, "inbox_waiting": waiting,
            "queued": queued, "waiting_for_space": _waits(sp.state) if pid else [],
            "in_flight": in_flight, "damaged": damaged, "done": len(done),
            "latest_done": [_done_item(sp.done / name) for name in reversed(done[-LATEST:])],
            "failed": len(reports), "latest_failed": _latest_failed(sp.failed_dir, reports),
            "folders": {k: printable(v) for k, v in folder_paths(settings).items()},
            "record": read_record(sp.state), "problems": problems}


def _waits(state: Path) -> list[dict]:
    """What the running daemon said waits for space (``space.json``, written by its loop)."""
    try:
        data = json.loads((state / "space.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    waits = data.get("waiting_for_space") if isinstance(data, dict) else None
    return [w for w in waits if isinstance(w, dict)] if isinstance(waits, list) else []


def _why(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "its job manifest was lost"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _listdir(folder: Path, problems: list[str]) -> list[Path]:
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError as exc:
        problems.append(f"{printable(str(folder))}: {_why(exc)}")
        return []


def _walk(top: Path, problems: list[str]) -> list[Path]:
    """Every file under ``top`` (links not followed); folders that cannot be read are noted."""
    def noted(exc: OSError) -> None:
        problems.append(f"{printable(str(exc.filename))}: {_why(exc)}")

    found = []
    for root, _dirs, files in os.walk(top, onerror=noted) if top.is_dir() else []:
        found += [Path(root) / f for f in files]
    return found


def _done_item(job_dir: Path) -> dict:
    try:
        job = read_job(job_dir)
    except (OSError, ValueError, TypeError):
        return {"job_id": job_dir.name}
    fig = job.figures or {}
    return {"job_id": job.id, "input": printable(job.rel), "output": printable(job.output or ""), "voice": job.voice,
            "attempts": job.attempts, "finished_at": iso(job.updated_at),
            **{k: fig.get(k) for k in ("audio_seconds", "wall_seconds", "rtf", "chunks")}}


def _latest_failed(failed_dir: Path, reports: list[Path]) -> list[dict]:
    """The newest error reports (by their time on disk, newest first), each with its reason."""
    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    out = []
    for p in sorted(reports, key=mtime, reverse=True)[:LATEST_FAILED]:
        try:
            report = json.loads(p.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError):
            report = {}
        if not isinstance(report, dict):  # a damaged report is listed all the same
            report = {}
        out.append({"input": printable(p.relative_to(failed_dir).as_posix()[: -len(ERROR_SUFFIX)]),
                    "reason": report.get("cause"), "stage": report.get("stage"),
                    "attempts": report.get("attempts"), "failed_at": report.get("failed_at"),
                    "job_id": report.get("job_id")})
    return out


def cli_status(settings, args, backend: dict | None = None, backend_line: str | None = None) -> int:
    """``backend``: what runs the tasks (from the composition root), shown as ``backend_line``."""
    st = collect_status(settings)
    if backend is not None:
        st["backend"] = backend
    code = 0 if st["running_pid"] else EXIT_NOT_RUNNING
    if getattr(args, "json", False):
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return code
    pid, folders = st["running_pid"], st["folders"]
    print(f"daemon:      {'running, pid ' + str(pid) if pid else 'not running'}   (state folder {folders['state_dir']})")
    if not pid:
        for line in _where_else(settings, Path(folders["state_dir"])):
            print(f"             {line}")
    if backend_line:
        print(f"backend:     {backend_line}")
    addr = (st["record"] or {}).get("metrics_addr") if pid else None
    if addr:
        print(f"status page: http://{addr}/")
    print(f"inbox:       {st['inbox_waiting']} audio file(s) waiting   ({folders['inbox']})")
    print(f"queued:      {len(st['queued'])}")
    if st["waiting_for_space"]:
        print(f"waiting for space: {len(st['waiting_for_space'])}   (the others go on)")
        for item in st["waiting_for_space"]:
            print(f"  {item.get('input')!r}: {item.get('reason')}")
    if pid:
        print(f"in flight:   {len(st['in_flight'])}")
    else:
        print(f"interrupted: {len(st['in_flight'])}   (resumed at the next start)")
    for item in st["in_flight"]:
        print(f"  {item['job_id']}  {item['state']:<10} attempt {item['attempts']}  {item['input']!r}")
    if st["damaged"]:
        print(f"damaged:     {len(st['damaged'])}   (quarantined with their audio at the next start)")
        for item in st["damaged"]:
            print(f"  {item['job_id']}  {item['reason']}")
    print(f"done:        {st['done']}   ({folders['outbox']})")
    print(f"failed:      {st['failed']}   ({folders['failed_dir']})")
    for item in st["latest_failed"]:
        print(f"  {item['input']!r}: {item['reason'] or '(no reason recorded)'}")
    for problem in st["problems"]:
        print(f"problem:     {problem}")
    return code


def _where_else(settings, state: Path) -> list[str]:
    """Hints for "not running": a relative folder depends on where `status` runs."""
    lines = []
    if not Path(settings.state_dir).is_absolute():
        lines.append(f"VOICE_DAEMON_STATE_DIR={settings.state_dir} is relative to this folder ({Path.cwd()}); "
                     "point `status` at the daemon's with --state-dir DIR, or set VOICE_DAEMON_STATE_DIR in "
                     "the env file (VOICE_DAEMON_ENV_FILE, or /etc/voice-daemon/voice-daemon.env)")
    elif not state.is_dir():
        lines.append(f"{state} does not exist")
    service = SERVICE_STATE_DIR
    if service != state and service.is_dir():
        lines.append(f"the systemd service's state folder exists: voice-daemon status --state-dir {service}")
    return lines
