"""The supervisor: the one loop that schedules jobs, and its parts.

    loop.py      Supervisor: intake → claim → dispatch → commit / retry / quarantine, shutdown
    events.py    the one event queue the loop blocks on; signal handlers that feed it
    schedule.py  which job starts next: ready jobs and retry backoff (pure state)
    report.py    job.* log lines, metrics, systemd STATUS= and heartbeats
    pause.py     a full disk: pause, put back uncounted, look again, resume (owned: ``sup.pausing``)
    room.py      room for each job: what does not fit waits, what never fits fails (owned: ``sup.room``)
    later.py     spool steps a passing fault cut short, tried again with backoff
    reload.py    SIGHUP: the next generation built, the workers replaced gracefully, one swap
"""

from daemon.supervisor.events import Event, Events, Signals
from daemon.supervisor.loop import Supervisor, describe_error
from daemon.supervisor.report import JobReport, Reporter
from daemon.supervisor.schedule import Schedule

__all__ = ["Event", "Events", "JobReport", "Reporter", "Schedule", "Signals", "Supervisor", "describe_error"]
