"""`voice-daemon voices` and `voice-daemon models [--fetch]`."""

from __future__ import annotations

import sys

from daemon.errors import ModelError
from daemon.models import registry, system_tts, voices


def cli_voices(settings, args) -> int:
    """The synthesiser in use (and why), then every voice usable now: name, synthesiser, language, sex,
    licence; the one speaking marked with '*'.  Synthesisers not usable here follow, each with its fix."""
    if settings.engine == "shift":
        print("voice-daemon: the shift engine has no voices: it shifts pitch and formants "
              f"({settings.env_name('shift_semitones')}, {settings.env_name('shift_formant')}); "
              f"voices come with {settings.env_name('engine')}=resynth", file=sys.stderr)
        return 0
    tts, why = voices.choose(settings)
    if settings.tts != "auto" and (problem := voices.problem(settings, tts)) is not None:
        # Listing never downloads: a missing model is reported with the ways to get it.
        raise ModelError(registry.missing_message(registry.tts_ref(settings)) if tts == "silero" else problem)
    rows = [v for name in TTS_ORDER for v in voices.usable(settings, name) if name != "espeak" or tts == "espeak"]
    if tts == "silero":
        rows = [v for v in rows if v.tts != "silero"] + _silero_voices(settings)
    chosen = _chosen_voice(settings, tts)
    mapped = f" (speaks {settings.env_name('voice')}={settings.voice})" if chosen != settings.voice else ""
    print(f"synthesiser: {tts} ({why}); voice: {chosen or '(by language)'}{mapped}")
    print(f"  {'voice':20} {'tts':9} {'lang':5} {'sex':7} licence")
    for v in rows:
        mark = "*" if v.tts == tts and v.name == chosen else " "
        print(f"{mark} {v.name:20} {v.tts:9} {v.language or '-':5} {v.sex or '-':7} {v.licence or '-'}")
    if tts != "espeak" and voices.problem(settings, "espeak") is None:
        print(f"  (espeak: {len(system_tts.espeak_voices())} languages, `espeak-ng --voices`)")
    for name in TTS_ORDER:
        if (problem := voices.problem(settings, name)) is not None:
            print(f"  {name}: not usable here: {problem}")
    if tts == "silero" and settings.voice not in {v.name for v in rows if v.tts == "silero"}:
        print(f"voice-daemon: {settings.env_name('voice')}={settings.voice} is not one of them", file=sys.stderr)
        return ModelError.exit_code
    return 0


#: The order `voices` lists the synthesisers in.
TTS_ORDER = ("silero", "rhvoice", "festival", "piper", "espeak")


def _silero_voices(settings) -> list[voices.Voice]:
    """The speakers the Silero model file itself lists (loading it: a model of one's own may have others)."""
    ref = registry.require(registry.silero_ref(settings))
    if (problem := registry.sha_problem(ref, settings)) is not None:
        raise ModelError(problem)
    from daemon.models.loaders import load_silero_tts

    model, _ref = load_silero_tts(settings)
    return [voices.Voice(str(s), "silero", "ru", voices.SILERO_SEX.get(str(s), ""), voices.SILERO_LICENCE)
            for s in getattr(model, "speakers", [])]


def needed(settings) -> list[registry.ModelRef]:
    """The models the configured engine loads (`shift` needs only the VAD), the speaker model where
    speakers are on, and the separation model that splits the voice from the bed under it (loaded only
    where the bed can be kept)."""
    refs = [registry.vad_ref(settings)] if settings.engine == "shift" else registry.configured(settings)
    if settings.speakers_on:
        refs.append(registry.speaker_ref(settings))
    separation = registry.separation_ref(settings)
    # `auto` runs without it (it then keeps no bed, and says so); `keep` cannot.
    if settings.background == "keep" or (settings.background == "auto" and separation.present):
        refs.append(separation)
    return refs


def _chosen_voice(settings, tts: str) -> str:
    """The voice ``tts`` speaks with (RHVoice, Festival and espeak pick one for a Silero name)."""
    if tts == "rhvoice":
        return voices.rhvoice_for(settings, settings.voice) or ""
    if tts == "festival":
        return system_tts.festival_voice(settings)
    if tts == "espeak":
        return system_tts.espeak_voice(settings.voice) or system_tts.espeak_voice(settings.language) or ""
    if tts == "piper":
        names = registry.piper_speakers(settings)
        return settings.voice if settings.voice in names or len(names) != 1 else names[0]
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
    print(f"{'model':10} {'kind':15} {'present':8} {'size':>9}  {'sha256':64}  path")
    for row in rows:
        size = f"{row['size'] / 1e6:.1f} MB" if row["size"] is not None else "-"
        present = "MISMATCH" if row["name"] in problems else "yes" if row["present"] else "NO"
        print(f"{row['name']:10} {row['kind']:15} {present:8} {size:>9}  "
              f"{row['sha256'] or '-':64}  {row['path'] or '-'}")
    for row in rows:
        if row.get("licence"):
            print(f"({row['name']}: licence {row['licence']}; {row['source']})")
    if settings.engine == "shift":
        print(f"(the shift engine loads the VAD, and the separation model where the bed is kept; "
              f"{settings.env_name('engine')}=resynth also needs asr, stress and tts)")
    missing = [r for r in refs if not r.present]
    for ref in missing:
        print(f"voice-daemon: {registry.missing_message(ref)}", file=sys.stderr)
    for problem in problems.values():
        print(f"voice-daemon: {problem}", file=sys.stderr)
    return ModelError.exit_code if missing or failed or problems else 0
