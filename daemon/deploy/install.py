"""`voice-daemon install-service`: write the unit (and the env file) for this installation.

The templates ship inside the package, so this works from a wheel in any venv
(``/opt/voice-daemon/venv``, pipx, pyenv).  The unit's ``ExecStart=`` is pointed at
the installation the command runs from; an installation under ``/home`` or ``/root``
(which ``ProtectHome=yes`` hides) is bound read-only into the service by a drop-in.
"""

from __future__ import annotations

import grp
import os
import re
import sysconfig
from importlib import resources
from pathlib import Path

from daemon import durable
from daemon.errors import VoiceDaemonError

UNIT_NAME = "voice-daemon.service"
WORKER_UNIT_NAME = "voice-daemon-worker.service"  # a Dask worker node (`voice-daemon worker`)
SCHEDULER_UNIT_NAME = "voice-daemon-scheduler.service"  # the Dask scheduler (`dask scheduler`)
ENV_NAME = "voice-daemon.env"
DEFAULT_STATE = Path("/var/lib/voice-daemon")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_ENV_DIR = Path("/etc/voice-daemon")
#: Where `--drop-group` puts the folders a group shares with the service (the unit may write there).
DROP_DIR = Path("/srv/voice-daemon")
#: Drop-ins install-service derives from the installation and the settings (rewritten every time).
DERIVED = ("installation.conf", "folders.conf")
MARK = "# Written by `voice-daemon install-service`"
#: Hidden from the service by ProtectHome=yes.
HOMES = ("/home", "/root", "/run/user")


class InstallError(VoiceDaemonError):
    """install-service cannot put the files in place (the command line prints it, exit 1)."""

    exit_code = 1


def template(name: str) -> str:
    """A file shipped in the package: a unit or the env-file template."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def template_path(name: str) -> str:
    """Where a template lies on disk (to name it to the operator)."""
    return str(resources.files(__package__).joinpath(name))


def scripts_dir() -> Path:
    """The folder holding this installation's console scripts (a venv's bin/, pipx's, /usr/local/bin)."""
    return Path(sysconfig.get_path("scripts"))


EXEC_START = re.compile(r"^ExecStart=(\S*)(.*)$", re.MULTILINE)


def render_unit(text: str, command: str) -> str:
    """The unit with ``ExecStart=command`` (the installed program and its arguments)."""
    if not EXEC_START.search(text):
        raise ValueError("unit has no ExecStart= line")
    return EXEC_START.sub(lambda _m: "ExecStart=" + command, text, count=1)


def hidden_by_protect_home(path: str) -> str | None:
    for top in HOMES:
        if path == top or path.startswith(top + "/"):
            return top
    return None


def installation_prefixes(program: Path) -> list[str]:
    """The folders the service must read to run ``program``: its venv and its interpreter's prefix.

    A console script names its interpreter in its ``#!`` line; a venv's python is a symlink to
    the real one (pyenv keeps that under ~), whose prefix holds the standard library."""
    real = Path(os.path.realpath(program))  # pipx's ~/.local/bin/voice-daemon is a symlink into its venv
    found = [program.parent.parent, real.parent.parent]
    try:
        with open(real, "rb") as f:
            first = f.readline(4096)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        interpreter = first[2:].split()[0].decode(errors="replace") if first[2:].split() else ""
        if interpreter:
            found.append(Path(interpreter).parent.parent)
            found.append(Path(os.path.realpath(interpreter)).parent.parent)
    return _outermost(str(p) for p in found)


def _outermost(paths) -> list[str]:
    """Distinct paths without those inside another of them."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in unique)]


def installation_dropin(program: Path) -> str:
    """A drop-in binding an installation under /home or /root read-only into the service ('' when none)."""
    hidden = [p for p in installation_prefixes(program) if hidden_by_protect_home(p)]
    if not hidden:
        return ""
    return "\n".join([
        "# Written by `voice-daemon install-service`: this installation lies where ProtectHome=yes",
        "# hides it; a tmpfs over the home folders plus a read-only bind of just these lets it run.",
        "[Service]", "ProtectHome=tmpfs", "BindReadOnlyPaths=" + " ".join(hidden)]) + "\n"


def folders_dropin(settings) -> str:
    """A drop-in opening the configured folders that lie outside the unit's StateDirectory.

    The unit can only name fixed paths; folders set in the env file elsewhere need
    ReadWritePaths= (and, under /home or /root, a way past ProtectHome=).
    """
    paths, homes = [], []
    for field in ("inbox", "outbox", "failed_dir", "state_dir", "model_dir"):
        p = Path(getattr(settings, field))
        if not p.is_absolute() or p == DEFAULT_STATE or DEFAULT_STATE in p.parents:
            continue  # relative defaults are replaced by the unit's Environment= lines
        paths.append(str(p))
        if hidden_by_protect_home(str(p)):
            homes.append(str(p))
    if not paths:
        return ""
    lines = ["# Written by `voice-daemon install-service` for the folders configured outside",
             f"# {DEFAULT_STATE}.  The service user must be able to write there.",
             "[Service]", "ReadWritePaths=" + " ".join(sorted(set(paths)))]
    if homes:
        # ProtectHome=yes hides /home and /root entirely; a tmpfs over them plus a bind
        # of just these folders keeps the rest of the home directories out of reach.
        lines += ["ProtectHome=tmpfs", "BindPaths=" + " ".join(sorted(set(homes)))]
    return "\n".join(lines) + "\n"


def drop_group_dropin(group: str, top: Path) -> str:
    """A drop-in that shares the inbox, outbox and failed folder under ``top`` with ``group``.

    The dynamic user's own state folder lies under /var/lib/private (mode 0700): no one else can
    reach it.  These folders are root:GROUP with mode 2770 (setgid: whatever is put there belongs
    to the group), the service joins the group, and its UMask=0027 keeps outputs group-readable."""
    return "\n".join([
        f"# Written by `voice-daemon install-service --drop-group {group}`: the members of {group} drop",
        f"# files into {top}/inbox and read the results in {top}/outbox ({top}/failed: what failed).",
        "[Service]", f"SupplementaryGroups={group}", f"ReadWritePaths={top}",
        f"Environment=VOICE_DAEMON_INBOX={top}/inbox VOICE_DAEMON_OUTBOX={top}/outbox "
        f"VOICE_DAEMON_FAILED_DIR={top}/failed"]) + "\n"


def make_drop_folders(group: str, top: Path, dry: bool) -> None:
    """root:GROUP, mode 2770: the group writes, new files and folders inherit the group."""
    gid = grp.getgrnam(group).gr_gid
    for name in ("inbox", "outbox", "failed"):
        d = top / name
        if not dry:
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, gid)
            os.chmod(d, 0o2770)
        print(f"{'would make' if dry else 'folder':<11} {d} (root:{group}, mode 2770)")


def plan(settings, args) -> list[tuple[Path, str, bool]]:
    """(path, text, replace) of every file to write; ``replace`` False keeps an existing file."""
    unit_dir = Path(getattr(args, "unit_dir", None) or SYSTEM_UNIT_DIR)
    env_dir = Path(getattr(args, "env_dir", None) or SYSTEM_ENV_DIR)
    exec_path = getattr(args, "exec_path", None)
    program = Path(exec_path) if exec_path else scripts_dir() / "voice-daemon"
    if not program.is_file():
        raise InstallError(f"{program} does not exist: install the package first "
                           "(pip install voice-daemon, or make install) or pass --exec-path")
    if getattr(args, "scheduler", False):
        name, program = SCHEDULER_UNIT_NAME, program.parent / "dask"
        command = EXEC_START.search(template(name)).group(2).strip()  # the template's own arguments
        if not program.is_file():
            raise InstallError(f"{program} does not exist: the Dask scheduler comes with the package's "
                               "dependencies; install them into this installation")
    elif getattr(args, "worker", False):
        name, command = WORKER_UNIT_NAME, "worker"
    else:
        name, command = UNIT_NAME, "run"
    actions = [(unit_dir / name, render_unit(template(name), f"{program} {command}"), True)]
    dropins = [("installation.conf", installation_dropin(program))]
    if name != SCHEDULER_UNIT_NAME:
        dropins.append(("folders.conf", folders_dropin(settings)))
    group = getattr(args, "drop_group", None)
    if group and name == UNIT_NAME:
        dropins.append(("group.conf", drop_group_dropin(group, Path(getattr(args, "drop_dir", None) or DROP_DIR))))
    # (path, None, True): a drop-in an earlier run wrote that no longer applies (another venv, the
    # default folders) goes; group.conf, asked for by a flag, stays until the operator removes it.
    actions += [(unit_dir / (name + ".d") / conf, text or None, True) for conf, text in dropins
                if text or conf in DERIVED]
    if name != SCHEDULER_UNIT_NAME:  # the scheduler reads Dask's variables from its own scheduler.env
        actions.append((env_dir / ENV_NAME, template(ENV_NAME), False))
    return actions


def install_service(settings, args) -> int:
    """`voice-daemon install-service`: write the unit, its drop-ins and (if none exists) the env file.

    args: ``dry_run`` (print only), ``worker`` / ``scheduler`` (which unit), ``unit_dir``
    (default /etc/systemd/system), ``env_dir`` (default /etc/voice-daemon), ``exec_path``
    (default: this installation's console script).  Does not run systemctl; prints the
    commands.  Raises InstallError when it cannot.
    """
    dry = bool(getattr(args, "dry_run", False))
    group = getattr(args, "drop_group", None)
    if group:
        if getattr(args, "worker", False) or getattr(args, "scheduler", False):
            raise InstallError("--drop-group shares the daemon's folders: use it without --worker/--scheduler")
        try:
            grp.getgrnam(group)
        except KeyError:
            raise InstallError(f"no group {group!r}: create it first (groupadd --system {group}) and add "
                               f"the users who drop files (usermod -aG {group} USER)") from None
    actions = plan(settings, args)
    verb = "would write" if dry else "wrote"
    try:
        if group:
            make_drop_folders(group, Path(getattr(args, "drop_dir", None) or DROP_DIR), dry)
        for path, text, replace in actions:
            if text is None:
                if path.is_file() and path.read_text().startswith(MARK):
                    if not dry:
                        path.unlink()
                    print(f"{'would remove' if dry else 'removed':<11} {path} (no longer needed)")
                continue
            if path.exists() and not replace:
                print(f"kept        {path} (exists; every variable is listed in {template_path(ENV_NAME)})")
                continue
            if path.exists() and path.read_text() == text:
                print(f"unchanged   {path}")
            else:
                if not dry:
                    _write(path, text, mode=0o644)
                print(f"{verb:<11} {path}")
            if path.suffix == ".conf":
                print("  " + text.replace("\n", "\n  ").rstrip())
            elif path.suffix == ".service":
                print("  " + re.search(r"^ExecStart=.*$", text, re.M).group(0))
    except OSError as exc:
        hint = " (run as root: sudo)" if isinstance(exc, PermissionError) else ""
        raise InstallError(f"cannot write {exc.filename}: {exc.strerror}{hint}") from exc
    service = actions[0][0].name.removesuffix(".service")
    print(f"next:       systemctl daemon-reload && systemctl enable --now {service}")
    print(f"logs:       journalctl -u {service} -f   (JSON: journalctl -u {service} -o json)")
    return 0


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.write_text(path, text, tmp=path.with_name(f".{path.name}.tmp"), mode=mode)
