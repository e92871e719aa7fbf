"""The unit under a real systemd: Debian booted in a container (tests/helpers/container.py), the
wheel installed there as an operator would (pip into a venv, `install-service`, systemctl), then
each promise of the unit checked against the service manager itself.

The first run builds the container's tree and a wheelhouse (several minutes, kept in
/var/cache/voice-daemon-test); later runs boot it in about two seconds.  Skipped only where this
machine cannot boot a container (not root)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import soundfile as sf

from helpers import container, wait_until

pytestmark = pytest.mark.slow
UNIT = "voice-daemon"
SRV = "/srv/voice-daemon"
VD = f"{container.VENV}/bin/voice-daemon"
# The test's own drop-in: one worker (a 2-core machine), a 10 s watchdog instead of 30 s.
TEST_DROPIN = """[Service]
WatchdogSec=10
Environment=VOICE_DAEMON_WORKERS=1 VOICE_DAEMON_SAMPLE_RATE=16000
"""


@pytest.fixture(scope="module")
def machine(tmp_path_factory, speech_dir):
    why = container.cannot_boot()
    if why and "root" in why:
        pytest.skip(why)
    if why:
        pytest.fail(why)
    t0 = time.monotonic()
    wheels = tmp_path_factory.mktemp("wheels")
    wheel = container.build_wheel(wheels)
    house = container.wheelhouse(wheel)
    tree = container.rootfs(house, wheel)
    print(f"\n[systemd e2e] tree and wheelhouse ready: {container.elapsed(t0)}")
    clips = tmp_path_factory.mktemp("clips")
    data, rate = sf.read(speech_dir / "fw_jfk.flac", dtype="float32")
    for name, seconds in (("one.wav", 4), ("two.wav", 3)):
        sf.write(clips / name, data[: rate * seconds], rate)
        (clips / name).chmod(0o644)
    clips.chmod(0o755)  # alice, a user of the container, copies them from there
    m = container.Machine(tree, {house: "/wheelhouse", wheels: "/wheels", clips: "/clips"},
                          tmp_path_factory.mktemp("boot") / "console.log")
    print(f"[systemd e2e] booted: {container.elapsed(t0)}")
    try:
        yield m
    finally:
        m.close()
        print(f"[systemd e2e] whole run: {container.elapsed(t0)}")


def running(m) -> dict[str, str]:
    return m.show(UNIT, "ActiveState", "SubState", "MainPID", "NRestarts", "Result")


def test_the_service_under_systemd(machine):
    m = machine
    t = time.monotonic()
    # --- install as an operator would ------------------------------------------------------
    m.sh(f"{container.VENV}/bin/pip install -q --no-index --find-links /wheelhouse /wheels/voice_daemon-*.whl")
    m.sh("groupadd --system drop && useradd --create-home --groups drop alice")
    out = m.sh(f"{VD} install-service --drop-group drop").stdout
    assert f"ExecStart={VD} run" in out and "SupplementaryGroups=drop" in out, out
    m.sh(f"mkdir -p /etc/systemd/system/{UNIT}.service.d && cat > /etc/systemd/system/{UNIT}.service.d/zz-test.conf"
         f" <<'EOF'\n{TEST_DROPIN}EOF\nsystemctl daemon-reload")
    print(f"[systemd e2e] installed: {container.elapsed(t)}")

    # --- READY only when warm: `systemctl start` returns once every worker has loaded -------
    t = time.monotonic()
    m.sh(f"systemctl start {UNIT}", timeout=400)
    print(f"[systemd e2e] started (warm): {container.elapsed(t)}")
    state = running(m)
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    active_at = int(m.show(UNIT, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"])
    (warm,) = m.events(UNIT, "pool.started")
    assert warm["_monotonic_usec"] <= active_at, "systemd called the unit started before the pool was warm"
    assert m.sh(f"{VD} status").returncode == 0  # reads the unit's folders; exit 0: running
    assert m.sh(f"{VD} config | grep '^VOICE_DAEMON_INBOX='").stdout.startswith(f"VOICE_DAEMON_INBOX={SRV}/inbox")

    # --- a group that drops files: alice's file comes out, readable by her ----------------
    m.sh(f"runuser -u alice -- cp /clips/one.wav {SRV}/inbox/one.wav")
    wait_until(lambda: m.sh(f"test -f {SRV}/outbox/one.wav", check=False).returncode == 0, 120,
               message=m.sh(f"journalctl -u {UNIT} --no-pager | tail -20", check=False).stdout)
    assert m.sh(f"runuser -u alice -- cat {SRV}/outbox/one.wav | wc -c").stdout.strip() != "0"
    assert m.sh(f"stat -c %G {SRV}/outbox/one.wav").stdout.strip() == "drop"

    # --- systemctl reload picks up a changed env file --------------------------------------
    m.sh("echo VOICE_DAEMON_SHIFT_SEMITONES=-3 >> /etc/voice-daemon/voice-daemon.env")
    m.sh(f"systemctl reload {UNIT}")
    wait_until(lambda: m.events(UNIT, "daemon.reloaded"), 180, interval=0.5)
    (reloaded,) = m.events(UNIT, "daemon.reloaded")
    assert "VOICE_DAEMON_SHIFT_SEMITONES" in reloaded["changed"], reloaded
    assert running(m)["ActiveState"] == "active"

    # --- a worker killed by SIGKILL is replaced; the service stays up ---------------------
    before = running(m)
    worker = m.events(UNIT, "pool.worker_ready")[-1]["worker_pid"]
    ready_before = len(m.events(UNIT, "pool.worker_ready"))
    m.sh(f"kill -KILL {worker}")
    wait_until(lambda: len(m.events(UNIT, "pool.worker_ready")) > ready_before, 180, interval=0.5)
    assert m.events(UNIT, "pool.worker_died")[-1]["worker_pid"] == worker
    after = running(m)
    assert (after["ActiveState"], after["MainPID"], after["NRestarts"]) == ("active", before["MainPID"],
                                                                         before["NRestarts"])
    m.sh(f"runuser -u alice -- cp /clips/two.wav {SRV}/inbox/two.wav")
    wait_until(lambda: m.sh(f"test -f {SRV}/outbox/two.wav", check=False).returncode == 0, 120)

    # --- the watchdog restarts a hung main loop --------------------------------------------
    t = time.monotonic()
    hung = running(m)
    m.sh(f"kill -STOP {hung['MainPID']}")
    wait_until(lambda: int(running(m)["NRestarts"]) > int(hung["NRestarts"]) and running(m)["ActiveState"] == "active",
               240, interval=0.5, message=str(running(m)))
    print(f"[systemd e2e] watchdog restart, warm again: {container.elapsed(t)}")
    assert running(m)["MainPID"] != hung["MainPID"]
    log = m.sh(f"journalctl -u {UNIT} --no-pager -o cat").stdout
    assert "Watchdog timeout" in log, log[-3000:]

    # --- journalctl -o json carries the daemon's JSON events -------------------------------
    events = {e["event"] for e in m.events(UNIT)}
    assert {"daemon.ready", "job.done", "pool.worker_ready", "daemon.reloaded"} <= events, events
    done = [e for e in m.events(UNIT, "job.done")]
    assert {Path(e["output"]).name for e in done} >= {"one.wav", "two.wav"}

    # --- systemctl stop ends within TimeoutStopSec, with nothing left ---------------------
    unit_text = m.sh(f"cat /etc/systemd/system/{UNIT}.service").stdout
    (limit,) = [int(line.split("=")[1]) for line in unit_text.splitlines() if line.startswith("TimeoutStopSec=")]
    cgroup = m.show(UNIT, "ControlGroup")["ControlGroup"]
    t = time.monotonic()
    m.sh(f"systemctl stop {UNIT}", timeout=limit + 30)
    took = time.monotonic() - t
    print(f"[systemd e2e] stop: {took:.1f} s")
    assert took < limit
    final = running(m)
    assert (final["ActiveState"], final["Result"]) == ("inactive", "success"), final
    assert m.sh(f"cat /sys/fs/cgroup{cgroup}/cgroup.procs 2>/dev/null", check=False).stdout.strip() == ""
    left = [line for line in m.sh("ps -eo pid=,args=").stdout.splitlines() if container.VENV in line]
    assert left == [], left
    st = json.loads(m.sh(f"{VD} status --json", check=False).stdout)
    assert st["running_pid"] is None and st["done"] >= 2


def test_an_installation_under_root_is_bound_into_the_service(machine):
    """pyenv/pipx-style: the venv lives under /root, which ProtectHome= hides; install-service binds
    it read-only instead of refusing.  (Its dependencies come from the first venv through a path
    file, as in tests/e2e/test_wheel_install.py: installing torch again would take minutes.)"""
    m = machine
    site = "lib/python3.11/site-packages"
    m.sh(f"python3 -m venv /root/venv && echo {container.VENV}/{site} > /root/venv/{site}/deps.pth && "
         "/root/venv/bin/pip install -q --no-index --no-deps --ignore-installed /wheels/voice_daemon-*.whl")
    out = m.sh("/root/venv/bin/voice-daemon install-service").stdout
    assert "BindReadOnlyPaths=/root/venv" in out and "ExecStart=/root/venv/bin/voice-daemon run" in out, out
    m.sh(f"systemctl daemon-reload && systemctl restart {UNIT}", timeout=400)
    assert running(m)["ActiveState"] == "active"
    assert "/root/venv/bin/voice-daemon" in m.show(UNIT, "ExecStart")["ExecStart"]
    m.sh(f"runuser -u alice -- cp /clips/one.wav {SRV}/inbox/again.wav")
    wait_until(lambda: m.sh(f"test -f {SRV}/outbox/again.wav", check=False).returncode == 0, 120,
               message=m.sh(f"journalctl -u {UNIT} --no-pager | tail -20", check=False).stdout)
    m.sh(f"systemctl stop {UNIT}", timeout=120)
    assert running(m)["Result"] == "success"
