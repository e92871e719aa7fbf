"""`voice-daemon status`: read the spool's folders (never write them) and say what is where."""

from __future__ import annotations

import json
import os
from pathlib import Path

from daemon.audio.names import classify
from daemon.spool.folders import ERROR_SUFFIX, folder_paths
from daemon.spool.lock import daemon_pid
from daemon.spool.machine import Spool
from daemon.spool.record import IN_FLIGHT, iso, read_job


def collect_status(settings) -> dict:
    sp = Spool(settings, voices=())  # only its folders are read
    queued, in_flight = [], []
    for d in sorted(sp.work.iterdir()) if sp.work.is_dir() else []:
        try:
            job = read_job(d)
        except (OSError, ValueError, TypeError):
            continue
        item = {"job_id": job.id, "input": job.rel, "voice": job.voice, "attempts": job.attempts,
                "state": job.state, "claimed_at": iso(job.claimed_at)}
        (in_flight if job.state in IN_FLIGHT else queued).append(item)
    done = sorted(p.name for p in sp.done.iterdir()) if sp.done.is_dir() else []
    failed = sorted(p.relative_to(sp.failed_dir).as_posix()[: -len(ERROR_SUFFIX)]
                    for p in sp.failed_dir.rglob("*" + ERROR_SUFFIX)) if sp.failed_dir.is_dir() else []
    waiting = 0
    if sp.inbox.is_dir():
        for root, _dirs, files in os.walk(sp.inbox):
            rel_root = Path(root).relative_to(sp.inbox)
            waiting += sum(1 for f in files if classify((rel_root / f).as_posix())[0] == "audio")
    return {"running_pid": daemon_pid(settings), "inbox_waiting": waiting, "queued": queued,
            "in_flight": in_flight, "done": len(done), "last_done": done[-5:], "failed": len(failed),
            "failed_inputs": failed[-20:], "folders": folder_paths(settings)}


def cli_status(settings, args, backend: dict | None = None, backend_line: str | None = None) -> int:
    """``backend``: what runs the tasks (from the composition root), shown as ``backend_line``."""
    st = collect_status(settings)
    if backend is not None:
        st["backend"] = backend
    if getattr(args, "json", False):
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return 0
    pid = st["running_pid"]
    print(f"daemon:      {'running, pid ' + str(pid) if pid else 'not running'}")
    if backend_line:
        print(f"backend:     {backend_line}")
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
