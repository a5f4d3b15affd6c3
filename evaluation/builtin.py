"""The built-in sample set: Harvard sentences spoken by espeak-ng's English accent voices.

``python -m evaluation make-builtin`` rebuilds ``evaluation/builtin/`` (FLAC 16 kHz + ``metadata.csv``, the
audiofolder layout) from nothing but espeak-ng, so anyone can check or regenerate the committed files.

The accents are synthetic: they are espeak-ng's rule-based renderings of each variety, not recordings of
people. They exercise the whole validation pipeline and show how a model reacts to accent-like variation;
they say nothing about how it serves real speakers of those accents. Every accent speaks the same sentences,
so accent cells differ only in the voice. The Harvard sentences (IEEE 1969) are in the public domain.
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, load_audio

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = (("m3", "male"), ("f5", "female"), ("m7", "male"))  # espeak-ng voice variants, one speaker each
SENTENCES_PER_SPEAKER = 3
# Slower than espeak-ng's 175 words a minute, with 50 ms between words: at the default rate tiny.en misses
# half the words of every accent, which leaves no difference between accents to see.
SPEED_WPM = 130
WORD_GAP = 5  # x 10 ms
GAIN = 0.7  # espeak-ng's output touches full scale; a fixed gain keeps it unclipped without peak normalising
MAX_BYTES = 5 * 1024 * 1024

# Harvard sentences, lists 1 and 2 (IEEE Recommended Practice for Speech Quality Measurements, 1969).
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
)


@dataclass(frozen=True)
class BuiltinUtterance:
    file_name: str  # relative to the set's folder
    text: str
    accent: str  # the espeak-ng voice of the variety (synthetic)
    speaker: str  # accent + variant: one synthetic speaker
    gender: str
    voice: str  # the exact espeak-ng voice argument


def plan() -> list[BuiltinUtterance]:
    """Which voice says which sentence: each accent's speakers share out the same sentences."""
    items = []
    for accent in ACCENTS:
        for v, (variant, gender) in enumerate(VARIANTS):
            for k in range(SENTENCES_PER_SPEAKER):
                n = v * SENTENCES_PER_SPEAKER + k
                speaker = f"{accent}+{variant}"
                voice = f"{'en' if accent == 'en-gb' else accent}+{variant}"  # espeak-ng drops a variant on "en-gb"
                items.append(
                    BuiltinUtterance(
                        file_name=f"audio/{accent}_{variant}_{n:02d}.flac",
                        text=HARVARD[n],
                        accent=accent,
                        speaker=speaker,
                        gender=gender,
                        voice=voice,
                    )
                )
    return items


def synthesize(text: str, voice: str, workdir: Path) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return mono float32 at ``SAMPLE_RATE``."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = workdir / "utterance.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(SPEED_WPM), "-g", str(WORD_GAP), "-w", str(wav), text], check=True
    )
    return load_audio(wav) * GAIN


def espeak_version() -> str:
    """``eSpeak NG 1.51``: the output is deterministic for one version, so the README records it."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split()[:2] + out.split()[3:4]).replace("text-to-speech:", "").strip()


def make_builtin(out_dir: Path = BUILTIN_DIR) -> Path:
    """(Re)build the set in ``out_dir``; fails if it would exceed 5 MB."""
    import soundfile as sf

    out_dir = Path(out_dir)
    items = plan()
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "audio").glob("*.flac"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for item in items:
            audio = synthesize(item.text, item.voice, Path(tmp))
            sf.write(str(out_dir / item.file_name), np.clip(audio, -1, 1), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    with open(out_dir / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file_name", "text", "accent", "speaker", "gender", "voice"])
        for i in items:
            writer.writerow([i.file_name, i.text, i.accent, i.speaker, i.gender, i.voice])
    (out_dir / "README.md").write_text(README + f"\nMade with {espeak_version()}.\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    if size > MAX_BYTES:
        raise RuntimeError(f"the built-in set is {size / 1e6:.1f} MB, over the 5 MB budget; speak fewer sentences")
    logger.info("built-in set: %d utterances, %.2f MB in %s", len(items), size / 1e6, out_dir)
    return out_dir


README = f"""# Built-in sample set (synthetic accents)

{len(ACCENTS)} English accent voices of espeak-ng x {len(VARIANTS)} voice variants x {SENTENCES_PER_SPEAKER} \
Harvard sentences = {len(ACCENTS) * len(VARIANTS) * SENTENCES_PER_SPEAKER} utterances, FLAC 16 kHz mono, \
audiofolder layout (`metadata.csv`: file_name, text, accent, speaker, gender, voice).

**The accents are synthetic.** They are espeak-ng's rule-based renderings of each variety, not recordings of
people: they exercise the validation pipeline and show how a model reacts to accent-like variation, but say
nothing about how it serves real speakers of those accents. Use a real corpus (for example EdAcc) for that.

Every accent speaks the same {len(VARIANTS) * SENTENCES_PER_SPEAKER} sentences (each voice variant a third of
them), so accent cells differ only in the voice. The Harvard sentences (IEEE 1969) are in the public domain.

Regenerate with `python -m evaluation make-builtin` (needs espeak-ng; the output is deterministic for a given
espeak-ng version).
"""
