"""Audio: probe, decode to a working WAV, VAD chunk plan, stitch, encode.

Only ``vad`` imports torch (through silero-vad); the rest is safe in the parent.
"""

from daemon.audio.io import AUDIO_EXTENSIONS, AudioInfo, encode, probe, writer_for

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "encode", "probe", "writer_for"]
