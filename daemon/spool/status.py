"""`voice-daemon status`: read the spool's folders (never write them) and say what is where.

It never fails on what it finds: a damaged job manifest is listed as damaged (the next start
quarantines it), an unreadable folder as a problem, and names that are not valid UTF-8 are
shown with ``\\xNN`` escapes for their bytes, so ``--json`` is always valid UTF-8.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon.audio.names import classify
from daemon.spool.folders import ERROR_SUFFIX, folder_paths
from daemon.spool.lock import daemon_pid
from daemon.spool.machine import Spool
from daemon.spool.record import IN_FLIGHT, iso, read_job


def printable(name: str) -> str:
    """``name`` as valid UTF-8: bytes that are not UTF-8 (surrogate escapes) become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def collect_status(settings) -> dict:
    sp = Spool(settings, voices=())  # only its folders are read
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
    failed = sorted(printable(p.relative_to(sp.failed_dir).as_posix()[: -len(ERROR_SUFFIX)])
                    for p in _walk(sp.failed_dir, problems) if p.name.endswith(ERROR_SUFFIX))
    waiting = sum(1 for p in _walk(sp.inbox, problems)
                  if classify(p.relative_to(sp.inbox).as_posix())[0] == "audio")
    return {"running_pid": daemon_pid(settings), "inbox_waiting": waiting, "queued": queued,
            "in_flight": in_flight, "damaged": damaged, "done": len(done), "last_done": done[-5:],
            "failed": len(failed), "failed_inputs": failed[-20:],
            "folders": {k: printable(v) for k, v in folder_paths(settings).items()}, "problems": problems}


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
    if st["damaged"]:
        print(f"damaged:     {len(st['damaged'])}   (quarantined with their audio at the next start)")
        for item in st["damaged"]:
            print(f"  {item['job_id']}  {item['reason']}")
    print(f"done:        {st['done']}   ({st['folders']['outbox']})")
    print(f"failed:      {st['failed']}   ({st['folders']['failed_dir']})")
    for name in st["failed_inputs"]:
        print(f"  {name!r}")
    for problem in st["problems"]:
        print(f"problem:     {problem}")
    return 0
