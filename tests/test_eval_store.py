"""The SQLite store on a real file: WAL, concurrent writers, audio before row, restart, runs and export."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from evaluation.cases import EXPORT_COLUMNS
from evaluation.export import export_cases
from evaluation.store import STATUSES, CaseNotFound, RunNotFound, RunSettings, Store, StoreError


def tone(seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture()
def store(tmp_path) -> Store:
    return Store(tmp_path / "data")


def test_creates_database_in_wal_mode(store, tmp_path):
    assert (tmp_path / "data" / "asrqa.sqlite").exists()
    assert (tmp_path / "data" / "audio").is_dir()
    assert store.journal_mode() == "wal"
    with sqlite3.connect(tmp_path / "data" / "asrqa.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_case_keeps_audio_and_fields(store):
    audio = tone(1.25)
    case = store.add_case(
        "flag", audio, transcript="the cat", reference="the hat", reason="wrong word", labels={"accent": "en-gb"}
    )
    assert case.kind == "flag" and case.status == "new" and case.reason == "wrong word"
    assert Path(case.audio_path).is_absolute() and Path(case.audio_path).parent == store.audio_dir
    assert case.duration == pytest.approx(1.25)
    back = load_audio(case.audio_path)
    assert back.size == audio.size and np.max(np.abs(back - audio)) < 1e-3
    assert store.get_case(case.id) == case
    assert case.created_at.endswith("+00:00")


def test_audio_file_exists_before_row_is_written(store, monkeypatch):
    seen = []
    original = Store.insert_case

    def checking_insert(self, conn, case):
        seen.append(Path(case.audio_path).exists())
        with sqlite3.connect(self.db_path) as other:
            seen.append(other.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
        return original(self, conn, case)

    monkeypatch.setattr(Store, "insert_case", checking_insert)
    store.add_case("test_case", tone(), transcript="a", reference="a")
    assert seen == [True, 0]


def test_failed_row_write_leaves_no_audio_and_failed_audio_leaves_no_row(store, monkeypatch):
    def broken_insert(self, conn, case):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "insert_case", broken_insert)
    with pytest.raises(sqlite3.OperationalError):
        store.add_case("test_case", tone(), transcript="a", reference="a")
    monkeypatch.undo()
    assert list(store.audio_dir.iterdir()) == []

    import evaluation.store as store_module

    def broken_write(path, audio, sample_rate=SAMPLE_RATE):
        Path(path).write_bytes(b"RIFF")
        raise OSError("No space left on device")

    monkeypatch.setattr(store_module, "write_wav", broken_write)
    with pytest.raises(OSError):
        store.add_case("test_case", tone(), transcript="a", reference="a")
    assert store.list_cases() == []
    assert list(store.audio_dir.iterdir()) == []


def test_two_writers_in_two_threads_lose_nothing(tmp_path):
    data = tmp_path / "data"
    Store(data)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(name: str) -> None:
        own = Store(data)  # each tester's request may come with its own store object
        barrier.wait()
        try:
            for i in range(15):
                own.add_case("test_case", tone(0.2), transcript=f"{name} {i}", reference=f"{name} {i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cases = Store(data).list_cases()
    assert len(cases) == 30
    assert {c.transcript for c in cases} == {f"{n} {i}" for n in ("alice", "bob") for i in range(15)}
    assert all(Path(c.audio_path).exists() for c in cases)


def test_one_take_saved_from_many_threads_at_once_is_one_case_of_each_kind(tmp_path):
    """Flag and Save (Transcribe), or one pressed in quick succession, each kept their case's id in the tab; pressed at
    once, each picked "no case yet" and the last one back overwrote the other's id, so the next press added a copy.
    The store finds a take's case by its origin inside the write transaction, so no order of presses makes two."""
    data = tmp_path / "data"
    Store(data)
    barrier = threading.Barrier(6)
    saved, errors = [], []

    def press(kind: str, n: int) -> None:
        own = Store(data)  # as each request of the page opens its own
        barrier.wait()
        try:
            saved.append(own.save_take(kind, tone(0.2), origin="take-1", transcript="a test", reference=f"fix {n}"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=press, args=(k, n)) for k in ("flag", "test_case") for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cases = Store(data).list_cases()
    assert sorted(c.kind for c in cases) == ["flag", "test_case"]
    assert sorted(s.added for s in saved) == [False] * 4 + [True] * 2  # one added per kind, the others updated it
    assert {s.case.id for s in saved} == {c.id for c in cases}
    assert sorted(p.name for p in (data / "audio").iterdir()) == sorted(Path(c.audio_path).name for c in cases)
    again = Store(data).save_take("flag", tone(0.2), origin="take-1", transcript="a test", reference="final")
    assert not again.added and Store(data).get_case(again.case.id).reference == "final"
    Store(data).delete_case(again.case.id)  # deleted on Review: the next press saves the take anew
    assert Store(data).save_take("flag", tone(0.2), origin="take-1", transcript="a test", reference="x").added


def test_a_take_saved_again_keeps_what_a_reviewer_changed_and_says_so(tmp_path):
    """Flag (or Save) pressed again on a take wrote every field the page had: a reference a reviewer had corrected
    on Review went back to the tester's text, and the labels the reviewer added went with it, unsaid."""
    data = tmp_path / "data"
    take = {"transcript": "helo world", "reason": "wrong words"}
    form = {"accent": "Scottish", "noise": "", "device": ""}  # the Save form sends its three boxes, empty or not
    first = Store(data).save_take("test_case", tone(0.2), origin="t", reference="hello world", labels=form, **take)
    opened = Store(data).get_case(first.case.id)
    Store(data).update_case(  # the reviewer, on Review
        opened.id,
        reference="hello, world",
        labels={"accent": "Scottish", "device": "headset", "speaker": "s7"},
        opened=opened,
    )
    again = Store(data).save_take("test_case", tone(0.2), origin="t", reference="hello world", labels=form, **take)
    case = Store(data).get_case(first.case.id)
    assert not again.added and again.kept == ("reference", "label device")  # what the page shows that is not stored
    assert (case.reference, case.labels) == (
        "hello, world",
        {"accent": "Scottish", "device": "headset", "speaker": "s7"},
    )
    # what the tester changes since (the notes, the noise) is written; the reviewer's fields stay, even changed here too
    mine = {**form, "noise": "office", "device": "laptop"}
    third = Store(data).save_take(
        "test_case", tone(0.2), origin="t", reference="hello word", labels=mine, notes="echo", **take
    )
    case = Store(data).get_case(first.case.id)
    assert (case.reference, case.notes) == ("hello, world", "echo")
    assert case.labels == {"accent": "Scottish", "device": "headset", "speaker": "s7", "noise": "office"}
    assert third.kept == ("reference", "label device")
    # a field the reviewer left alone follows the tester: the notes, and a label cleared on the page
    Store(data).save_take("test_case", tone(0.2), origin="t", reference="hello word", labels=form, notes="", **take)
    case = Store(data).get_case(first.case.id)
    assert case.notes == "" and "noise" not in case.labels and case.labels["speaker"] == "s7"
    assert len(Store(data).list_cases()) == 1


def test_a_flag_saved_again_after_review_keeps_the_corrected_reference(tmp_path):
    store = Store(tmp_path / "data")
    flag = store.save_take("flag", tone(0.2), origin="t", transcript="a tast", reference="a test", reason="x")
    store.update_case(flag.case.id, reference="a test.", status="confirmed", opened=flag.case)
    same = store.save_take("flag", tone(0.2), origin="t", transcript="a tast", reference="a test", reason="x")
    assert same.kept == ("reference",) and store.get_case(flag.case.id).reference == "a test."
    assert store.get_case(flag.case.id).status == "confirmed"
    # no reviewer edit since: the tester's new correction is written, and nothing is reported kept
    other = store.save_take("flag", tone(0.2), origin="u", transcript="a tast", reference="a test", reason="x")
    fixed = store.save_take("flag", tone(0.2), origin="u", transcript="a tast", reference="a tent", reason="x")
    assert fixed.kept == () and store.get_case(other.case.id).reference == "a tent"


def test_a_take_saved_before_the_store_kept_what_it_sent_is_not_overwritten(tmp_path):
    """A row whose take_sent is empty (saved by an earlier version): what it stores may be a reviewer's, so a save of
    the take keeps every field and names those that differ; its next save is merged as usual."""
    store = Store(tmp_path / "data")
    flag = store.save_take("flag", tone(0.2), origin="t", transcript="a tast", reference="a test", reason="x")
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE cases SET take_sent = NULL, reference = 'a test!'")
    kept = store.save_take("flag", tone(0.2), origin="t", transcript="a tast", reference="a tent", reason="x")
    assert kept.kept == ("reference",) and store.get_case(flag.case.id).reference == "a test!"
    store.save_take("flag", tone(0.2), origin="t", transcript="a tast", reference="a tent", reason="x", notes="n")
    assert (store.get_case(flag.case.id).reference, store.get_case(flag.case.id).notes) == ("a test!", "n")


def test_a_store_made_before_takes_had_an_origin_opens_and_keeps_its_cases(tmp_path):
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    with sqlite3.connect(data / "asrqa.sqlite") as conn:  # the cases table as earlier versions made it
        conn.execute(
            "CREATE TABLE cases (id TEXT PRIMARY KEY, kind TEXT NOT NULL, audio_file TEXT NOT NULL,"
            " transcript TEXT NOT NULL, reference TEXT NOT NULL, reason TEXT NOT NULL, labels TEXT NOT NULL,"
            " notes TEXT NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL,"
            " created_at TEXT NOT NULL, duration REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO cases VALUES ('old', 'flag', 'old.wav', 'a', 'b', '', '{}', '', 'm', 'fw', 'new', '2025', 1)"
        )
    store = Store(data)
    assert [(c.id, c.origin) for c in store.list_cases()] == [("old", "")]
    first = store.save_take("flag", tone(0.2), origin="t", transcript="a", reference="b")
    assert first.added and not store.save_take("flag", tone(0.2), origin="t", transcript="a", reference="c").added
    assert len(Store(data).list_cases()) == 2  # and opening it again changes nothing


def test_restart_sees_everything_newest_first(tmp_path):
    first = Store(tmp_path / "d")
    ids = [first.add_case("test_case", tone(), transcript=str(i), reference=str(i)).id for i in range(3)]
    run_id = first.runs.create_run(
        RunSettings(model="m", backend="faster-whisper", dataset="builtin", noise=("clean",))
    )
    first.runs.add_results(run_id, [{"id": "u1", "noise": "clean", "wer": 0.5}])
    again = Store(tmp_path / "d")
    assert [c.id for c in again.list_cases()] == ids[::-1]
    assert again.runs.get_run(run_id).results == 1


def test_filters_update_and_delete(store):
    a = store.add_case("test_case", tone(), transcript="a", reference="a", labels={"accent": "scots"}, model="tiny")
    b = store.add_case("flag", tone(), transcript="b", reference="bee", reason="misheard", model="base")
    assert [c.id for c in store.list_cases(kind="flag")] == [b.id]
    assert [c.id for c in store.list_cases(model="tiny")] == [a.id]
    assert [c.id for c in store.list_cases(label=("accent", "scots"))] == [a.id]
    assert store.list_cases(label=("accent", "welsh")) == []
    updated = store.update_case(a.id, status="confirmed", labels={"accent": "welsh", "device": "phone"}, notes="n")
    assert updated.status == "confirmed" and updated.labels == {"accent": "welsh", "device": "phone"}
    assert [c.id for c in store.list_cases(status="confirmed")] == [a.id]
    with pytest.raises(StoreError, match="'done'"):
        store.update_case(a.id, status="done")
    assert set(STATUSES) == {"new", "confirmed", "fixed", "wont_fix"}
    store.delete_case(b.id)
    assert not Path(b.audio_path).exists()
    with pytest.raises(CaseNotFound, match=b.id):
        store.get_case(b.id)
    with pytest.raises(KeyError):
        store.update_case("nope", status="fixed")
    with pytest.raises(StoreError, match="kind"):
        store.add_case("bogus", tone(), transcript="", reference="")


def test_runs_results_and_resume_keys(store):
    settings = RunSettings(
        model="whisper-tiny.en",
        backend="faster-whisper",
        dataset="builtin",
        noise=("clean", "white@10"),
        seed=3,
        normalizer="whisper-english",
        normalizer_version="1",
        packages={"jiwer": "4.0.0"},
    )
    run_id = store.runs.create_run(settings)
    with pytest.raises(StoreError):
        store.runs.create_run(settings, run_id=run_id)
    store.runs.add_results(
        run_id, [{"id": "u1", "noise": "clean", "wer": 0.0}, {"id": "u2", "noise": "clean", "wer": 1}]
    )
    store.runs.add_results(run_id, [{"id": "u1", "noise": "white@10", "wer": np.float32(0.25)}])
    assert store.runs.result_keys(run_id) == {("u1", "clean"), ("u2", "clean"), ("u1", "white@10")}
    frame = store.runs.run_results(run_id)
    assert list(frame["id"]) == ["u1", "u2", "u1"] and list(frame["wer"]) == [0.0, 1.0, 0.25]
    run = store.runs.finish_run(run_id, summary={"overall": {"wer": 0.4}})
    assert run.status == "finished" and run.summary["overall"]["wer"] == 0.4 and run.results == 3
    assert run.settings.noise == ("clean", "white@10") and run.settings.packages == {"jiwer": "4.0.0"}
    assert [r.id for r in store.runs.list_runs()] == [run_id]
    with pytest.raises(RunNotFound):
        store.runs.get_run("missing")
    with pytest.raises(RunNotFound):
        store.runs.add_results("missing", [{"id": "x", "noise": "clean"}])
    store.runs.delete_run(run_id)
    assert store.runs.list_runs() == []


@pytest.mark.parametrize("fmt", ["datasets", "csv"])
def test_export_is_a_loadable_dataset(store, tmp_path, fmt):
    store.add_case("test_case", tone(0.5), transcript="hello", reference="hello there", labels={"accent": "a"})
    store.add_case("flag", tone(0.7), transcript="by", reference="bye", reason="wrong", labels={"device": "x"})
    out = export_cases(store.list_cases(), tmp_path / f"export-{fmt}", fmt=fmt)
    if fmt == "csv":
        import pandas as pd

        meta = pd.read_csv(out / "metadata.csv", keep_default_na=False)
        assert set(meta["text"]) == {"hello there", "bye"}
        assert all((out / f).exists() for f in meta["file_name"])
        assert set(meta.columns) >= {"file_name", "text", "hypothesis", "accent", "device"}
    else:
        from datasets import Audio, load_from_disk

        ds = load_from_disk(str(out))
        assert isinstance(ds.features["audio"], Audio)
        raw = ds.cast_column("audio", Audio(decode=False))
        durations = sorted(load_audio(r["audio"]["bytes"]).size / SAMPLE_RATE for r in raw)
        assert durations == pytest.approx([0.5, 0.7])
        assert set(ds["text"]) == {"hello there", "bye"}
    with pytest.raises(ValueError, match="not empty"):
        export_cases(store.list_cases(), out, fmt=fmt)


@pytest.mark.parametrize("name", ["file_name", "text", "Text", "AUDIO", "audio_filepath", " id "])
def test_a_label_named_as_an_export_column_is_refused_when_labelling(store, name):
    """A label ``file_name`` (or ``text``, ``id``, ...) was dropped from an export without a word; ``Text`` or
    ``audio_filepath`` went in, and loading the export back (the loader matches names case-insensitively, and takes
    audio_filepath before file_name) read the reference or the audio from the label."""
    with pytest.raises(StoreError, match=rf"label '{name.strip()}': every export .* name it differently"):
        store.add_case("test_case", tone(0.2), transcript="a", reference="a", labels={name: "x"})
    case = store.add_case("test_case", tone(0.2), transcript="a", reference="a", labels={"accent": "x"})
    with pytest.raises(StoreError, match=f"label '{name.strip()}'"):
        store.update_case(case.id, labels={"accent": "x", name: "mic-3.wav"}, opened=case)
    with pytest.raises(StoreError, match=f"label '{name.strip()}'"):
        store.save_take("flag", tone(0.2), origin="t", transcript="a", reference="a", labels={name: "x"})
    assert [c.labels for c in store.list_cases()] == [{"accent": "x"}]


def test_an_export_meeting_a_label_saved_under_a_column_name_before_is_refused_and_the_label_can_go(store, tmp_path):
    import pandas as pd

    kept = store.add_case("test_case", tone(0.2), transcript="helo", reference="hello", labels={"mic": "3"})
    old = store.add_case("test_case", tone(0.2), transcript="helo", reference="hello", labels={"accent": "x"})
    with sqlite3.connect(store.db_path) as conn:  # as a store written before the rule holds it
        conn.execute("UPDATE cases SET labels = ? WHERE id = ?", ('{"accent": "x", "file_name": "mic-3.wav"}', old.id))
    old = store.get_case(old.id)
    for fmt in ("csv", "datasets"):
        with pytest.raises(ValueError, match=f"case {old.id}: label 'file_name': every export .* on Review"):
            export_cases(store.list_cases(), tmp_path / fmt, fmt=fmt)
        assert not (tmp_path / fmt).exists()
    store.update_case(old.id, status="confirmed", labels=old.labels, opened=old)  # unchanged, it may stay meanwhile
    store.update_case(old.id, labels={"accent": "x", "mic_file": "mic-3.wav"}, opened=store.get_case(old.id))
    meta = pd.read_csv(export_cases(store.list_cases(), tmp_path / "csv", fmt="csv") / "metadata.csv", dtype=str)
    assert list(meta.columns) == ["file_name", *EXPORT_COLUMNS, "accent", "mic_file", "mic"]
    assert meta.set_index("id").loc[old.id, "mic_file"] == "mic-3.wav" and kept.id in set(meta["id"])
    assert set(meta["file_name"]) == {f"audio/{c.id}.wav" for c in (kept, old)}
