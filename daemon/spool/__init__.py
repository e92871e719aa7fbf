"""The spool: the filesystem is the durable queue.

    record    the job record (job.json) and its states, a StrEnum whose allowed
              transitions are checked on every save; the check of a manifest read back
    machine   the state machine Spool: claim, start, put_back, retry, commit, fail
    recovery  what a previous run left in work/ finished or undone; suspects after a crash
    moves     publishing without overwriting, free names within NAME_MAX, a folder blocked
              by a file (every move of a file is ``daemon.durable.move``)
    space     which folder a full disk stopped, and when to look again
    folders   folder validation and creation; NAME.error.json names
    lock      one daemon per state folder
    status    the `voice-daemon status` reader

Every file the spool writes (manifests, error reports, copies) is written with the
durable helpers of ``daemon.durable`` (temp name, fsync, rename, fsync the folder),
the one place every writer of a file that must survive uses; ``fsync_file`` and
``fsync_dir`` are re-exported here.  The spool imports no watcher and no engine:
the voices an inbox subfolder may name and the output's format per input come with the
engine's capabilities, given to ``Spool(capabilities=…)``.
"""

from daemon.durable import fsync_dir, fsync_file
from daemon.spool.folders import ERROR_SUFFIX, FOLDERS, check_folders, ensure_dirs, error_report_path
from daemon.spool.lock import LOCK, RECORD, acquire_lock, daemon_pid, read_record, write_record
from daemon.spool.machine import Spool
from daemon.spool.record import (
    IN_FLIGHT,
    MANIFEST,
    TRANSITIONS,
    Job,
    JobState,
    TransitionError,
    check_transition,
    new_job_id,
)
from daemon.spool.status import cli_status, collect_status

__all__ = [
    "ERROR_SUFFIX", "FOLDERS", "IN_FLIGHT", "LOCK", "MANIFEST", "RECORD", "TRANSITIONS",
    "Job", "JobState", "Spool", "TransitionError",
    "acquire_lock", "check_folders", "check_transition", "cli_status", "collect_status", "daemon_pid",
    "ensure_dirs", "error_report_path", "fsync_dir", "fsync_file", "new_job_id", "read_record", "write_record",
]
