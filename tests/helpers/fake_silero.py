"""Build a small Silero-TTS stand-in as a real ``torch.package`` file.

The real Silero weights (``v4_ru.pt``, ~100 MB from models.silero.ai) cannot be
downloaded on these machines.  This file stands in for them: it is written with
``torch.package.PackageExporter`` exactly like Silero's, so the engine loads it
through the same code path (``PackageImporter(path).load_pickle("tts_models",
"model")``), and it exposes the same interface: ``speakers`` and
``apply_tts(text=, speaker=, sample_rate=)`` returning a 1-D float tensor.

It "speaks" an espeak-like buzz: a voiced tone per vowel (longer and higher when
a ``+`` stress mark precedes it), a noise burst per consonant, pauses at spaces
and punctuation, so the audio's length grows with the text.  Like the real model
it refuses sample rates other than 8/24/48 kHz and text over its per-call limit,
which is lower for one speaker (``xenia``), as the issue describes.
"""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

PACKAGE = "silero_stand_in"
MODULE = f"{PACKAGE}.tts"

SOURCE = '''
import math
import torch

VOWELS = set("aeiouyаеёиоуыэюя")
PITCH = {"aidar": 110.0, "eugene": 125.0, "baya": 200.0, "kseniya": 220.0, "xenia": 240.0}
LIMITS = {"xenia": 500}


class StandInTTS:
    """Interface of a Silero TTS model; see tests/helpers/fake_silero.py."""

    def __init__(self):
        self.speakers = ["aidar", "baya", "kseniya", "xenia", "eugene", "random"]
        self.max_chars = 1000
        self.weights = torch.linspace(-1.0, 1.0, 64)  # a tensor, as a real model's state would be
        self.history = []

    def to(self, device):
        return self

    def apply_tts(self, text=None, ssml_text=None, speaker="xenia", sample_rate=48000,
                  put_accent=True, put_yo=True):
        if sample_rate not in (8000, 24000, 48000):
            raise ValueError(f"sample_rate {sample_rate} not in [8000, 24000, 48000]")
        if speaker not in self.speakers:
            raise ValueError(f"Speaker {speaker} not in the supported list {self.speakers}")
        text = text if text is not None else ssml_text
        if not text or len(text) > LIMITS.get(speaker, self.max_chars):
            raise Exception("Model couldn't generate your text, probably it's too long")
        self.history.append(text)
        f0 = PITCH.get(speaker, 180.0)
        gen = torch.Generator().manual_seed(len(text))
        parts, stressed = [], False
        for ch in text.lower():
            if ch == "+":
                stressed = True
                continue
            if ch in VOWELS:
                dur = 0.14 if stressed else 0.09
                n = int(dur * sample_rate)
                t = torch.arange(n, dtype=torch.float32) / sample_rate
                hz = f0 * (1.15 if stressed else 1.0)
                wave = sum(torch.sin(2 * math.pi * hz * k * t) / k for k in range(1, 6))
                env = torch.sin(math.pi * torch.arange(n, dtype=torch.float32) / n)
                parts.append(0.25 * wave * env)
                stressed = False
            elif ch.isalpha():
                n = int(0.05 * sample_rate)
                parts.append(0.08 * torch.randn(n, generator=gen))
            elif ch.isspace():
                parts.append(torch.zeros(int(0.04 * sample_rate)))
            elif ch in ",;:-":
                parts.append(torch.zeros(int(0.15 * sample_rate)))
            elif ch in ".!?":
                parts.append(torch.zeros(int(0.25 * sample_rate)))
        if not parts:
            parts.append(torch.zeros(int(0.05 * sample_rate)))
        return torch.cat(parts).to(torch.float32)
'''


def _module():
    if MODULE not in sys.modules:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = []
        mod = types.ModuleType(MODULE)
        exec(compile(SOURCE, f"<{MODULE}>", "exec"), mod.__dict__)
        sys.modules[PACKAGE], sys.modules[MODULE] = pkg, mod
    return sys.modules[MODULE]


#: Put before the model's source in a slow stand-in: loading it (which runs the file's code, as a
#: real Silero model's does) first notes the loading process's pid in a file, then takes its time.
SLOW_LOAD = """
import os as _os, time as _time
with open({marker!r}, "a") as _f:
    _f.write(f"{{_os.getpid()}}\\n")
_time.sleep({seconds!r})
with open({marker!r} + ".loaded", "a") as _f:
    _f.write(f"{{_os.getpid()}}\\n")
"""


def build_fake_silero(path, *, load_seconds: float = 0.0, loading_marker=None) -> Path:
    """Write the stand-in model to ``path`` (a ``.pt`` torch.package) and return it.

    ``load_seconds``: a model that takes that long to load, appending the loading process's pid
    to ``loading_marker`` as it begins and to ``loading_marker`` + ``.loaded`` as it ends (lets a test
    stop a program while its models load, and tell whether it waited for the load)."""
    from torch.package import PackageExporter

    path = Path(path)
    model = _module().StandInTTS()  # pickled by the class's name: the packaged source is what loads
    source = SOURCE
    if load_seconds:
        source = SLOW_LOAD.format(marker=str(loading_marker), seconds=float(load_seconds)) + SOURCE
    with warnings.catch_warnings(), PackageExporter(str(path)) as exp:
        warnings.simplefilter("ignore", UserWarning)  # torch's own TypedStorage deprecation notice
        exp.save_source_string(PACKAGE, "", is_package=True)
        exp.save_source_string(MODULE, source)
        exp.extern(["torch", "torch.**", "math", "os", "time"])
        exp.save_pickle("tts_models", "model", model)
    return path
