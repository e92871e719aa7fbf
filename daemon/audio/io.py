"""Reading and writing audio files, streaming in blocks.

libsndfile (through soundfile) reads WAV/FLAC/OGG/Opus/MP3 and writes all of
those; PyAV (FFmpeg's libraries) reads what libsndfile lacks (M4A/AAC, …) and
ffmpeg's CLI writes M4A.  Everything is read and written in blocks so memory
stays bounded by the block size, not the file's length.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from daemon.audio import containers
from daemon.audio.quiet import decoder_stderr
from daemon.errors import InputError, OutputError

BLOCK_FRAMES = 1 << 16
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4"}
#: A transcript beside its audio (same stem); a .txt alone is read aloud by the resynth engine.
TRANSCRIPT_EXTENSIONS = (".srt", ".vtt", ".txt")
#: input extension -> output extension with VOICE_DAEMON_OUTPUT_FORMAT=same (we can't write raw AAC etc.)
SAME_FORMAT = {".wav": "wav", ".wave": "wav", ".flac": "flac", ".ogg": "ogg", ".oga": "ogg",
               ".opus": "opus", ".mp3": "mp3", ".m4a": "m4a", ".aac": "m4a", ".mp4": "m4a"}


def output_formats(output_format: str) -> dict:
    """VOICE_DAEMON_OUTPUT_FORMAT as ``Capabilities``' output fields: the format per input, and
    for any other input."""
    same = output_format == "same"
    return {"output_formats": dict(SAME_FORMAT) if same else {}, "output_default": "wav" if same else output_format}


#: output extension -> (soundfile format, subtype) or None for ffmpeg
WRITERS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "m4a": None,
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MAX_CHANNELS = 8
#: A stream that holds less than this share of its declared length is truncated.
TRUNCATION_TOLERANCE = 0.98
#: ``AudioInfo.reader`` of an Ogg file of several links (each read by libsndfile in turn).
CHAINED_OGG = "sndfile-chain"


@dataclass(frozen=True)
class AudioInfo:
    path: str
    reader: str          # "sndfile", "sndfile-chain" (chained Ogg) or "av"
    format: str
    sample_rate: int
    channels: int
    frames: int          # declared (sndfile) or estimated (av) length
    duration: float

    def to_dict(self) -> dict:
        return asdict(self)


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path``; raise InputError with a readable cause if it is not usable audio."""
    p = Path(path)
    if p.is_symlink():
        raise InputError(p, "is a symbolic link; give the file itself")
    if not p.exists():
        raise InputError(p, "no such file")
    if not p.is_file():
        raise InputError(p, "is not a regular file (a directory?)")
    size = p.stat().st_size
    if size == 0:
        raise InputError(p, "is empty (0 bytes)")
    try:
        open(p, "rb").close()
    except PermissionError as exc:
        raise InputError(p, "cannot be read: permission denied") from exc
    try:
        with decoder_stderr(str(p)):
            info = sf.info(_sf_path(p))
        ai = AudioInfo(str(p), "sndfile", info.format, int(info.samplerate), int(info.channels),
                       int(info.frames), float(info.frames) / info.samplerate if info.samplerate else 0.0)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        ai = _probe_av(p)
    ai = _container_checks(p, ai)
    if ai.channels < 1 or ai.channels > MAX_CHANNELS:
        raise InputError(p, f"has {ai.channels} channels; 1 to {MAX_CHANNELS} are supported")
    if not 8000 <= ai.sample_rate <= 192000:
        raise InputError(p, f"has a sample rate of {ai.sample_rate} Hz; 8000 to 192000 Hz are supported")
    if ai.frames <= 0:
        raise InputError(p, "contains no audio samples (zero length)")
    return ai


def _container_checks(p: Path, ai: AudioInfo) -> AudioInfo:
    """What libsndfile's header does not say: a WAV cut short, an Ogg of several chained links."""
    if ai.reader == "sndfile" and ai.format == "WAV" and (short := containers.wav_shortfall(p)):
        declared, present = short
        if present < declared * TRUNCATION_TOLERANCE:
            raise InputError(p, f"is truncated or damaged: it holds {present / ai.sample_rate:.2f} s of the "
                                f"{declared / ai.sample_rate:.2f} s its header declares")
    if ai.reader == "sndfile" and ai.format == "OGG":
        try:
            links = containers.ogg_links(p)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(p, f"is a chained Ogg file with a link that cannot be read ({exc})") from exc
        if links:
            frames = containers.chain_frames(links)
            if any(not 1 <= link.channels <= MAX_CHANNELS for link in links):
                raise InputError(p, f"has a link with {max(link.channels for link in links)} channels; "
                                    f"1 to {MAX_CHANNELS} are supported")
            ai = AudioInfo(ai.path, CHAINED_OGG, ai.format, links[0].sample_rate,
                           max(link.channels for link in links), frames, frames / links[0].sample_rate)
    return ai


def _probe_av(p: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            streams = container.streams.audio
            if not streams:
                raise InputError(p, "has no audio stream")
            st = streams[0]
            rate = int(st.codec_context.sample_rate or st.rate or 0)
            channels = int(st.codec_context.channels or 0)
            if rate <= 0 or channels <= 0:  # FFmpeg guessed a format from junk bytes
                raise InputError(p, "is not a readable audio file (format not recognised)")
            if st.duration is not None and st.time_base is not None:
                seconds = float(st.duration * st.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
            return AudioInfo(str(p), "av", container.format.name, rate, channels,
                             int(round(seconds * rate)), seconds)
    except InputError:
        raise
    except Exception as exc:  # av raises many types (InvalidDataError, ValueError…)
        raise InputError(p, "is not a readable audio file (format not recognised)") from exc


def read_blocks(info: AudioInfo, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield float32 blocks shaped (frames, channels) from the start to the end of the file.

    MP3 is decoded by FFmpeg (PyAV), not libsndfile: libmpg123 read block by block through
    libsndfile returns other samples than read in one go (in 121 of 300 seconds of a LAME VBR
    file, further from the original than FFmpeg's decode, which equals the one-shot read).
    """
    if info.reader == "sndfile" and info.format != "MP3":
        try:
            f = sf.SoundFile(_sf_path(info.path))
            with f:
                while True:
                    block = f.read(block_frames, dtype="float32", always_2d=True)
                    if not len(block):
                        return
                    yield block
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(info.path, f"cannot be decoded ({exc})") from exc
    elif info.reader == CHAINED_OGG:
        try:
            yield from containers.read_links(info.path, containers.ogg_links(info.path), block_frames)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise InputError(info.path, f"cannot be decoded ({exc})") from exc
    else:
        yield from _av_blocks(info)


def _av_blocks(info: AudioInfo, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """FFmpeg's frames (1152 samples for MP3) gathered into blocks of about ``block_frames``: the
    per-block work downstream then costs little next to the decoding itself."""
    import av

    try:
        with av.open(info.path, metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            pending, have = [], 0
            for frame in container.decode(stream):
                pending.append(_frame_array(frame))
                have += len(pending[-1])
                if have >= block_frames:
                    yield np.concatenate(pending) if len(pending) > 1 else pending[0]
                    pending, have = [], 0
            if pending:
                yield np.concatenate(pending)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(info.path, f"cannot be decoded ({type(exc).__name__}: {exc})") from exc


def _frame_array(frame) -> np.ndarray:
    """One decoded frame as float32 (frames, channels)."""
    if frame.format.name == "fltp":  # what the MP3 and AAC decoders give: read the planes in place
        planes = [np.frombuffer(p, dtype=np.float32, count=frame.samples) for p in frame.planes]
        return planes[0][:, None] if len(planes) == 1 else np.stack(planes, axis=1)
    arr = frame.to_ndarray()
    # planar: (channels, n); packed: (1, n*channels)
    block = arr.T if frame.format.is_planar else arr.reshape(-1, len(frame.layout.channels))
    if np.issubdtype(arr.dtype, np.integer):
        return block.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    return block.astype(np.float32, copy=False)


def writer_for(path: str | os.PathLike) -> str:
    """The output format of ``path`` by its extension; OutputError if we can't write it."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext == "wave":
        ext = "wav"
    if ext not in WRITERS:
        raise OutputError(path, f"cannot write '.{ext}' files; use one of: {', '.join('.' + e for e in WRITERS)}")
    return ext


def encode(wav_path: str, out_path: str, sample_rate: int) -> None:
    """Stream the float32 working WAV ``wav_path`` into ``out_path`` (format by extension).

    Writes ``out_path`` directly: callers write to a temporary name and rename.
    """
    ext = writer_for(out_path)
    spec = WRITERS[ext]
    if spec is None:
        return _encode_ffmpeg(wav_path, out_path)
    fmt, subtype = spec
    rate = sample_rate
    src = sf.SoundFile(_sf_path(wav_path))
    dst = None
    try:
        if ext == "opus" and rate not in OPUS_RATES:
            raise OutputError(out_path, f"Opus cannot store {rate} Hz; use one of {OPUS_RATES} (VOICE_DAEMON_SAMPLE_RATE)")
        dst = sf.SoundFile(_sf_path(out_path), "w", samplerate=rate, channels=1, format=fmt, subtype=subtype)
        while True:
            block = src.read(BLOCK_FRAMES, dtype="float32")
            if not len(block):
                break
            dst.write(np.clip(block, -1.0, 1.0))
        dst.close()
    except (sf.LibsndfileError, RuntimeError) as exc:
        system = _system_error(dst, out_path)
        if dst is not None and not dst.closed:
            dst.close()
        if system is not None:  # a full disk, a quota, an I/O error: not the audio's fault
            raise system from exc
        raise OutputError(out_path, f"cannot be written as {ext} ({exc})") from exc
    finally:
        src.close()


def _sf_path(path: str | os.PathLike) -> bytes:
    """A path for libsndfile as bytes: a name that is not valid UTF-8 (surrogate escapes in a
    ``str``) would make soundfile raise UnicodeEncodeError."""
    return os.fsencode(path)


_ERRNO_BY_TEXT: dict[str, int] = {}


def _system_error(f: sf.SoundFile | None, path) -> OSError | None:
    """The OSError behind libsndfile's "System error.": its handle (or, before one was opened,
    the library) still holds the errno's text, which soundfile's exception drops.  Failing
    that, a folder left with no room at all is taken as a full disk."""
    try:
        handle = f._file if f is not None and not f.closed else sf._ffi.NULL
        text = sf._ffi.string(sf._snd.sf_strerror(handle)).decode("utf-8", "replace")
    except (AttributeError, TypeError):  # soundfile's internals moved
        text = ""
    if not _ERRNO_BY_TEXT:
        _ERRNO_BY_TEXT.update({os.strerror(code): code for code in errno.errorcode})
    prefix = "System error : "
    code = _ERRNO_BY_TEXT.get(text[len(prefix):].rstrip(".")) if text.startswith(prefix) else None
    if code is None:
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(path)))
            code = errno.ENOSPC if st.f_bfree * st.f_frsize < 65536 else None
        except OSError:
            code = None
    return OSError(code, os.strerror(code), os.fspath(path)) if code else None


def _encode_ffmpeg(wav_path: str, out_path: str) -> None:
    exe = shutil.which("ffmpeg")
    if not exe:
        raise OutputError(out_path, "writing .m4a needs ffmpeg: install it (apt-get install ffmpeg)")
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", wav_path,
           "-c:a", "aac", "-b:a", "128k", "-f", "mp4", out_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            if os.strerror(code) in proc.stderr:
                raise OSError(code, os.strerror(code), os.fspath(out_path))
        raise OutputError(out_path, f"ffmpeg failed: {proc.stderr.strip()[-300:]}")
