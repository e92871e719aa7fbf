"""Command line: argument parsing and exit codes.

The only place that turns errors into exits.  Settings are read once here and
passed down; subcommand handlers are imported lazily so `--help` stays fast and
the parent never imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys

from daemon import __version__
from daemon.deploy import sources
from daemon.errors import UsageError, VoiceDaemonError
from daemon.jobs import resolve
from daemon.settings import SettingsError, describe, load_settings

EPILOG = """\
Inputs: audio (wav, flac, ogg, opus, mp3, m4a, aac) and the audio track of .mp4
video; with the resynth engine also a .txt file, read aloud, and a transcript
(.srt, .vtt, .txt) beside an audio file of the same name.
Configuration comes from VOICE_DAEMON_* environment variables (and env files);
`voice-daemon config` lists every variable with its value and where it came from.
Global options (--log-level, --log-format) go before or after the command.
NO_COLOR set: no colours.  Exit codes: 0 ok, 1 error, 2 usage, 3 not running
(`status`), 65 bad input, 73 cannot write output, 78 bad configuration,
130 interrupted (Ctrl-C), 141 the reader of the output went away
(`voice-daemon config --table | head`).
"""
#: What a shell reports for a program killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141

# subcommand -> (handler "module:function", one-line help, long description)
COMMANDS = {
    "convert": ("daemon.app:cli_convert", "convert one file (parallel chunks on the warm pool)",
                "Convert INPUT to OUTPUT with the configured engine.  The output format follows "
                "OUTPUT's extension.  Prints a progress bar on a terminal and a one-line summary."),
    "run": ("daemon.app:cli_run", "run the watch-folder service",
            "Watch VOICE_DAEMON_INBOX, convert every complete audio file to VOICE_DAEMON_OUTBOX, "
            "quarantine failures in VOICE_DAEMON_FAILED_DIR.  Stops cleanly on SIGTERM/SIGINT."),
    "status": ("daemon.app:cli_status", "show queued, in-flight, done and failed jobs",
               "Read the state folders and print what is queued, in flight, done and failed, and "
               "where the tasks run (with the dask backend: the scheduler's workers, connected and busy).  "
               "With the service installed, its folders come from the unit's Environment= lines and the env "
               "file.  Exit 0 when a daemon runs, 3 when none does."),
    "worker": ("daemon.app:cli_worker", "run a Dask worker node for VOICE_DAEMON_BACKEND=dask",
               "Start --nworkers single-thread Dask worker processes that join the scheduler; the daemon's "
               "settings load the engine's models once in each.  Survives scheduler restarts; stops on "
               "SIGTERM/SIGINT.  TLS from VOICE_DAEMON_TLS_CA_FILE, _CERT_FILE, _KEY_FILE."),
    "bench": ("daemon.app:cli_bench", "benchmark sequential / threads / reload / pool / dask",
              "Run one fixed workload made from the shared speech recordings through each way of "
              "running it and print a table (and JSON with --json)."),
    "voices": ("daemon.models.cli:cli_voices", "list the speakers of the configured TTS",
               "List the speakers the configured TTS model offers."),
    "models": ("daemon.models.cli:cli_models", "show (and fetch) the configured models",
               "Show which models are present (path, size, SHA-256); with --fetch, download the "
               "configured ones where a network exists."),
    "install-service": ("daemon.deploy.install:install_service", "install the systemd unit and env file (as root)",
                        "Write the systemd unit shipped in this package to the unit folder with ExecStart at this "
                        "installation (and drop-ins for folders, or an installation, under /home or /root), the "
                        "env-file template if none exists, and print each file written and the systemctl "
                        "commands to run next.  --dry-run prints the same and writes nothing."),
    "retry": ("daemon.spool.retry:cli_retry", "send failed inputs back through the inbox",
              "Move each FAILED_FILE (a path, or a name as `status` lists it) from the failed folder to the "
              "same place under the inbox, where the daemon takes it again, and remove its error.json.  "
              "Exit 1 when a name is not a failed input (the others are still retried)."),
    "config": ("daemon.cli:cli_config", "print the effective configuration",
               "Print every VOICE_DAEMON_* variable with its effective value (or, with --table, "
               "the Markdown table of defaults in docs/reference/configuration.md)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-daemon",
        description="Convert the voice in audio files: a watch-folder service and a one-shot converter.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voice-daemon {__version__}")
    _add_global_flags(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    # After the command too (`voice-daemon config --log-level debug`); SUPPRESS: absent there, the
    # value given before the command stays.
    _add_global_flags(common, argparse.SUPPRESS)
    for name, (_handler, short, long) in COMMANDS.items():
        p = sub.add_parser(name, help=short, description=long, epilog=EPILOG, parents=[common],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name in _ARGUMENTS:
            _ARGUMENTS[name](p)
    return parser


def _add_global_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=default,
                        help="override VOICE_DAEMON_LOG_FORMAT")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=default,
                        help="override VOICE_DAEMON_LOG_LEVEL")


def _convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="audio file to convert (wav, flac, ogg, opus, mp3, m4a, aac, "
                                                  "the audio of an .mp4; resynth: also a .txt to read aloud)")
    p.add_argument("output", metavar="OUTPUT", help="file to write; its extension picks the format")
    p.add_argument("--engine", choices=["shift", "resynth"], help="override VOICE_DAEMON_ENGINE")
    p.add_argument("--voice", help="override VOICE_DAEMON_VOICE")
    p.add_argument("--semitones", type=float, help="override VOICE_DAEMON_SHIFT_SEMITONES")
    p.add_argument("--formant", type=float, help="override VOICE_DAEMON_SHIFT_FORMANT")
    p.add_argument("--workers", type=int, help="override VOICE_DAEMON_WORKERS")
    p.add_argument("--sequential", action="store_true",
                   help="run every stage in this process, one chunk after another (no pool)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--modes", help="comma-separated subset of sequential,sequential-unpinned,threads,reload,pool,dask "
                                   "(default: all; the long workload: sequential,pool,dask)")
    p.add_argument("--workload", choices=("batch", "long"), default="batch",
                   help="batch: many files (default); long: one 30-minute file, one core against every core")
    p.add_argument("--format", choices=("wav", "mp3"), default="wav",
                   help="the long workload's input and output: WAV at 24 kHz or MP3 128 kbit/s at 48 kHz")
    p.add_argument("--bed", metavar="MUSIC",
                   help="the long workload: mix MUSIC (looped, 9 dB below the speech) under the recording and "
                        "keep the bed (VOICE_DAEMON_BACKGROUND=keep)")
    p.add_argument("--seconds", type=float, metavar="S",
                   help="the long workload's length in seconds (default: 1800)")
    p.add_argument("--quick", action="store_true", help="a smaller workload (for a smoke test)")
    p.add_argument("--speech-dir", metavar="DIR",
                   help="the folder of speech recordings (WAV, FLAC) the workload is built from (required)")


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fetch", action="store_true", help="download the configured models (needs a network)")


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", action="store_true", help="print the Markdown table of defaults (docs/reference/configuration.md)")


def _install_service_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    p.add_argument("--worker", action="store_true",
                   help="install the Dask worker node's unit (voice-daemon-worker.service) instead")
    p.add_argument("--scheduler", action="store_true",
                   help="install the Dask scheduler's unit (voice-daemon-scheduler.service) instead")
    p.add_argument("--drop-group", metavar="GROUP",
                   help="share the inbox, outbox and failed folder (under --drop-dir) with the members of GROUP")
    p.add_argument("--drop-dir", metavar="DIR", default="/srv/voice-daemon",
                   help="where --drop-group makes those folders (default: %(default)s)")
    p.add_argument("--unit-dir", default="/etc/systemd/system", help="where the unit goes (default: %(default)s)")
    p.add_argument("--env-dir", default="/etc/voice-daemon", help="where the env file goes (default: %(default)s)")
    p.add_argument("--exec-path", help="the voice-daemon program ExecStart runs (default: this installation's)")


def _retry_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FAILED_FILE", help="a failed input to convert again")
    p.add_argument("--all", action="store_true", help="every input in the failed folder")


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--state-dir", metavar="DIR",
                   help="the daemon's state folder (overrides VOICE_DAEMON_STATE_DIR; the other folders "
                        "are read from what the daemon recorded there)")


def _worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", metavar="ADDR",
                   help="the scheduler, tcp://HOST:8786 or tls://HOST:8786 (default: VOICE_DAEMON_DASK_SCHEDULER)")
    p.add_argument("--nworkers", type=int, metavar="N",
                   help="worker processes on this node, one thread each (default: VOICE_DAEMON_WORKERS)")
    p.add_argument("--host", help="address the workers listen on (default: this host's address "
                                  "toward the scheduler, 127.0.0.1 for a local one)")


#: each command's own arguments (beside the global flags)
_ARGUMENTS = {
    "convert": _convert_arguments,
    "bench": _bench_arguments,
    "models": _models_arguments,
    "config": _config_arguments,
    "install-service": _install_service_arguments,
    "retry": _retry_arguments,
    "status": _status_arguments,
    "worker": _worker_arguments,
}


OVERRIDES = {  # CLI flag -> settings field
    "engine": "engine", "voice": "voice", "semitones": "shift_semitones",
    "formant": "shift_formant", "workers": "workers", "log_format": "log_format",
    "log_level": "log_level", "state_dir": "state_dir",
}


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here, not in a traceback at exit
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # a broken pipe of our own (a socket, a child): a bug to see, not to hide
        # The reader left (`| head`): stop quietly, as a program killed by SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _stdout_gone() -> bool:
    """True when stdout is a pipe (or socket) nobody reads any more (poll says POLLERR/POLLHUP)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "config" and getattr(args, "table", False):
        return cli_config(None, args)
    overrides = {field: getattr(args, flag) for flag, field in OVERRIDES.items()
                 if getattr(args, flag, None) is not None}
    try:
        # the installed unit's folders for status/config/retry; the user's cache folder for convert
        layered, args.sources = sources.layered(args.command, overrides)
        settings = load_settings(**{**layered, **overrides})
    except SettingsError as exc:
        print(f"voice-daemon: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    from daemon import log

    log.configure(settings.log_format, settings.log_level)
    handler = resolve(COMMANDS[args.command][0])
    try:
        return int(handler(settings, args) or 0)
    except KeyboardInterrupt:
        print("voice-daemon: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"voice-daemon {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except SettingsError as exc:  # e.g. `run` finds its folders overlapping
        print(f"voice-daemon: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    except VoiceDaemonError as exc:
        print(f"voice-daemon: error: {exc}", file=sys.stderr)
        return exc.exit_code


def cli_config(settings, args) -> int:
    if args.table or settings is None:
        print("| variable | default | meaning |")
        print("| --- | --- | --- |")
        for var, default, text in describe():
            print(f"| `{var}` | `{default}` | {text} |" if default != "" else f"| `{var}` | (empty) | {text} |")
        return 0
    origin = getattr(args, "sources", {})
    rows = [(settings.env_name(name), sources.shown(value)) for name, value in settings.model_dump().items()]
    width = max(len(f"{var}={value}") for var, value in rows)
    for var, value in rows:  # `KEY=value  # source`: still a valid env file
        print(f"{var}={value}".ljust(width) + f"  # {origin.get(var, 'default')}")
    if settings.engine == "resynth" and settings.tts == "auto":
        from daemon.models.voices import choose

        tts, why = choose(settings)
        print(f"# {settings.env_name('tts')}=auto speaks with {tts} here ({why}); `voice-daemon voices` lists them")
    return 0
