"""Festival as a TTS backend: one long-lived ``festival --pipe`` process per worker.

A per-phrase ``text2wave`` call loads the voice each time (≈2 s of CPU for the Russian
unit-selection voice, measured), so the worker keeps one Festival process and feeds it
Scheme over a pipe: each phrase is ``(utt.save.wave (SynthText "…") "<tmp>.wav" 'riff)``
followed by a marker line that says it is done.  Festival reads UTF-8 (KOI8-R gives an
empty file), ignores Silero's ``+`` stress marks badly (they are stripped) and writes
16 kHz mono, which the engine resamples and fits to the timeline like any voice.

A Festival process that dies or hangs is restarted once for the phrase; it ends with
its worker (EOF on its stdin), and ``close`` ends it at once.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
import weakref

import numpy as np

from daemon import log
from daemon.engines.resynth import text as textmod
from daemon.engines.resynth.pieces import join_pieces
from daemon.errors import ModelError
from daemon.models import registry, system_tts
from daemon.settings import SILERO_SPEAKERS

#: Festival builds one utterance per call: long text in pieces at sentence ends keeps each call short.
FESTIVAL_MAX_CHARS = 400
#: A phrase that takes longer than this (plus a second per 20 characters) means a hung Festival.
TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0


class FestivalError(RuntimeError):
    pass


class FestivalProcess:
    """``festival --pipe`` with a voice loaded; ``say(text) -> float32 audio at 16 kHz``."""

    def __init__(self, voice: str, workdir: str):
        self.voice, self.workdir = voice, workdir
        self._proc: subprocess.Popen | None = None
        self._seq = 0
        self._buf = b""
        self._err_path = os.path.join(workdir, "festival.stderr")

    def start(self) -> None:
        exe = system_tts.festival_command()
        if exe is None:
            raise ModelError(f"festival is not installed: install the Debian packages {system_tts.FESTIVAL_PACKAGES}")
        with open(self._err_path, "wb") as err:
            self._proc = subprocess.Popen([exe, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=err, cwd=self.workdir, env={**os.environ, "LANG": "C.UTF-8"})
        self._buf = b""
        self.use_voice(self.voice, START_TIMEOUT_S)

    def use_voice(self, voice: str, timeout: float = START_TIMEOUT_S) -> None:
        got = self._call(f"(voice_{voice})\n(format t \"%s\\n\" current-voice)", timeout)
        if voice not in got.decode("utf-8", "replace").split():
            tail = self.stderr_tail()
            self.stop()
            raise ModelError(f"festival could not load the voice {voice}: {tail or 'no message'}")
        self.voice = voice

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def say(self, text: str) -> tuple[np.ndarray, int]:
        import soundfile as sf

        path = os.path.join(self.workdir, "phrase.wav")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._call(f'(utt.save.wave (SynthText "{_scheme_string(text)}") "{path}" \'riff)',
                   TIMEOUT_S + len(text) / 20)
        if not os.path.exists(path):
            raise FestivalError(f"festival wrote no audio for {text[:60]!r}: {self.stderr_tail() or 'no message'}")
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        return audio.mean(axis=1), int(rate)

    def _call(self, scheme: str, timeout: float) -> bytes:
        """Send ``scheme`` and a marker; return what Festival printed before the marker."""
        if self._proc is None or self._proc.poll() is not None:
            raise FestivalError(f"festival is not running: {self.stderr_tail() or 'no message'}")
        self._seq += 1
        marker = f"@@voice-daemon-{self._seq}@@".encode()
        try:
            self._proc.stdin.write(scheme.encode("utf-8") + b'\n(format t "' + marker + b'\\n")(fflush nil)\n')
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise FestivalError(f"festival stopped: {exc}; {self.stderr_tail()}") from None
        return self._read_until(marker, time.monotonic() + timeout)

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while marker + b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise FestivalError("festival did not answer in time (hung?)")
                block = os.read(fd, 65536)
                if not block:
                    raise FestivalError(f"festival exited: {self.stderr_tail() or 'no message'}")
                self._buf += block
        out, _, self._buf = self._buf.partition(marker + b"\n")
        return out

    def stderr_tail(self, chars: int = 300) -> str:
        try:
            with open(self._err_path, "rb") as f:
                data = f.read()[-chars:]
        except OSError:
            return ""
        return " ".join(data.decode("utf-8", "replace").split())

    def stop(self) -> None:
        _stop(self._proc)
        self._proc = None


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.stdin.close()  # Festival ends at EOF
        proc.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


def _scheme_string(text: str) -> str:
    """``text`` inside a Scheme string literal: one line, stress marks gone, quotes escaped."""
    text = textmod.clean(textmod.strip_stress(text)).replace("+", " ")
    return text.replace("\\", " ").replace('"', '\\"')


class FestivalTTS:
    name = "festival"
    reads_stress = False     # stress marks are stripped; the voice has its own lexicon
    reads_digits = False     # it reads digits, but without case agreement: normalise first
    supports_length = False  # Duration_Stretch had no effect (FACTS.md): timing is fitted afterwards

    def __init__(self, settings):
        self.variable = settings.env_name("voice")
        self.voice = system_tts.festival_voice(settings)
        self._installed = system_tts.festival_voices()
        if system_tts.festival_command() and self._installed:
            self.check_voice(self.voice)  # an unknown name is refused with the installed voices
        self.ref = registry.require(registry.festival_ref(settings))
        self.rate = 16000
        self.max_chars = FESTIVAL_MAX_CHARS
        self._dir = tempfile.mkdtemp(prefix="voice-daemon-festival-")
        self.process = FestivalProcess(self.voice, self._dir)
        self._finalizer = weakref.finalize(self, _cleanup, self.process, self._dir)
        if settings.voice in SILERO_SPEAKERS and self.voice != settings.voice:
            from daemon.models.voices import SILERO_SEX

            log.get().info("tts.voice_mapped", asked=settings.voice, voice=self.voice, sex="male",
                           why="a Silero voice: Festival's Russian voice" + (
                               " (no female Festival voice is installed)" if SILERO_SEX[settings.voice] == "female" else ""))
        t0 = time.perf_counter()
        self.process.start()
        log.get().info("model.loaded", model="tts", kind="festival", voice=self.voice, festival_pid=self.process.pid,
                       seconds=round(time.perf_counter() - t0, 3))

    def speakers(self) -> list[str]:
        return sorted(self._installed)

    def check_voice(self, voice: str) -> str:
        """An installed Festival voice; a Silero speaker name (the default) means the configured one."""
        if voice in SILERO_SPEAKERS:
            return self.voice
        if voice not in self._installed:
            raise ModelError(f"{self.variable}={voice}: not an installed Festival voice; "
                             f"valid: {', '.join(self.speakers()) or '(none)'}")
        return voice

    def synthesize(self, text: str, voice: str, *, length: float = 1.0, language: str | None = None) -> np.ndarray:
        voice = self.check_voice(voice)
        if voice != self.process.voice:  # a job for another installed voice (inbox/<voice>/)
            self.process.use_voice(voice)
        return join_pieces([self._piece(p) for p in textmod.split_text(text, self.max_chars)], self.rate)

    def _piece(self, piece: str) -> np.ndarray:
        from daemon.audio.resample import resample

        for attempt in (1, 2):
            try:
                audio, rate = self.process.say(piece)
                return resample(audio, rate, self.rate) if rate != self.rate else audio
            except FestivalError as exc:
                if attempt == 2:
                    raise
                log.get().warning("festival.restart", error=str(exc)[:300], festival_pid=self.process.pid)
                self.process.stop()
                self.process.start()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._finalizer()


def _cleanup(process: FestivalProcess, workdir: str) -> None:
    process.stop()
    shutil.rmtree(workdir, ignore_errors=True)
