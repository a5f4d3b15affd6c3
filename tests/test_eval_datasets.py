"""Dataset loading offline: the built-in set, save_to_disk folders (folder and hub-style loaders), audiofolders,
manifests, recorded test cases, and bad datasets (missing columns, empty references, undecodable audio)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from evaluation.builtin import ACCENTS, BUILTIN_DIR, VARIANTS
from evaluation.datasets import DatasetError, DatasetOptions, load_dataset
from evaluation.store import Store
from tests.conftest import HARVARD, speak

REAL_PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")  # Debian's Asterisk prompts (scripts/setup.sh)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("dswav")
    voices = ["en-us", "en-gb-scotland", "en-029", "en-gb"]
    return [speak(HARVARD[i], folder / f"s{i}.wav", v) for i, v in enumerate(voices)]


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory, wavs) -> Path:
    """A datasets folder (save_to_disk) with its own column names, as a copy of a hub dataset would be."""
    from datasets import Audio, Dataset, DatasetDict

    data = {
        "clip": [{"bytes": w.read_bytes(), "path": w.name} for w in wavs],
        "sentence_text": HARVARD[:4],
        "region": ["us", "scotland", "caribbean", "england"],
        "talker": ["t1", "t2", "t3", "t1"],
    }
    ds = Dataset.from_dict(data).cast_column("clip", Audio(sampling_rate=SAMPLE_RATE))
    out = tmp_path_factory.mktemp("saved") / "copy"
    DatasetDict({"train": ds.select([0]), "test": ds}).save_to_disk(str(out))
    return out


def test_builtin_set_is_complete_and_small():
    size = sum(p.stat().st_size for p in BUILTIN_DIR.rglob("*") if p.is_file())
    assert size <= 5 * 1024 * 1024
    assert "synthetic" in (BUILTIN_DIR / "README.md").read_text()
    data = load_dataset(DatasetOptions("builtin"))
    assert len(data.samples) == len(ACCENTS) * len(VARIANTS) * 3
    assert data.group_columns == ("accent",) and data.speaker_column == "speaker" and not data.skipped
    assert {s.groups["accent"] for s in data.samples} == set(ACCENTS)
    assert len({s.speaker for s in data.samples}) == len(ACCENTS) * len(VARIANTS)
    assert all(s.audio.dtype == np.float32 and 1.0 < s.seconds < 8.0 for s in data.samples)
    assert len({s.id for s in data.samples}) == len(data.samples)


def test_builtin_limit_spreads_over_accents():
    data = load_dataset(DatasetOptions("builtin", limit=7))
    assert len(data.samples) == 7 and {s.groups["accent"] for s in data.samples} == set(ACCENTS)
    assert [s.id for s in data.samples] == [s.id for s in load_dataset(DatasetOptions("builtin", limit=7)).samples]


@pytest.mark.parametrize("prefix", ["", "hub:"])
def test_saved_dataset_with_custom_columns(saved_dataset, prefix):
    options = DatasetOptions(
        f"{prefix}{saved_dataset}", text_column="sentence_text", group_columns=("region",), speaker_column="talker"
    )
    data = load_dataset(options)
    assert [s.text for s in data.samples] == HARVARD[:4]  # the test split, chosen by default
    assert [s.groups["region"] for s in data.samples] == ["us", "scotland", "caribbean", "england"]
    assert [s.speaker for s in data.samples] == ["t1", "t2", "t3", "t1"]
    assert data.audio_column == "clip"
    assert all(s.audio.size > SAMPLE_RATE for s in data.samples)
    train = load_dataset(DatasetOptions(f"{prefix}{saved_dataset}", text_column="sentence_text", split="train"))
    assert len(train.samples) == 1
    with pytest.raises(DatasetError, match="no text column"):
        load_dataset(DatasetOptions(f"{prefix}{saved_dataset}"))
    with pytest.raises(DatasetError, match="no group column 'accent'.*sentence_text"):
        load_dataset(DatasetOptions(f"{prefix}{saved_dataset}", text_column="sentence_text", group_columns=("accent",)))


def test_hub_stream_limit(saved_dataset):
    data = load_dataset(DatasetOptions(f"hub:{saved_dataset}::test", text_column="sentence_text", limit=2))
    assert len(data.samples) == 2 and data.rows_read == 2


def test_min_words_spreads_the_limit_over_sentences_only(tmp_path, wavs):
    """A set full of one-word prompts (the real-speech set) gives a sample of sentences with ``min_words``."""
    short = ["Yes.", "No thanks.", "Okay.", "Right."]
    texts = [short[0], short[1], HARVARD[0], short[2], HARVARD[1], short[3], HARVARD[2], HARVARD[3]]
    rows = [{"file_name": wavs[i % 4].name, "text": t} for i, t in enumerate(texts)]
    folder = _audiofolder(tmp_path / "mixed", wavs, rows)
    spread = load_dataset(DatasetOptions(str(folder), limit=2))
    assert [s.text for s in spread.samples] == [short[0], HARVARD[3]]  # the first and last rows: unchanged
    sample = load_dataset(DatasetOptions(str(folder), limit=2, min_words=3))
    assert [s.text for s in sample.samples] == [HARVARD[0], HARVARD[3]]  # first and last of the sentences
    assert [s.row for s in sample.samples] == [2, 7] and sample.rows_read == 2 and not sample.skipped
    every = load_dataset(DatasetOptions(str(folder), min_words=2))
    assert [s.text for s in every.samples] == [short[1], *HARVARD[:4]]
    assert [s.id for s in load_dataset(DatasetOptions(str(folder), limit=2, min_words=3)).samples] == [
        s.id for s in sample.samples
    ]
    with pytest.raises(DatasetError, match="no row has 50\\+ words in 'text'"):
        load_dataset(DatasetOptions(str(folder), min_words=50))
    with pytest.raises(DatasetError, match="min_words must be an integer >= 0, not -1"):
        load_dataset(DatasetOptions(str(folder), min_words=-1))


def test_min_words_on_a_stream_keeps_the_first_long_rows(saved_dataset):
    spec = f"hub:{saved_dataset}::test"
    data = load_dataset(DatasetOptions(spec, text_column="sentence_text", limit=2, min_words=9))
    assert [s.text for s in data.samples] == [h for h in HARVARD[:4] if len(h.split()) >= 9][:2]


def _audiofolder(folder: Path, wavs: list[Path], rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for w in wavs:
        (folder / w.name).write_bytes(w.read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_bad_rows_are_counted_with_row_and_column(tmp_path, wavs):
    rows = [
        {"file_name": "s0.wav", "text": HARVARD[0], "Accents": "us"},
        {"file_name": "s1.wav", "text": "   ", "Accents": "scottish"},
        {"file_name": "broken.wav", "text": HARVARD[2], "Accents": "caribbean"},
        {"file_name": "missing.wav", "text": HARVARD[3], "Accents": ""},
        {"file_name": "s3.wav", "text": HARVARD[3], "Accents": ""},
    ]
    folder = _audiofolder(tmp_path / "af", wavs, rows)
    data = load_dataset(DatasetOptions(str(folder)))
    assert data.group_columns == ("Accents",)  # recognised without being named
    assert [s.id for s in data.samples] == ["s0", "s3"]
    assert data.samples[1].groups["Accents"] == "(none)"
    assert data.rows_read == 5 and len(data.skipped) == 3
    messages = [s.message(data.name) for s in data.skipped]
    assert messages[0] == f"{folder}: row 1, column 'text': the reference text is empty"
    assert (
        messages[1].startswith(f"{folder}: row 2, column 'file_name': undecodable audio")
        and "broken.wav" in messages[1]
    )
    assert messages[2] == f"{folder}: row 3, column 'file_name': missing audio file {folder / 'missing.wav'}"


def test_unusable_datasets_raise_one_clear_error(tmp_path, wavs):
    folder = _audiofolder(tmp_path / "bad", wavs, [{"file_name": "broken.wav", "text": "hello"}])
    with pytest.raises(DatasetError, match=r"no usable rows out of 1 .*row 0, column 'file_name'"):
        load_dataset(DatasetOptions(str(folder)))
    nocol = _audiofolder(tmp_path / "nocol", wavs, [{"file_name": "s0.wav", "words": "hello"}])
    with pytest.raises(DatasetError, match=r"no text column .*columns: file_name, words.*--text-column"):
        load_dataset(DatasetOptions(str(nocol)))
    noaudio = _audiofolder(tmp_path / "noaudio", wavs, [{"clipname": "s0.wav", "text": "hello"}])
    with pytest.raises(DatasetError, match="no audio column"):
        load_dataset(DatasetOptions(str(noaudio)))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(DatasetOptions(str(tmp_path / "nothing-here")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="neither metadata.csv"):
        load_dataset(DatasetOptions(str(tmp_path / "empty")))


def test_a_header_only_manifest_and_a_folder_of_audio_alone_say_what_they_lack(tmp_path):
    """They said "no usable rows out of 0" and "neither metadata.csv nor metadata.tsv (audiofolder) nor a dataset
    saved with save_to_disk", which told a tester with a folder of recordings nothing about what to add."""
    (tmp_path / "header").mkdir()
    (tmp_path / "header" / "metadata.csv").write_text("file_name,text\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(DatasetOptions(str(tmp_path / "header")))
    assert str(caught.value) == f"dataset {tmp_path / 'header'}: it has no rows (columns: file_name, text)"
    if not (REAL_PROMPTS / "added.wav").is_file():
        pytest.skip(f"{REAL_PROMPTS} is missing (scripts/setup.sh installs asterisk-core-sounds-en-wav)")
    recordings = tmp_path / "recordings"
    (recordings / "day1").mkdir(parents=True)
    for name in ("activated.wav", "added.wav"):
        (recordings / "day1" / name).write_bytes((REAL_PROMPTS / name).read_bytes())
    with pytest.raises(DatasetError) as caught:
        load_dataset(DatasetOptions(str(recordings)))
    assert str(caught.value) == (
        f"dataset {recordings}: it has 2 audio file(s) but no metadata.csv with file_name and text columns "
        "(the reference for each file); see README, Validation"
    )


def test_nemo_manifest_and_jsonl(tmp_path, wavs):
    manifest = tmp_path / "manifest.json"
    lines = [{"audio_filepath": str(w), "text": HARVARD[i].lower(), "duration": 3.0} for i, w in enumerate(wavs)]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = load_dataset(DatasetOptions(str(manifest)))
    assert data.audio_column == "audio_filepath" and len(data.samples) == 4 and data.group_columns == ()


def test_hub_errors_are_explained(tmp_path):
    script = tmp_path / "myset"
    script.mkdir()
    (script / "myset.py").write_text("import datasets\n")
    with pytest.raises(DatasetError, match=r"loading script \(myset.py\).*datasets 4\+ no longer runs"):
        load_dataset(DatasetOptions(f"hub:{script}"))
    with pytest.raises(DatasetError, match="hub:ID"):
        load_dataset(DatasetOptions("hub:"))
    with pytest.raises(DatasetError, match=r"edacc is not in the datasets cache \(.*HF_HUB_OFFLINE=1\) forbids"):
        load_dataset(DatasetOptions("hub:edinburghcstr/edacc"))  # HF_HUB_OFFLINE=1 in tests


def test_hub_parquet_stream(tmp_path, wavs):
    """A Parquet dataset (the hub's usual layout) through datasets.load_dataset(streaming=True), offline."""
    from datasets import Audio, Dataset

    rows = {
        "audio": [{"bytes": w.read_bytes(), "path": w.name} for w in wavs],
        "transcription": HARVARD[:4],
        "l1": ["en", "gd", "en", "en"],
        "client_id": ["a", "b", "c", "a"],
    }
    folder = tmp_path / "hubcopy"
    (folder / "data").mkdir(parents=True)
    Dataset.from_dict(rows).cast_column("audio", Audio()).to_parquet(
        str(folder / "data" / "test-00000-of-00001.parquet")
    )
    data = load_dataset(DatasetOptions(f"hub:{folder}", limit=3))
    assert data.text_column == "transcription" and data.group_columns == ("l1",) and data.speaker_column == "client_id"
    assert [s.text for s in data.samples] == HARVARD[:3] and data.rows_read == 3


def test_hub_audio_files_without_torchcodec_are_explained(tmp_path, wavs):
    try:
        import torchcodec  # noqa: F401

        pytest.skip("torchcodec is installed: audio files stream without it being needed")
    except ImportError:
        pass
    folder = _audiofolder(tmp_path / "streamed", wavs[:1], [{"file_name": "s0.wav", "text": HARVARD[0]}])
    (folder / "broken.wav").unlink()
    with pytest.raises(DatasetError, match="torchcodec.*pass the folder"):
        load_dataset(DatasetOptions(f"hub:{folder}"))
    assert len(load_dataset(DatasetOptions(str(folder))).samples) == 1


def test_recorded_cases_are_a_dataset(tmp_path, wavs):
    store = Store(tmp_path / "data")
    with pytest.raises(DatasetError, match="no test cases"):
        load_dataset(DatasetOptions("recorded"), store)
    audio = load_audio(wavs[0])
    store.add_case("test_case", audio, transcript="the merch", reference=HARVARD[0], labels={"accent": "en-us"})
    store.add_case("flag", audio, transcript="x", reference="", reason="no correction")
    store.add_case("flag", audio, transcript="x", reference=HARVARD[0], labels={"device": "phone"})
    data = load_dataset(DatasetOptions("recorded"), store)
    assert len(data.samples) == 2 and data.group_columns == ("accent",)
    assert sorted(s.groups["accent"] for s in data.samples) == ["(none)", "en-us"]


def test_builtin_set_regenerates_identically(tmp_path):
    """The committed FLACs are what make-builtin speaks (checked on one utterance per accent)."""
    from evaluation.builtin import espeak_version, plan, synthesize

    if espeak_version() not in (BUILTIN_DIR / "README.md").read_text():
        pytest.skip("another espeak-ng version: its voices differ slightly")
    for item in plan()[:: len(VARIANTS) * 3]:
        spoken = synthesize(item.text, item.voice, tmp_path)
        committed = load_audio(BUILTIN_DIR / item.file_name)
        assert committed.size == spoken.size
        assert np.max(np.abs(committed - np.clip(spoken, -1, 1))) < 2 / 32768


def test_loud_float_audio_is_noted_on_its_sample_whoever_reads_it(tmp_path, wavs):
    """The driver (eager) and a worker (read_audio on a planned row) note the same rescale on the same sample:
    results.csv's audio_note comes from here."""
    import io

    import datasets
    import soundfile as sf

    from evaluation.datasets import read_audio

    speech = load_audio(wavs[0])
    loud = io.BytesIO()
    sf.write(loud, speech * (3.0 / np.abs(speech).max()), SAMPLE_RATE, format="WAV", subtype="FLOAT")
    audio = [{"bytes": wavs[0].read_bytes(), "path": "s0.wav"}, {"bytes": loud.getvalue(), "path": "loud.wav"}]
    data = datasets.Dataset.from_dict({"audio": audio, "text": HARVARD[:2]})
    (tmp_path / "hub" / "data").mkdir(parents=True)
    data.cast_column("audio", datasets.Audio(decode=False)).to_parquet(
        str(tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    )
    options = DatasetOptions(f"hub:{tmp_path / 'hub'}")
    eager = load_dataset(options)
    planned = load_dataset(options, defer_audio=True)
    assert all(s.audio is None for s in planned.samples)
    read, skipped = read_audio(planned.samples)
    expected = ["", "float samples exceed 1.0 (peak 3); peak-normalised to 1.0"]
    assert [s.audio_note for s in eager.samples] == [s.audio_note for s in read] == expected and not skipped


def test_a_row_with_more_fields_than_the_header_is_one_line_naming_it(tmp_path, wavs):
    """A reference with an unquoted comma: in one row it was a TypeError traceback (pandas took the first columns
    as a row index of tuples); in every row the file names silently became the references, shifted one column."""
    folder = tmp_path / "commas"
    folder.mkdir()
    (folder / "s0.wav").write_bytes(wavs[0].read_bytes())
    (folder / "s1.wav").write_bytes(wavs[1].read_bytes())
    one = "file_name,text\ns0.wav,The birch canoe\ns1.wav,Glue the sheet, to the dark blue background\n"
    every = "file_name,text\ns0.wav,The birch, canoe\ns1.wav,Glue the sheet, to the dark blue background\n"
    for content, line in ((one, 3), (every, 2)):
        (folder / "metadata.csv").write_text(content)
        with pytest.raises(DatasetError) as caught:
            load_dataset(DatasetOptions(str(folder)))
        assert str(caught.value) == (
            f"dataset {folder / 'metadata.csv'}: line {line} has 3 fields but the header has 2 (file_name, text); "
            'quote a value that holds a comma ("a, b")'
        )
    tsv = tmp_path / "manifest.tsv"
    tsv.write_text(f"audio\ttext\n{folder / 's0.wav'}\tThe birch\tcanoe\n")
    with pytest.raises(DatasetError, match=r"line 2 has 3 fields but the header has 2 \(audio, text\); quote a "):
        load_dataset(DatasetOptions(str(tsv)))
    (folder / "metadata.csv").write_text('file_name,text\ns0.wav,"The birch, canoe"\n')  # quoted: read as one
    assert [s.text for s in load_dataset(DatasetOptions(str(folder))).samples] == ["The birch, canoe"]


def test_a_reference_of_punctuation_alone_is_skipped_as_having_no_words(tmp_path, wavs):
    """A reference of '...' or '[noise]' normalizes to no words: it was scored, and its hypothesis's words, all
    insertions against no reference word, went into the pooled WER (a two-row run read 400%: 4 errors / 1 word)."""
    rows = [
        {"file_name": "s0.wav", "text": HARVARD[0]},
        {"file_name": "s1.wav", "text": "..."},
        {"file_name": "s2.wav", "text": "[noise] ?!"},
        {"file_name": "s3.wav", "text": "Two."},
    ]
    folder = _audiofolder(tmp_path / "punct", wavs, rows)
    data = load_dataset(DatasetOptions(str(folder)))
    assert [s.text for s in data.samples] == [HARVARD[0], "Two."]
    assert [s.message(data.name) for s in data.skipped] == [
        f"{folder}: row 1, column 'text': the reference '...' has no words to score",
        f"{folder}: row 2, column 'text': the reference '[noise] ?!' has no words to score",
    ]
    only = _audiofolder(tmp_path / "only", wavs, [{"file_name": "s1.wav", "text": "?"}])
    with pytest.raises(DatasetError, match=r"no usable rows out of 1 .*'\?' has no words to score"):
        load_dataset(DatasetOptions(str(only)))
    assert load_dataset(DatasetOptions("probes", limit=2)).samples  # non-speech probes keep their empty references


def test_a_row_naming_a_url_that_cannot_be_read_is_skipped(tmp_path, wavs):
    """An http:// row without fsspec's HTTP extras (requests, aiohttp) was an ImportError traceback that stopped the
    run, and an unknown scheme a ValueError one; such a row is skipped, naming its URL, and the others are scored."""
    rows = [
        {"file_name": "s0.wav", "text": HARVARD[0]},
        {"file_name": "http://127.0.0.1:9/take.wav", "text": HARVARD[1]},
        {"file_name": "nosuch://host/take.wav", "text": HARVARD[2]},
    ]
    folder = _audiofolder(tmp_path / "urls", wavs, rows)
    data = load_dataset(DatasetOptions(str(folder)))
    assert [s.id for s in data.samples] == ["s0"] and [s.row for s in data.skipped] == [1, 2]
    for skip, url in zip(data.skipped, ("http://127.0.0.1:9/take.wav", "nosuch://host/take.wav"), strict=True):
        assert skip.reason.startswith(f"undecodable audio: cannot read {url}") and "\n" not in skip.reason, skip


def test_a_manifest_that_is_not_utf8_says_so_and_where(tmp_path, wavs):
    """A Latin-1 metadata.csv said "cannot read the manifest ('utf-8' codec can't decode byte 0xe9 in position 25:
    invalid continuation byte)", Python's words; it now says what to do, as the Record page's script upload does."""
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / "s0.wav").write_bytes(wavs[0].read_bytes())
    (folder / "metadata.csv").write_bytes("file_name,text\ns0.wav,Caf\u00e9 au lait.\n".encode("latin-1"))
    with pytest.raises(DatasetError) as caught:
        load_dataset(DatasetOptions(str(folder)))
    assert str(caught.value) == (
        f"dataset {folder / 'metadata.csv'}: not UTF-8 text (byte 26); save the manifest as UTF-8 (CSV UTF-8 in a "
        "spreadsheet's Save as)"
    )
