"""Test audio made from the shared real recordings with ffmpeg/sox (never edited in place)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def transcode(src: Path, dst: Path, *opts: str) -> Path:
    ffmpeg("-i", str(src), *opts, str(dst))
    return dst


def concat(src: Path, dst: Path, times: int) -> Path:
    """``src`` repeated ``times`` times (a long recording of real speech)."""
    ffmpeg("-stream_loop", str(times - 1), "-i", str(src), "-c:a", "pcm_s16le", str(dst))
    return dst


def silence(dst: Path, seconds: float, rate: int = 16000) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono", "-t", str(seconds), str(dst))
    return dst


def decode(path: Path):
    """Every sample of ``path`` as mono float32, through FFmpeg (PyAV)."""
    import av
    import numpy as np

    with av.open(str(path)) as c:
        blocks = [f.to_ndarray() for f in c.decode(c.streams.audio[0])]
    out = np.concatenate([b.reshape(-1) for b in blocks])
    return (out / 32768.0 if out.dtype == np.int16 else out).astype(np.float32)


def duration(path: Path) -> float:
    import soundfile as sf

    try:
        return sf.info(str(path)).duration
    except Exception:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(path)], capture_output=True, text=True, check=True).stdout
        return float(out.strip())
