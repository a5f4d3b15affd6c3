"""Record sessions in the real SQLite store: resume, one accept per prompt, testers at once, the dataset made."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from evaluation.export import export_cases
from evaluation.prompts import MAX_NAME_CHARS, ScriptError, builtin_script, parse_pasted
from evaluation.recordstore import MAX_LABEL_CHARS, SessionNotFound, SpeakerProfile, StaleTake
from evaluation.runstore import StoreError
from evaluation.store import Store

PROFILE = SpeakerProfile("tester-07", "Scottish", gender="female", age_band="30-44", device="headset")
TONE = (np.sin(np.arange(SAMPLE_RATE) * 0.05) * 0.3).astype(np.float32)


def _accept(store, session, index, text="hello"):
    return store.recordings.accept(
        session.id, index, TONE, transcript=text, errors=1, ref_words=4, checks={"ok": True}, model="m", backend="b"
    )


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


@pytest.fixture
def session(store):
    script = store.recordings.save_script("three", parse_pasted("Press one for sales.\nCancel my order.\nPay my bill."))
    return store.recordings.start_session(script.id, PROFILE, model="m", backend="b")


def test_an_accepted_take_is_a_test_case_with_the_prompt_and_the_profile(store, session):
    take, case = _accept(store, session, 0, "press one for sails")
    saved = store.get_case(case.id)
    assert saved.reference == "Press one for sales." and saved.transcript == "press one for sails"
    assert saved.labels == {
        "speaker": "tester-07",
        "accent": "Scottish",
        "gender": "female",
        "age_band": "30-44",
        "device": "headset",
        "session": session.id,
        "script": "three",
        "prompt_id": "p01",
        "prompt_type": "custom",
    }
    assert take.case_id == case.id and store.recordings.get_session(session.id).position == 1


def test_a_session_resumes_at_its_prompt_in_a_new_store(store, session, tmp_path):
    _accept(store, session, 0)
    store.recordings.rerecord(session.id, 1, transcript="x", errors=3, ref_words=3, checks={})
    reopened = Store(tmp_path / "data").recordings.get_session(session.id)  # as after a restart
    assert (reopened.position, reopened.prompt.text, reopened.total) == (1, "Cancel my order.", 3)
    assert reopened.profile == PROFILE


def test_a_take_for_a_prompt_already_taken_is_refused_and_leaves_no_file(store, session):
    _accept(store, session, 0)
    with pytest.raises(StaleTake, match="prompt 1 of this session was already taken.*at prompt 2 / 3"):
        _accept(store, session, 0)
    assert len(store.list_cases()) == 1
    assert sorted(p.name for p in store.audio_dir.iterdir()) == [f"{store.list_cases()[0].id}.wav"]


def test_two_tabs_accepting_the_same_prompt_at_once_save_it_once(store, session):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def tab():
        barrier.wait()
        try:
            _accept(store, session, 0)
            outcomes.append("saved")
        except StaleTake:
            outcomes.append("stale")

    threads = [threading.Thread(target=tab) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["saved", "stale"]
    assert len(store.list_cases()) == 1 and len(list(store.audio_dir.glob("*.wav"))) == 1


def test_several_testers_recording_at_once_lose_nothing(store):
    script = store.recordings.save_script("ivr", builtin_script("ivr-commands")[:6], source="builtin")
    sessions = [store.recordings.start_session(script.id, SpeakerProfile(f"t{i}", "US")) for i in range(4)]

    def tester(s):
        for index in range(6):
            if index == 2:
                store.recordings.skip(s.id, index)
            else:
                _accept(store, s, index)

    threads = [threading.Thread(target=tester, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.list_cases()) == 4 * 5
    for s in sessions:
        assert store.recordings.get_session(s.id).done
        assert [t.action for t in store.recordings.takes(s.id)].count("skipped") == 1
    assert store.recordings.list_sessions(open_only=True) == []


def test_summary_pools_wer_per_prompt_type(store):
    script = store.recordings.save_script("mixed", builtin_script("mixed")[:4], source="builtin")
    s = store.recordings.start_session(script.id, PROFILE)
    store.recordings.accept(s.id, 0, TONE, transcript="", errors=2, ref_words=8, checks={})
    store.recordings.rerecord(s.id, 1, transcript="", errors=9, ref_words=9, checks={})
    store.recordings.accept(s.id, 1, TONE, transcript="", errors=1, ref_words=9, checks={})
    store.recordings.skip(s.id, 2)
    rows = {r.prompt_type: r for r in store.recordings.summary(s.id)}
    assert list(rows) == ["harvard", "digits", "names", "commands"]
    assert (rows["harvard"].accepted, rows["harvard"].wer) == (1, 0.25)
    assert (rows["digits"].accepted, rows["digits"].rerecorded, rows["digits"].wer) == (1, 1, pytest.approx(1 / 9))
    assert (rows["names"].skipped, rows["names"].wer) == (1, None)


def test_bad_profiles_and_ids_are_one_line(store, session):
    with pytest.raises(StoreError, match="accent or first language"):
        store.recordings.start_session(session.script.id, SpeakerProfile("t1", " "))
    for speaker, why in (
        ("", "required"),
        ("  ", "required"),
        ("x" * 65, "at most 64"),
        ("-7", "give an alias that starts with a letter"),
    ):
        with pytest.raises(StoreError, match=f"speaker id '.*': {why}"):  # each told what is wrong with it
            store.recordings.start_session(session.script.id, SpeakerProfile(speaker, "US"))
    with pytest.raises(SessionNotFound, match="no record session with id 'nope'"):
        store.recordings.get_session("nope")
    for field in ("accent", "gender", "age_band", "device", "environment"):  # 100,000 characters were stored
        long = SpeakerProfile(**{"speaker": "t1", "accent": "US", field: "x" * (MAX_LABEL_CHARS + 1)})
        with pytest.raises(StoreError, match=f"^{field.replace('_', ' ')}: 101 characters; at most 100$"):
            store.recordings.start_session(session.script.id, long)
    kept = SpeakerProfile("t1", "US", environment="e" * MAX_LABEL_CHARS)
    assert store.recordings.start_session(session.script.id, kept).profile.environment == "e" * MAX_LABEL_CHARS


def test_a_script_name_is_at_most_the_longest_file_name(store):
    """A 1 MB name was stored and listed in the Record page's picker; 255 is a file name's limit, so a script
    named after its uploaded file (the page's default) always fits."""
    prompts = parse_pasted("Press one for sales.")
    before = store.recordings.list_scripts()
    with pytest.raises(
        ScriptError, match=r"^script name 'nnnnnnnnnnnn\.\.\.nnnnnnnnnnnnn': 256 characters; at most 255$"
    ):
        store.recordings.save_script("n" * (MAX_NAME_CHARS + 1), prompts)
    assert store.recordings.list_scripts() == before
    assert store.recordings.save_script(" " + "n" * MAX_NAME_CHARS + " ", prompts).name == "n" * MAX_NAME_CHARS
    assert store.recordings.save_script("", prompts).name == "script of 1 prompt"


def test_accepted_takes_are_the_recorded_dataset_grouped_by_accent_with_speakers(store, session):
    from evaluation.datasets import DatasetOptions, load_dataset

    _accept(store, session, 0)
    store.recordings.skip(session.id, 1)
    _accept(store, session, 2)
    loaded = load_dataset(DatasetOptions("recorded"), store=store)
    assert loaded.group_columns == ("accent",) and loaded.speaker_column == "speaker"
    assert sorted(s.text for s in loaded.samples) == ["Pay my bill.", "Press one for sales."]
    assert {(s.groups["accent"], s.speaker) for s in loaded.samples} == {("Scottish", "tester-07")}


def test_a_datasets_export_keeps_the_profile_columns(store, session, tmp_path):
    from datasets import load_from_disk

    _accept(store, session, 0)
    folder = export_cases(store.list_cases(), tmp_path / "export", "datasets")
    exported = load_from_disk(str(folder))
    row = exported.remove_columns("audio")[0]  # decoding audio would need torchcodec
    assert {k: row[k] for k in ("text", "speaker", "accent", "gender", "age_band", "device", "session")} == {
        "text": "Press one for sales.",
        "speaker": "tester-07",
        "accent": "Scottish",
        "gender": "female",
        "age_band": "30-44",
        "device": "headset",
        "session": session.id,
    }
