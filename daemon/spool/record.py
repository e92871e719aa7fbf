"""The job record: what ``work/<job>/job.json`` holds, and the states a job may pass through.

    (new) ──▶ claiming ──▶ queued ──▶ running ──▶ committing ──▶ committed
    running ──▶ queued               a retry, or an attempt put back at shutdown
    committing ──▶ queued            recovery found the output gone: convert again
    queued, running ──▶ failing      quarantine in the failed folder
    committing ──▶ failing           the output cannot be published (a reason that will not go away)

Every save checks that the state moved along one of these edges since the last
save (or stayed where it was): a step taken out of order raises TransitionError
before anything reaches the disk.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from daemon import durable

MANIFEST = "job.json"


class JobState(StrEnum):
    CLAIMING = "claiming"      # job.json written, the input not yet (or only partly) moved in
    QUEUED = "queued"          # the input is in work/<job>/src, waiting for a worker
    RUNNING = "running"        # an attempt is converting it into a temp name in the outbox
    COMMITTING = "committing"  # the final output name is chosen; publishing it
    COMMITTED = "committed"    # published; the job folder is being archived to done/
    FAILING = "failing"        # quarantining the input in the failed folder


S = JobState
#: state on disk -> the states it may be saved as next (besides itself); None: a new job
TRANSITIONS: dict[JobState | None, frozenset[JobState]] = {
    None: frozenset({S.CLAIMING}),
    S.CLAIMING: frozenset({S.QUEUED}),
    S.QUEUED: frozenset({S.RUNNING, S.FAILING}),
    S.RUNNING: frozenset({S.QUEUED, S.COMMITTING, S.FAILING}),
    S.COMMITTING: frozenset({S.COMMITTED, S.QUEUED, S.FAILING}),
    S.COMMITTED: frozenset(),
    S.FAILING: frozenset(),
}
#: states in which an attempt holds the job (`status` lists them as in flight)
IN_FLIGHT = frozenset({S.RUNNING, S.COMMITTING, S.COMMITTED, S.FAILING})


class TransitionError(RuntimeError):
    """A job was about to be saved in a state its saved state cannot lead to: a bug, not bad input."""

    def __init__(self, job_id: str, old: JobState | None, new: JobState):
        self.job_id, self.old, self.new = job_id, old, new
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none"
        super().__init__(f"job {job_id}: cannot go from {old or 'a new job'} to {new} "
                         f"(allowed from {old or 'a new job'}: {allowed})")


def check_transition(job_id: str, old: JobState | None, new: JobState) -> None:
    if new != old and new not in TRANSITIONS[old]:
        raise TransitionError(job_id, old, new)


@dataclass
class Job:
    """What ``job.json`` holds.  Paths are relative: ``rel`` to the inbox, ``output`` to the outbox."""

    id: str
    rel: str                       # original path relative to the inbox (posix separators)
    voice: str | None = None       # from an inbox/<voice>/ folder
    state: JobState = JobState.CLAIMING
    attempts: int = 0              # attempts started
    claimed_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    not_before: float = 0.0        # retry backoff: not started before this time
    companions: list[str] = field(default_factory=list)  # transcripts that travel with the audio
    copied: bool = False           # claimed by copy + unlink (inbox on another filesystem)
    output_tmp: str | None = None  # temp name inside the outbox, relative to it
    output: str | None = None      # final name, recorded before the link/replace
    sidecar: str | None = None     # the sidecar's final name (relative to the outbox), recorded before its move
    failed: str | None = None      # path inside the failed folder, recorded before the move
    error: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    suspect: bool = False          # in flight when the daemon died: runs alone until it ends

    def __post_init__(self) -> None:
        self.state = JobState(self.state)  # ValueError for a state this version does not know
        self._saved: JobState | None = None  # the state job.json holds (None: not written yet)

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def rel_dir(self) -> str:
        return self.rel.rpartition("/")[0]

    @property
    def charges(self) -> int:
        """Deaths of the daemon charged to this job (it was alone in flight; entries written before
        that rule count too)."""
        return sum(1 for h in self.history if h.get("stage") == "interrupted" and h.get("charged", True))

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        """A job as read from its manifest (so its saved state is the one read)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        job = cls(**known)
        job._saved = job.state
        return job

    def to_manifest(self) -> dict:
        """The manifest's contents; TransitionError if the state moved along no allowed edge."""
        self.state = JobState(self.state)
        check_transition(self.id, self._saved, self.state)
        return asdict(self)

    def saved(self) -> None:
        """Record that the manifest now on disk holds this state."""
        self._saved = self.state


def new_job_id(now: float) -> str:
    """Sortable by claim time, unique: 20250101T120000-1a2b3c4d."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(4)


def iso(t: float | None) -> str | None:
    """UTC with milliseconds, as the error reports and `status` print times."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class ManifestError(ValueError):
    """A job.json that holds JSON, but not a job this version can use; the message says why."""


def read_job(job_dir: Path) -> Job:
    """The job whose manifest is in ``job_dir``: OSError when it cannot be read, ValueError
    (ManifestError, or the JSON decoder's) when it is not a usable job record."""
    try:
        data = json.loads((job_dir / MANIFEST).read_text(encoding="ascii"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"it is not ASCII JSON ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"it is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    check_manifest(data, job_dir.name)
    return Job.from_dict(data)


_TYPES = {"id": str, "rel": str, "voice": (str, type(None)), "state": str, "attempts": int,
          "claimed_at": (int, float), "updated_at": (int, float), "started_at": (int, float, type(None)),
          "not_before": (int, float), "companions": list, "copied": bool, "output_tmp": (str, type(None)),
          "output": (str, type(None)), "sidecar": (str, type(None)), "failed": (str, type(None)), "error": (dict, type(None)),
          "history": list, "figures": dict, "suspect": bool}
#: what each state needs besides id and rel
_NEEDS = {S.RUNNING: ("output_tmp",), S.COMMITTING: ("output_tmp", "output"), S.COMMITTED: ("output",),
          S.FAILING: ("failed", "error")}


def check_manifest(data, folder: str) -> None:
    """ManifestError unless ``data`` is a job record whose paths stay inside their folders."""
    if not isinstance(data, dict):
        raise ManifestError(f"it holds a JSON {type(data).__name__}, not an object")
    for key in ("id", "rel"):
        if key not in data:
            raise ManifestError(f"it has no {key!r}")
    for key, kinds in _TYPES.items():
        value = data.get(key)
        if key in data and (not isinstance(value, kinds) or (kinds is int and isinstance(value, bool))):
            raise ManifestError(f"its {key!r} is {type(value).__name__} {value!r:.60}")
    if data["id"] != folder:
        raise ManifestError(f"it names job {data['id']!r:.60} but lies in the folder of job {folder!r}")
    try:
        state = JobState(data.get("state", S.CLAIMING))
    except ValueError:
        raise ManifestError(f"its state {data['state']!r:.40} is not one this version knows") from None
    if data.get("attempts", 0) < 0:
        raise ManifestError(f"its attempts is {data['attempts']}")
    for key in _NEEDS.get(state, ()):
        if data.get(key) is None:
            raise ManifestError(f"it is {state} without {key!r}")
    for key in ("rel", "output_tmp", "output", "sidecar", "failed"):
        if isinstance(data.get(key), str) and not _inside(data[key]):
            raise ManifestError(f"its {key!r} {data[key]!r:.80} does not stay inside its folder")
    for name in data.get("companions", []):
        if not isinstance(name, str) or not _inside(name) or "/" in name:
            raise ManifestError(f"its companion {name!r:.80} is not a plain file name")
    if data.get("error") is not None and not isinstance(data["error"].get("cause"), str):
        raise ManifestError("its error has no cause")
    if not all(isinstance(h, dict) for h in data.get("history", [])):
        raise ManifestError("its history holds something other than objects")


def _inside(rel: str) -> bool:
    """A relative posix path with no empty, '.' or '..' part: joined to a folder, it stays inside."""
    parts = rel.split("/")
    return bool(rel) and "\0" not in rel and all(p not in ("", ".", "..") for p in parts)


def write_json(path: Path, data: dict) -> None:
    """Durably (see daemon.durable).  ASCII with escapes, so file names that are not valid
    UTF-8 survive the round trip."""
    durable.write_text(path, json.dumps(data, ensure_ascii=True, indent=1), encoding="ascii")
