"""The real-speech set: human voice prompts of Debian's Asterisk sound packages, as an audiofolder dataset.

The built-in set's espeak-ng voices say little about real speech, so this set is made from recordings of real
people that Debian ships: ``asterisk-core-sounds-{en,es,fr,it,ru}-wav`` (one voice per language, 8 kHz
telephone prompts, under ``/usr/share/asterisk/sounds``) and their transcripts, which sit in the text packages
``asterisk-core-sounds-{en,es,fr,it,ru}`` (``core-sounds-XX.txt.gz``, lines ``name: text``). ``scripts/setup.sh``
installs the audio, unpacks the text packages into ``$ASRQA_CACHE/debian`` and runs ``python -m evaluation
make-real``, which writes ``$ASRQA_CACHE/builtin-real`` (default ``~/.cache/asr-qa/builtin-real``): the audio
copied byte for byte, ``metadata.csv`` and the long joined files under ``long/``. Nothing of it is committed.

English is split so that tuning cannot overfit the check: prompts whose names sort after ``dir-nomore`` are the
``dev`` split (tune on these), the earlier ones ``heldout`` (never tuned on). Other languages are all ``dev``.
Prompts without speech (``[tones]``, ``(10 seconds of silence)``), with notes in the text (``Pour (emphase)``,
``at [@]``: the spoken words are unsure) or with an empty text are left out, and counted in the set's README.
The same packages give the same bytes on every build (sorted rows, fixed formats, no dates).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.models import cache_dir

logger = logging.getLogger(__name__)

SOUNDS_DIR = Path("/usr/share/asterisk/sounds")  # where the -wav packages put the voices
DEV_AFTER = "dir-nomore"  # English prompts named after this are the dev split, earlier ones held out
LONG_PROMPT = "basic-pbx-ivr-main"  # the 25 s English prompt ("Thank you for calling Super Awesome Company...")
JOIN_MIN_WORDS = 6  # the joined dev file takes the prompts of at least this many words
JOIN_PAUSE_S = 0.7  # silence between the joined dev prompts
LONG_PAUSE_S = 0.35  # silence between the prompts of the long file (every dev prompt: about 13 minutes)
BUILDER_VERSION = "3"  # part of the build stamp: a change to the builder's output rebuilds the set
COLUMNS = (
    "file_name",
    "id",
    "text",
    "language",
    "voice",
    "accent",
    "speaker",
    "gender",
    "split",
    "prompt",
    "words",
    "duration",
)


@dataclass(frozen=True)
class Voice:
    language: str  # Whisper's language code
    voice: str  # the folder under SOUNDS_DIR
    accent: str  # the variety the speaker speaks
    gender: str
    package: str  # the Debian text package that holds the transcripts


VOICES = (
    Voice("en", "en_US_f_Allison", "en-US", "female", "asterisk-core-sounds-en"),
    Voice("es", "es_MX_f_Allison", "es-MX", "female", "asterisk-core-sounds-es"),
    Voice("fr", "fr_CA_f_June", "fr-CA", "female", "asterisk-core-sounds-fr"),
    Voice("it", "it_IT_m_Carlo", "it-IT", "male", "asterisk-core-sounds-it"),
    Voice("ru", "ru_RU_f_IvrvoiceRU", "ru-RU", "female", "asterisk-core-sounds-ru"),
)
LANGUAGES = tuple(v.language for v in VOICES)


class RealSpeechError(RuntimeError):
    """The Debian packages the set is made from are missing: says what to install."""


@dataclass(frozen=True)
class Prompt:
    voice: Voice
    name: str  # the prompt's name in the package, e.g. "vm-intro" or "followme/options"
    text: str
    source: Path  # the WAV under SOUNDS_DIR
    frames: int
    sample_rate: int

    @property
    def id(self) -> str:
        return f"{self.voice.language}/{self.name}"

    @property
    def file_name(self) -> str:
        return f"audio/{self.voice.language}/{self.name}.wav"

    @property
    def split(self) -> str:
        return "dev" if self.voice.language != "en" or self.name > DEV_AFTER else "heldout"

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def real_dir() -> Path:
    """Where the set is built: ``$ASRQA_CACHE/builtin-real`` (default ``~/.cache/asr-qa/builtin-real``)."""
    return cache_dir() / "builtin-real"


def texts_dir() -> Path:
    """Where setup unpacks the text packages (``dpkg -x``): ``$ASRQA_CACHE/debian``."""
    return cache_dir() / "debian"


def texts_file(voice: Voice, texts_root: Path) -> Path:
    lang = voice.package.rsplit("-", 1)[1]
    return texts_root / "usr/share/doc" / voice.package / f"core-sounds-{lang}.txt.gz"


def parse_texts(path: Path) -> list[tuple[str, str]]:
    """``name: text`` lines of a ``core-sounds-XX.txt.gz`` (``;`` lines are comments), in file order."""
    entries = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, _, text = line.partition(":")
            entries.append((name.strip(), " ".join(text.split())))
    return entries


NOTE_MARKS = re.compile(r"[\[\]()<>{}]")  # [tones], (silence), <beep>, (notes): not what is said
SYMBOLS = re.compile(r"[*#@]")  # said as "star", "pound", "at" or not at all: the reference would be unsure
WHOLLY_MARKED = re.compile(r"[\[(<].*[\])>]")  # an English text that is only a description: no speech there


def exclusion(text: str) -> str | None:
    """Why a prompt's text is not a usable reference, or None when it is."""
    if not text:
        return "empty text"
    if NOTE_MARKS.search(text):
        return "tone, silence or a note in the text"
    if SYMBOLS.search(text):
        return "a symbol whose spoken form is unsure"
    if not re.search(r"\w", text):
        return "no words"
    return None


def non_speech(texts_root: Path) -> set[str]:
    """Prompts that are tones or silence in every language: their English text only describes a sound.

    Other languages' texts sometimes describe the same tone in words ("un suono beep"), so English decides.
    """
    english = texts_file(VOICES[0], texts_root)
    return (
        {name for name, text in parse_texts(english) if WHOLLY_MARKED.fullmatch(text)} if english.is_file() else set()
    )


def _texts(path: Path) -> dict[str, str]:
    """A package's texts by prompt name, a name repeated at the start of its own text removed (one Russian line)."""
    return {name: text.removeprefix(f"{name}:").strip() for name, text in parse_texts(path)}


def plan(sounds_root: Path = SOUNDS_DIR, texts_root: Path | None = None) -> tuple[list[Prompt], Counter]:
    """Every usable prompt of every voice, sorted by id, and the count of those left out by reason."""
    import soundfile as sf

    texts_root = texts_dir() if texts_root is None else Path(texts_root)
    prompts, left_out = [], Counter()
    tones = non_speech(texts_root)
    for voice in VOICES:
        folder, texts = Path(sounds_root) / voice.voice, texts_file(voice, texts_root)
        if not folder.is_dir():
            raise RealSpeechError(f"no voice folder {folder}: install {voice.package}-wav (scripts/setup.sh does)")
        if not texts.is_file():
            raise RealSpeechError(
                f"no transcripts {texts}: unpack the package {voice.package} there (scripts/setup.sh does: "
                f"apt-get download {voice.package} && dpkg -x {voice.package}_*.deb {texts_root})"
            )
        for name, text in _texts(texts).items():
            reason = "a tone or silence (English text)" if name in tones else exclusion(text)
            wav = folder / f"{name}.wav"
            if reason is None and not wav.is_file():
                reason = "no audio file"
            if reason is None:
                info = sf.info(str(wav))
                if info.channels != 1 or info.frames == 0:
                    reason = "not mono audio"
                else:
                    prompts.append(Prompt(voice, name, text, wav, info.frames, info.samplerate))
                    continue
            left_out[f"{voice.language}: {reason}"] += 1
    return sorted(prompts, key=lambda p: p.id), left_out


def select(prompts: list[Prompt], language: str, split: str = "dev", min_words: int = 0) -> list[Prompt]:
    """The prompts of one language and split with at least ``min_words`` words, in id order."""
    return [p for p in prompts if p.voice.language == language and p.split == split and p.words >= min_words]


def join(prompts: list[Prompt], pause_s: float) -> tuple[np.ndarray, int, str]:
    """The prompts one after another with ``pause_s`` of digital silence between: int16 samples, rate, reference."""
    import soundfile as sf

    rates = {p.sample_rate for p in prompts}
    if len(rates) != 1:
        raise RealSpeechError(f"cannot join prompts of different sample rates {sorted(rates)}")
    rate = rates.pop()
    gap = np.zeros(int(round(pause_s * rate)), dtype=np.int16)
    parts = []
    for i, p in enumerate(prompts):
        if i:
            parts.append(gap)
        parts.append(sf.read(str(p.source), dtype="int16", always_2d=False)[0])
    return np.concatenate(parts), rate, " ".join(p.text for p in prompts)


LONG_FILES = {  # name -> (what, split, prompts of at least this many words, pause)
    "en-dev-joined": ("English dev prompts of 6+ words", "dev", JOIN_MIN_WORDS, JOIN_PAUSE_S),
    "en-dev-long": ("every English dev prompt", "dev", 0, LONG_PAUSE_S),
    # The same recipes over the held-out prompts: a check that a decoding change chosen on the dev files holds on
    # speech nobody tuned on. Built here so every check runs on the same bytes (earlier sessions' copies were
    # made by hand and their figures drifted by a few errors between copies).
    "en-heldout-joined": (
        "English held-out prompts of 6+ words (a check, never tuned on)",
        "heldout",
        JOIN_MIN_WORDS,
        JOIN_PAUSE_S,
    ),
    "en-heldout-long": ("every English held-out prompt (a check, never tuned on)", "heldout", 0, LONG_PAUSE_S),
}
DEV_LONG_FILES = tuple(name for name, (_, split, _, _) in LONG_FILES.items() if split == "dev")


def _stamp(prompts: list[Prompt]) -> str:
    """A digest of everything the output depends on: builder version, texts, source file names and sizes."""
    h = hashlib.sha256(BUILDER_VERSION.encode())
    for p in prompts:
        h.update(f"{p.id}\t{p.text}\t{p.source}\t{p.source.stat().st_size}\n".encode())
    return h.hexdigest()


def make_real(
    out_dir: Path | None = None, sounds_root: Path = SOUNDS_DIR, texts_root: Path | None = None, force: bool = False
) -> Path:
    """Build the set in ``out_dir`` (default :func:`real_dir`); a no-op when an identical build is there.

    Written to a sibling folder first and swapped in at the end, so an interrupted build never leaves half a
    dataset where the runner looks.
    """
    out_dir = real_dir() if out_dir is None else Path(out_dir)
    prompts, left_out = plan(sounds_root, texts_root)
    stamp = _stamp(prompts)
    stamp_file = out_dir / ".stamp"
    if not force and stamp_file.is_file() and stamp_file.read_text() == stamp:
        logger.info("real-speech set up to date in %s", out_dir)
        return out_dir
    tmp = out_dir.with_name(f"{out_dir.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "long").mkdir(parents=True)
    for p in prompts:
        target = tmp / p.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p.source, target)
    _write_metadata(tmp / "metadata.csv", prompts)
    long_rows = _write_long_files(tmp / "long", prompts)
    (tmp / "README.md").write_text(_readme(prompts, left_out, long_rows), encoding="utf-8")
    (tmp / ".stamp").write_text(stamp)
    old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("real-speech set: %d prompts in %s", len(prompts), out_dir)
    return out_dir


def _write_metadata(path: Path, prompts: list[Prompt]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for p in prompts:
            v = p.voice
            writer.writerow(
                [
                    p.file_name,
                    p.id,
                    p.text,
                    v.language,
                    v.voice,
                    v.accent,
                    v.voice,
                    v.gender,
                    p.split,
                    p.name,
                    p.words,
                    f"{p.duration:.3f}",
                ]
            )


def _write_long_files(folder: Path, prompts: list[Prompt]) -> list[list[str]]:
    """``long/NAME.wav`` + ``NAME.txt`` (the reference) for each of LONG_FILES, and their ``metadata.csv``."""
    import soundfile as sf

    rows = []
    for name, (what, split, min_words, pause) in LONG_FILES.items():
        chosen = select(prompts, "en", split, min_words)
        if not chosen:  # a partial install (or a test's few prompts) may have no prompt for this recipe
            continue
        audio, rate, reference = join(chosen, pause)
        sf.write(str(folder / f"{name}.wav"), audio, rate, subtype="PCM_16")
        (folder / f"{name}.txt").write_text(reference + "\n", encoding="utf-8")
        rows.append(
            [
                f"{name}.wav",
                name,
                reference,
                "en",
                "en-US",
                split,
                str(len(chosen)),
                f"{pause:g}",
                f"{audio.size / rate:.3f}",
                what,
            ]
        )
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["file_name", "id", "text", "language", "accent", "split", "prompts", "pause_s", "duration", "made_of"]
        )
        writer.writerows(rows)
    return rows


def _readme(prompts: list[Prompt], left_out: Counter, long_rows: list[list[str]]) -> str:
    counts = Counter((p.voice.language, p.split) for p in prompts)
    minutes = Counter()
    for p in prompts:
        minutes[p.voice.language] += p.duration / 60
    lines = [
        "# Real-speech set (Debian's Asterisk voice prompts)",
        "",
        "Made by `python -m evaluation make-real` from Debian packages; not to be committed. Recordings of real",
        "people, one voice per language, 8 kHz telephone prompts (copied unchanged), audiofolder layout",
        f"(`metadata.csv`: {', '.join(COLUMNS)}).",
        "",
        "| language | voice | accent | dev | heldout | minutes |",
        "|---|---|---|---|---|---|",
    ]
    for v in VOICES:
        lines.append(
            f"| {v.language} | {v.voice} | {v.accent} | {counts[(v.language, 'dev')]} | "
            f"{counts[(v.language, 'heldout')]} | {minutes[v.language]:.1f} |"
        )
    lines += [
        "",
        "Left out: " + "; ".join(f"{k} {n}" for k, n in sorted(left_out.items())) + ".",
        "",
        "Long files in `long/` (reference in NAME.txt):",
    ]
    lines += [f"- `{r[0]}`: {r[9]}, {r[6]} prompts, {r[7]} s pauses, {float(r[8]) / 60:.1f} min" for r in long_rows]
    lines += ["", ATTRIBUTION]
    return "\n".join(lines) + "\n"


ATTRIBUTION = """## Attribution and licence

From the Asterisk core sound prompts (https://downloads.asterisk.org/pub/telephony/sounds/), as packaged by
Debian (asterisk-core-sounds-*, see /usr/share/doc/asterisk-core-sounds-*-wav/copyright):
- English (en_US_f_Allison) and Spanish (es_MX_f_Allison): recorded by Allison Smith (theivrvoice.com),
  financed by Digium, Inc.; CC BY-SA 3.0.
- French (fr_CA_f_June): recorded by June Wallack, translated by Clod Patry, Kristopher Lalletti and June
  Wallack; CC BY-SA 3.0.
- Italian (it_IT_m_Carlo): recorded by Carlo Flora, translated by Silvia Petrin; CC BY 3.0.
- Russian (ru_RU_f_IvrvoiceRU): provided by Maxim Topal (ivrvoice.ru); CC BY 3.0.

Changes: none to the recordings; prompts selected and listed with their transcripts; the files in `long/` join
prompts with silence between them. CC BY-SA 3.0: https://creativecommons.org/licenses/by-sa/3.0/ ;
CC BY 3.0: https://creativecommons.org/licenses/by/3.0/
"""
