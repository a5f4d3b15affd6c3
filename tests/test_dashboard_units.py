"""The dashboard's small pure pieces: argument parsing, served paths, form-to-options, renderers. No browser."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

from dashboard.__main__ import check_listen, parse_auth
from dashboard.__main__ import main as dashboard_main
from dashboard.app import build_demo
from dashboard.config import DashboardConfig
from dashboard.review_view import Filters
from dashboard.shared import confidence_band, parse_extra_labels, render_alignment, render_diff
from dashboard.validate_form import REAL_SPEECH_MIN_WORDS, dataset_spec, default_min_words, noise_specs, run_options
from dashboard.validate_view import group_chart, run_label, utterance_widths, wer_colour
from evaluation.scoring import AlignedSpan
from evaluation.stream_tables import side_by_side


def test_auth_pairs_files_and_mistakes(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# comment\n\nann:pw:with:colons\nbob:x\n")
    assert parse_auth(["amy:secret", str(users)]) == [("amy", "secret"), ("ann", "pw:with:colons"), ("bob", "x")]
    with pytest.raises(ValueError, match="user:password"):
        parse_auth(["nopassword"])
    with pytest.raises(ValueError, match=r"there is no file '.*userz\.txt'"):  # a mistyped file name
        parse_auth([str(tmp_path / "userz.txt")])
    with pytest.raises(ValueError, match="expected user:password"):
        parse_auth(["bob:"])  # no password
    users.write_text("broken line\n")
    with pytest.raises(ValueError, match=r"users.txt:1"):
        parse_auth([str(users)])
    for empty in ("", "# users go here\n\n"):  # served the dashboard to anyone, with no login at all
        users.write_text(empty)
        with pytest.raises(ValueError) as caught:
            parse_auth(["amy:secret", str(users)])
        assert (
            str(caught.value)
            == f"--auth {users}: the file holds no user:password line (without one the dashboard would ask no login)"
        )


def test_a_data_dir_that_cannot_hold_the_store_is_one_line_naming_the_flag(tmp_path, capsys):
    """It said "python -m dashboard: [Errno 20] Not a directory: 'FILE/audio'", a path nobody typed."""
    from tests.browser_util import free_port

    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    for value, said in (
        (str(afile), f"--data-dir {afile}: is a file; give a folder for the store"),
        (f"{afile}/data", f"--data-dir {afile}/data: cannot be used (Not a directory)"),
        ("/proc/asrqa-data", "--data-dir /proc/asrqa-data: cannot be used (No such file or directory)"),
    ):
        assert dashboard_main(["--data-dir", value, "--no-preload", "--port", str(free_port())]) == 2
        assert capsys.readouterr().err == f"python -m dashboard: {said}\n"


def test_served_paths_exclude_the_database(tmp_path):
    config = DashboardConfig(data_dir=tmp_path)
    served = config.served_paths()
    assert str(tmp_path.resolve()) not in served  # never the whole data folder: it holds the SQLite file
    assert str(tmp_path.resolve() / "audio") in served
    assert all(str(tmp_path.resolve() / "asrqa.sqlite").startswith(b) is False for b in served)
    assert str(tmp_path.resolve() / "asrqa.sqlite") in config.blocked_paths()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_upload_mb": 0}, "max-upload-mb"),
        ({"live_limit_s": -1}, "live-limit"),
        ({"live_sessions": 0}, "live-sessions"),
        ({"max_upload_mb": float("nan")}, "max-upload-mb"),  # `--max-upload-mb nan` was accepted: no cap at all
        ({"live_limit_s": float("nan")}, "live-limit"),
        ({"live_limit_s": float("inf")}, "live-limit"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        DashboardConfig().replace(**changes)


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("127.0.0.1", 99999, "--port must be 1 to 65535, not 99999"),
        ("127.0.0.1", 0, "--port must be 1 to 65535"),
        ("nosuch.invalid", 7860, "--host nosuch.invalid: not an address this machine can listen on"),
        ("192.0.2.1", 7860, "--host 192.0.2.1: not an address of this machine"),  # TEST-NET-1, never local
    ],
)
def test_a_port_or_host_that_cannot_be_listened_on_is_refused(host, port, message):
    with pytest.raises(ValueError, match=message):
        check_listen(host, port)


def test_sigterm_closes_the_server_as_ctrl_c_does(tmp_path):
    """SIGTERM (kill, systemd, docker stop) killed the dashboard where it stood (exit -15); it closes the server as
    Ctrl-C does and exits 0."""
    import signal
    import time

    from tests.browser_util import App

    app = App(tmp_path / "data", tmp_path, ["--no-preload"]).start()
    proc, app.proc = app.proc, None
    try:
        deadline = time.monotonic() + 30
        while "serving on" not in app.log() and time.monotonic() < deadline:  # it answers just before it says so
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, app.log()
    finally:
        proc.kill()
    assert "closing server" in app.log()


def test_closing_cancels_the_runs_under_way_and_waits_for_them_to_stop():
    """The close sets each run's switch, then waits until the run has stopped (and marked itself cancelled)."""
    import threading

    from dashboard import closing

    switch, inside, stopped = threading.Event(), threading.Event(), []

    def run() -> None:
        with closing.cancelled_on_close(switch):
            inside.set()
            stopped.append(switch.wait(10))  # the model call in progress, then the cancel seen

    worker = threading.Thread(target=run)
    worker.start()
    assert inside.wait(10) and not closing.wait_for_runs(0.05)  # under way: not ended
    assert closing.cancel_runs() == 1 and closing.wait_for_runs(10) and stopped == [True]
    worker.join()
    assert closing.cancel_runs() == 0 and closing.wait_for_runs(0)


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path):
    """A second ``make run`` was Gradio's traceback after the start-up, advising GRADIO_SERVER_PORT."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        free_port = free.getsockname()[1]
        free.close()
        check_listen("127.0.0.1", free_port)  # a free port passes, so the refusal below is about the port
        done = subprocess.run(
            [sys.executable, "-m", "dashboard", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"python -m dashboard: --port {port}: 127.0.0.1:{port} is already in use (another dashboard?); "
        "stop it or pick another port with --port (make run PORT=...)"
    ]
    assert not (tmp_path / "data").exists()  # refused before the store was made


def test_noise_specs_from_the_form():
    assert noise_specs(["clean", "white", "babble"], "10, 5", "0.6", "") == [
        "clean",
        "white@10",
        "white@5",
        "babble@10",
        "babble@5",
    ]
    assert noise_specs(["reverb"], "", "0.3,0.9", "") == ["reverb@0.3", "reverb@0.9"]
    assert noise_specs([], "20", "", "/noise") == ["file:/noise@20"]
    with pytest.raises(Exception, match="not a number"):
        noise_specs(["white"], "ten", "", "")


def test_dataset_spec_from_the_form():
    assert dataset_spec("builtin", "ignored") == "builtin"
    assert dataset_spec("recorded", "") == "recorded"
    assert dataset_spec("hub", "edinburghcstr/edacc") == "hub:edinburghcstr/edacc"
    assert dataset_spec("hub", "hub:a/b:c:test") == "hub:a/b:c:test"
    assert dataset_spec("folder", " /data/set ") == "/data/set"
    assert dataset_spec("builtin-real", "") == "builtin-real"
    assert dataset_spec("builtin-real", "fr, it") == "builtin-real:fr,it"
    assert dataset_spec("builtin-real", "FR, It") == "builtin-real:fr,it"  # was "no language FR"
    with pytest.raises(Exception, match="Type the folder"):
        dataset_spec("folder", "  ")


def test_the_form_proposes_sentences_for_real_speech_and_passes_the_floor_on():
    assert default_min_words("builtin-real") == REAL_SPEECH_MIN_WORDS > 1
    assert [default_min_words(k) for k in ("builtin", "probes", "recorded", "folder", "hub")] == [0] * 5
    form = ["builtin-real", "en", "", None, [], None, ["clean"], "10", "0.6", "", ["none"], 3, 3, 0]
    form += ["tiny.en", "faster-whisper", [], "local", "offline", 0]
    (options,) = run_options(tuple(form))
    assert (options.dataset, options.limit, options.min_words) == ("builtin-real:en", 3, 3)
    form[11:13] = [0, None]  # an emptied box: every utterance, any length
    assert (run_options(tuple(form))[0].limit, run_options(tuple(form))[0].min_words) == (None, 0)


def test_real_speech_languages_follow_the_model_unless_typed():
    from dashboard.validate_form import follow_languages

    assert follow_languages("builtin-real", "whisper-tiny.en", "", "") == ("en", "en")
    assert follow_languages("builtin-real", "openai/whisper-base.en", "", "") == ("en", "en")
    five = "en,es,fr,it,ru"
    assert follow_languages("builtin-real", "whisper-base", "en", "en") == (five, five)  # the proposal follows
    assert follow_languages("builtin-real", "whisper-base", "fr,it", "en") == ("fr,it", "en")  # typed: kept
    assert follow_languages("builtin-real", "whisper-tiny.en", "/data/set", "") == ("en", "en")  # a folder's path
    assert follow_languages("builtin", "whisper-tiny.en", "en", "en") == ("", "")  # the proposal, dropped
    assert follow_languages("folder", "whisper-tiny.en", "/data/set", "") == ("/data/set", "")  # typed: kept
    assert dataset_spec("builtin-real", "en,es,fr,it,ru") == "builtin-real"  # all five: the whole set, as the CLI
    from dashboard.validate_form import location_box

    box, proposed = location_box("builtin-real", "whisper-tiny.en", "", "")
    assert (box.value, proposed, box.visible) == ("en", "en", True) and box.label.startswith("Languages")
    assert location_box("hub", "whisper-tiny.en", "", "")[0].label.startswith("Hugging Face hub id")
    assert location_box("builtin", "whisper-tiny.en", "en", "en")[0].visible is False  # nothing to type


def test_utterance_table_widths_leave_the_text_columns_the_room():
    columns = ["id", "language", "noise", "mode", "wer %", "reference", "hypothesis", "SNR dB"]
    widths = [float(w.rstrip("%")) for w in utterance_widths(columns)]
    assert sum(widths) == pytest.approx(100) and widths[1] >= 8  # "language" on one line
    assert widths[5] == widths[6] == max(widths)
    many = ["id", *(f"group{i}" for i in range(9)), "noise", "wer %", "reference", "hypothesis"]
    assert min(float(w.rstrip("%")) for w in utterance_widths(many)[-2:]) >= 15  # never squeezed out


def test_run_labels_tell_apart_runs_that_took_other_rows_or_paths():
    from evaluation.store import Run, RunSettings

    def label(**changes) -> str:
        settings = RunSettings("tiny.en", "faster-whisper", "builtin-real:en", ("clean",), **changes)
        return run_label(Run("r1", settings, "finished", "2026-01-02T03:04:05", None, {"overall": {"wer": 0.25}}, 4))

    assert label() == "2026-01-02 03:04 · tiny.en · builtin-real:en · clean · WER 25.0%"
    assert label(limit=4, min_words=3, mode="both") == (
        "2026-01-02 03:04 · tiny.en · builtin-real:en · 4 utt. · 3+ words · both · clean · WER 25.0%"
    )


def test_review_filters_and_labels():
    assert Filters("all", "all", "all", "all").query() == {"kind": None, "status": None, "model": None, "label": None}
    assert Filters("flag", "wont_fix", "m", "accent=US").query() == {
        "kind": "flag",
        "status": "wont_fix",
        "model": "m",
        "label": ("accent", "US"),
    }
    assert parse_extra_labels("room = small\n\nmic=usb") == {"room": "small", "mic": "usb"}
    with pytest.raises(Exception, match="line 2"):
        parse_extra_labels("a=b\nnot a label")


def test_alignment_colours_each_kind_of_error_and_escapes_html():
    spans = (
        AlignedSpan("equal", ("the",), ("the",)),
        AlignedSpan("substitute", ("birch",), ("<b>merch</b>",)),
        AlignedSpan("delete", ("canoe",), ()),
        AlignedSpan("insert", (), ("uh",)),
    )
    html = render_alignment(spans)
    assert "asrqa-sub" in html and "asrqa-del" in html and "asrqa-ins" in html
    assert "<b>merch" not in html and "&lt;b&gt;merch" in html
    diff = render_diff("The birch canoe.", "the merch canoe").split("asrqa-legend")[0]  # the words, not the legend
    # normalized as validation scores: case and punctuation do not count as errors
    assert diff.count("asrqa-sub'") == 1 and "asrqa-del'" not in diff


def test_colour_scale_and_confidence_bands():
    assert "hsl(120" in wer_colour(0.0) and "hsl(0," in wer_colour(0.9) and "hsl(60" in wer_colour(0.25)
    assert "#e5e7eb" in wer_colour(math.nan)
    assert [confidence_band(p) for p in (0.95, 0.6, 0.1)] == ["high", "medium", "low"]


def test_every_event_has_an_api_name_and_the_pages_are_routed(tmp_path):
    demo = build_demo(DashboardConfig(data_dir=tmp_path))
    assert [p[0] for p in demo.pages] == ["", "record", "transcribe", "validate", "review"]
    assert [p[1] for p in demo.pages][1:] == ["Record", "Transcribe", "Validate", "Review"]
    names = [fn.api_name for fn in demo.fns.values()]
    assert names and all(isinstance(n, str) and n for n in names)
    stream = next(fn for fn in demo.fns.values() if fn.api_name == "live_stream")
    assert stream.concurrency_limit == DashboardConfig().live_sessions and stream.time_limit >= 3600
    record = next(fn for fn in demo.fns.values() if fn.api_name == "record_mic_stream")
    assert record.concurrency_id == stream.concurrency_id  # Live and Record share the limit on live streams
    assert demo.api_open is False


def test_live_session_stops_listening_at_the_limit_and_keeps_the_recording(tmp_path, fw_backend, speech_wav):
    """The page's handlers on the real streaming session: a 1.5 s limit instead of an hour."""
    import numpy as np
    import soundfile as sf

    from asr.streaming import StreamOptions
    from dashboard.pages.live import LiveTab, _on_chunk, _on_stop

    config = DashboardConfig(data_dir=tmp_path, live_limit_s=1.5)
    options = StreamOptions(max_session_seconds=config.live_limit_s)
    audio, rate = sf.read(speech_wav, dtype="int16")
    tab, step = LiveTab(), rate // 2
    try:
        readouts = [
            _on_chunk((rate, audio[i : i + step]), tab, fw_backend.model, "faster-whisper", options, config)[1]
            for i in range(0, 5 * step, step)  # the resampler holds samples back: 5 chunks pass 1.5 s
        ]
        assert "limit reached" not in readouts[1] and "limit reached" in readouts[-1]
        view, readout, (out_rate, recording), reference, panel, saved = _on_stop(tab, config)
        assert panel.visible and panel.open  # the save panel appears with the recording
        assert saved == ""  # the last take's "Saved test case …" goes: this one is not saved yet
        assert out_rate == 16_000 and recording.size == int(1.5 * 16_000)
        assert "finished" in readout and tab.session is None and tab.take is not None
        assert reference == tab.take.transcript
        stray = _on_chunk((rate, audio[:step]), tab, fw_backend.model, "faster-whisper", options, config)
        assert tab.session is None and stray == (gr.skip(), gr.skip())  # a chunk after stop starts nothing
        assert np.isfinite(recording).all()
    finally:
        tab.close()  # a session left decoding at interpreter exit would abort the test process


def test_transcribe_stats_say_how_the_language_was_chosen():
    import dataclasses

    from asr.results import DecodeOptions, Transcript
    from dashboard.pages.transcribe import render_stats

    detected = Transcript("bonjour", (), (), "fr", 2.0, 1.5, 0.5, "whisper-base", "faster-whisper", DecodeOptions())
    assert "language **fr** (detected)" in render_stats(detected, multilingual=True)
    forced = dataclasses.replace(detected, options=DecodeOptions(language="fr"))
    assert "language **fr** (forced)" in render_stats(forced, multilingual=True)
    english = dataclasses.replace(detected, language="en", model="whisper-tiny.en")
    assert "language **en** (English-only model)" in render_stats(english, multilingual=False)


def test_noise_specs_cross_the_channels():
    specs = noise_specs(["clean", "white"], "10", "", "", None, ["none", "codec:mulaw8k", "codec:opus@12k+loss5"])
    assert specs == [
        "clean",
        "white@10",
        "clean+codec:mulaw8k",
        "white@10+codec:mulaw8k",
        "clean+codec:opus@12k+loss5",
        "white@10+codec:opus@12k+loss5",
    ]
    assert noise_specs(["clean"], "", "", "", None, []) == ["clean"]


def test_record_page_reads_an_uploaded_csv_or_txt_script_and_stores_a_builtin_once(tmp_path):
    from dashboard.pages.record import _prompts_from, _reuse_or_save
    from evaluation.store import Store

    store = Store(tmp_path / "data")
    csv_file = tmp_path / "ivr.csv"
    csv_file.write_text("id,text,type\nsales,Press one for sales.,commands\n", encoding="utf-8")
    name, source, prompts, _ = _prompts_from(
        store, "builtin:harvard", "ignored when a file is given", str(csv_file), ""
    )
    assert (name, source, [(p.id, p.text, p.type) for p in prompts]) == (
        "ivr.csv",
        "upload",
        [("sales", "Press one for sales.", "commands")],
    )
    txt_file = tmp_path / "lines.txt"
    txt_file.write_text("Good morning.\nGood night.\n", encoding="utf-8")
    assert [p.text for p in _prompts_from(store, "", "", str(txt_file), "mine")[2]] == ["Good morning.", "Good night."]
    assert _prompts_from(store, "", "One.\nTwo.", None, "")[:2] == ("pasted prompts", "pasted")
    name, source, prompts, _ = _prompts_from(store, "builtin:ivr-commands", "", None, "")
    first = _reuse_or_save(store, name, source, prompts)
    assert _reuse_or_save(store, name, source, prompts) == first  # a built-in script is stored once
    assert _prompts_from(store, f"saved:{first}", "", None, "")[3] == first


def test_review_lists_the_takes_of_one_record_session(tmp_path):
    import numpy as np

    from dashboard.review_view import Filters
    from evaluation.prompts import parse_pasted
    from evaluation.recordstore import SpeakerProfile
    from evaluation.store import Store

    store = Store(tmp_path / "data")
    script = store.recordings.save_script("two", parse_pasted("One.\nTwo."))
    tone = np.full(16_000, 0.1, np.float32)
    ids = {}
    for speaker in ("a", "b"):
        session = store.recordings.start_session(script.id, SpeakerProfile(speaker, "US"))
        _, case = store.recordings.accept(session.id, 0, tone, transcript="one", errors=0, ref_words=1, checks={})
        ids[session.id] = case.id
    store.add_case("test_case", tone, transcript="x", reference="x")  # not from a session
    for session_id, case_id in ids.items():
        assert [c.id for c in Filters("all", "all", "all", "all", session_id).cases(store)] == [case_id]
    assert len(Filters("all", "all", "all", "all").cases(store)) == 3


@pytest.mark.parametrize(
    ("content_type", "body", "padded"),
    [
        ("application/x-www-form-urlencoded", b"username=+alice&password=x", True),
        ("application/x-www-form-urlencoded", b"username=alice&password=x", False),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nbob \r\n--b--\r\n',
            True,
        ),
        ("multipart/form-data", b"--b\r\nnot a form", False),  # no boundary: Starlette refuses it, so does Gradio
    ],
)
def test_login_guard_reads_the_user_name_of_either_form_encoding(content_type, body, padded):
    import asyncio

    from dashboard.guard import _padded_username

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
    assert asyncio.run(_padded_username(scope, body)) is padded


def test_the_group_chart_has_a_bar_per_path_in_a_run_of_both():
    """Offline rows at 10% and streaming rows at 30%: pooled they would chart 20%, which neither path has."""
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b"],
            "accent": ["us"] * 4,
            "noise": ["clean"] * 4,
            "mode": ["offline", "offline", "streaming", "streaming"],
            "errors": [1, 1, 3, 3],
            "ref_words": [10, 10, 10, 10],
        }
    )
    summary = SimpleNamespace(group_columns=["accent"], speaker_column=None)
    axes = group_chart(rows, summary).axes[0]
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert labels == ["clean", "clean [streaming]"]
    heights = [round(bar.get_height(), 6) for container in axes.containers for bar in getattr(container, "patches", [])]
    assert heights == [10.0, 30.0]
    again = group_chart(side_by_side(rows), summary).axes[0]  # the page passes rows already side by side
    assert [t.get_text() for t in again.get_legend().get_texts()] == ["clean", "clean [streaming]"]
    one_path = group_chart(rows[rows["mode"] == "offline"], summary).axes[0]
    assert [t.get_text() for t in one_path.get_legend().get_texts()] == ["clean"]


def test_cancel_with_no_run_under_way_leaves_the_status_alone():
    import gradio as gr

    from dashboard.pages.validate import ValidateTab, _cancel

    idle = ValidateTab()
    with pytest.warns(UserWarning, match="nothing to cancel"):
        assert _cancel(idle) == gr.skip()  # not "Cancelling…" over the last run's summary
    assert not idle.cancel.is_set()
    running = ValidateTab(running=True)
    assert "Cancelling" in _cancel(running) and running.cancel.is_set()


def test_a_run_cancelled_before_any_row_shows_no_empty_table_or_chart(tmp_path):
    from dashboard.pages.validate import ValidateTab, _show
    from evaluation.runner import load_result
    from evaluation.store import RunSettings, Store

    config = DashboardConfig(data_dir=tmp_path).validate()
    store = Store(tmp_path)
    run_id = store.runs.create_run(RunSettings("tiny.en", "faster-whisper", "builtin", ("clean",)))
    store.runs.finish_run(run_id, "cancelled", {})
    status, table, chart, utterances, *_ = _show(config, ValidateTab(), load_result(store, run_id))
    assert "(cancelled)" in status and "No utterance was scored" in status
    assert "WER" not in status and "rtfx" not in status and "`*`" not in status  # no figures of nothing
    assert not (table.visible or chart.visible or utterances.visible)


def test_a_run_of_both_paths_shows_each_overall_wer_to_one_decimal(tmp_path, fw_backend):
    """The page's offline line said 1 decimal and the streaming line beside it 2; both as the tables (1)."""
    import re

    from dashboard.pages.validate import _render
    from evaluation.runner import RunOptions, run_validation
    from evaluation.store import Store

    config = DashboardConfig(data_dir=tmp_path).validate()
    options = RunOptions(noise=("clean",), limit=1, mode="both", model="whisper-tiny.en")
    rendered = _render(config, run_validation(options, Store(tmp_path)))
    figures = re.findall(r"WER[^%]*?(\d+\.\d+)%", rendered.status)
    assert len(figures) >= 2 and {len(f.split(".")[1]) for f in figures} == {1}, rendered.status
    assert "Streaming (committed text): WER" in rendered.status
    legend = [t.get_text() for t in rendered.chart.axes[0].get_legend().get_texts()]
    assert legend == ["clean", "clean [streaming]"]


def test_invented_words_said_only_when_there_is_something_to_say():
    from dashboard.validate_view import invented_markdown

    speech = pd.DataFrame(
        {
            "id": ["a", "b"],
            "noise": ["clean"] * 2,
            "invented_words": [0, 0],
            "invented_text": ["", ""],
            "nonspeech_seconds": [0.01, 0.01],
        }
    )
    assert invented_markdown(speech, []) is None  # a speech run's edges: nothing to say
    made_up = speech.assign(invented_words=[2, 0], invented_text=["thank you", ""])
    assert "thank you" in invented_markdown(made_up, []) and "2" in invented_markdown(made_up, [])
    probes = speech.assign(nonspeech_seconds=[30.0, 30.0])  # a probe run with none invented: that is the result
    assert "0 over 1.0 min of non-speech" in invented_markdown(probes, [])


def test_review_tells_a_new_tester_how_to_fill_it(tmp_path, speech_wav):
    from dashboard.review_view import NO_MATCH, Filters, empty_hint
    from dashboard.review_view import cases_table as _table
    from dashboard.shared import Heard, get_store, save_test_case

    store = get_store(tmp_path)
    assert "Transcribe" in empty_hint(store.list_cases()) and "Record" in empty_hint(store.list_cases())
    save_test_case(
        tmp_path, Heard(str(speech_wav), "a test", "whisper-tiny.en", "faster-whisper", "t1"), "a test", "", "", "", ""
    )
    assert empty_hint(store.list_cases()) == ""
    assert empty_hint(store.list_cases(), _table(store, Filters("flag", "all", "all", "all"))) == NO_MATCH
    assert empty_hint(store.list_cases(), _table(store, Filters("all", "all", "all", "all"))) == ""


def test_a_transcription_finished_after_another_file_was_picked_is_not_shown(speech_wav):
    from dashboard.pages.transcribe import Shown, _forget, _transcribe

    shown = Shown()
    _forget(str(speech_wav), shown)  # picked
    take, *_ = _transcribe(str(speech_wav), "whisper-tiny.en", "faster-whisper", shown, progress=lambda *a, **k: None)
    assert take.audio_path == str(speech_wav)

    def pick_another(*a, **k):  # the tester picks another file while it runs
        _forget("another.wav", shown)

    outputs = _transcribe(str(speech_wav), "whisper-tiny.en", "faster-whisper", shown, progress=pick_another)
    assert all(o == gr.skip() for o in outputs)  # nothing drawn over the other file


def test_transcribe_pressed_again_for_the_file_shown_does_not_run_it_again(speech_wav, capsys):
    """A double click on Transcribe ran the file twice (the second press waits for the first, then runs; two quick
    enough both ran at once): the second run replaced the take already flagged, so the next Flag made a copy."""
    from dashboard.pages.transcribe import ALREADY_DONE, Shown, _forget, _transcribe

    path, shown, runs, during = str(speech_wav), Shown(), [], []

    def progress(fraction, desc=""):
        if desc == "loading the model":  # the first step of each run
            runs.append(desc)
            if len(runs) == 1:  # pressed again while this run is under way
                during.append(_transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress))

    _forget(path, shown)
    take, *_ = _transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress)
    again = _transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress)  # and after it
    assert all(o == gr.skip() for o in (*during[0], *again)) and len(runs) == 1  # the take on screen is kept
    assert capsys.readouterr().out.count(ALREADY_DONE) == 2  # said, not silent (gr.Info prints outside a request)
    _forget(None, shown)  # cleared and picked again: another turn, transcribed again
    _forget(path, shown)
    assert _transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress)[0].transcript
    assert len(runs) == 2


def test_transcribe_pressed_before_the_picks_change_event_came_still_shows_its_transcript(speech_wav):
    """Transcribe pressed at once after picking a file could reach the server before the pick's change event, which
    then counted as another file: the run was abandoned and the page showed nothing (2 of 16 presses in Chromium)."""
    from dashboard.pages.transcribe import Shown, _forget, _transcribe

    path, shown, late = str(speech_wav), Shown(), []

    def progress(fraction, desc=""):
        if not late:
            late.append(_forget(path, shown))  # the pick's change event, coming after the press

    take, text, *_ = _transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress)
    assert take.audio_path == path and text  # shown, not abandoned
    assert all(o == gr.skip() for o in late[0])  # and the late change cleared nothing


def test_a_transcription_abandoned_for_another_file_stops_early(real_set):
    """Picking another file while a long one is transcribed stops it after the batch in progress: it kept both
    cores busy to its end, only for its result to be dropped."""
    from dashboard.pages.transcribe import Shown, _forget, _transcribe

    path = str(real_set / "long" / "en-dev-joined.wav")  # 495 s: several batches of windows
    shown, reports = Shown(), []
    _forget(path, shown)

    def progress(fraction, desc=""):
        if desc.endswith("s of audio"):
            reports.append(fraction)
            _forget(None, shown)  # the tester clears the file (and could pick it again: another turn)

    outputs = _transcribe(path, "whisper-tiny.en", "faster-whisper", shown, progress=progress)
    assert all(o == gr.skip() for o in outputs)
    assert len(reports) == 1 and reports[0] < 1.0  # stopped at the next batch, not run to the end


def test_record_stopped_before_any_session_says_to_start_one(tmp_path):
    from dashboard.pages.record import NO_SESSION, RecordTab, _on_stop
    from dashboard.shared import get_store

    live, wer, checks, message, accept, rerecord = _on_stop(get_store(tmp_path), RecordTab())
    assert message == NO_SESSION and "Start session" in message  # not "Nothing was heard: record again"
    assert not (accept.visible or rerecord.visible)


def test_saving_the_same_take_again_updates_its_case(tmp_path, speech_wav):
    from dashboard.shared import Heard, get_store, save_test_case

    store = get_store(tmp_path)
    heard = Heard(str(speech_wav), "a test", "whisper-tiny.en", "faster-whisper", "take-1")
    first = save_test_case(tmp_path, heard, "a test", "Scottish", "", "", "")
    again = save_test_case(tmp_path, heard, "a tent", "Welsh", "office", "", "typo")
    assert again.case_id == first.case_id and "Updated" in again.message
    (case,) = store.list_cases()
    assert (case.reference, case.labels, case.notes) == ("a tent", {"accent": "Welsh", "noise": "office"}, "typo")
    store.delete_case(first.case_id)  # deleted on Review meanwhile: the next save keeps the take again
    anew = save_test_case(tmp_path, heard, "a test", "", "", "", "")
    assert anew.case_id != first.case_id and [c.id for c in store.list_cases()] == [anew.case_id]
    spaces = save_test_case(tmp_path, heard, "   ", "", "", "", "")  # as empty: the transcript
    assert store.get_case(spaces.case_id).reference == "a test"


def test_a_take_flagged_or_saved_again_after_review_keeps_the_reviewers_fields_and_says_which(tmp_path, speech_wav):
    """Flag (or Save) pressed again on the same take put the page's text over the reference a reviewer had corrected
    on Review, and its three label boxes over the reviewer's labels, with "Updated" as the only word."""
    from dashboard.config import DashboardConfig
    from dashboard.pages.transcribe import Shown, _flag, _forget, _transcribe
    from dashboard.shared import Heard, get_store, save_test_case

    config, shown, store = DashboardConfig(data_dir=tmp_path), Shown(), get_store(tmp_path)
    _forget(str(speech_wav), shown)
    take, *_ = _transcribe(str(speech_wav), "whisper-tiny.en", "faster-whisper", shown, progress=lambda *a, **k: None)
    assert "Flagged" in _flag(config, take, "wrong words", "fixed", "")
    (flag,) = store.list_cases()
    store.update_case(flag.id, reference="fixed on review", opened=flag)
    said = _flag(config, take, "wrong words", "fixed", "echo")
    assert "It keeps what was changed on Review since: corrected transcript; change those there." in said, said
    assert (store.get_case(flag.id).reference, store.get_case(flag.id).notes) == ("fixed on review", "echo")
    heard = Heard(str(speech_wav), "a test", "whisper-tiny.en", "faster-whisper", "take-2")
    case_id = save_test_case(tmp_path, heard, "a test", "Scottish", "", "", "").case_id
    store.update_case(case_id, labels={"accent": "Scottish", "device": "headset"}, opened=store.get_case(case_id))
    again = save_test_case(tmp_path, heard, "a test", "Scottish", "", "", "")
    assert again.message.endswith("It keeps what was changed on Review since: device; change those there."), again
    assert store.get_case(case_id).labels == {"accent": "Scottish", "device": "headset"}
    plain = save_test_case(tmp_path, Heard(str(speech_wav), "a test", "m", "b", "take-3"), "a test", "", "", "", "")
    assert (
        "keeps"
        not in save_test_case(tmp_path, Heard(str(speech_wav), "a", "m", "b", "take-3"), "b", "", "", "", "").message
    )
    assert store.get_case(plain.case_id).reference == "b"  # no review since: the tester's change is written


def test_live_saves_a_take_once_and_the_next_take_anew(tmp_path, speech_wav):
    from asr.audio import load_audio
    from dashboard.config import DashboardConfig
    from dashboard.pages.live import LiveTab, LiveTake, _save
    from dashboard.shared import get_store

    config, tab, audio = DashboardConfig(data_dir=tmp_path), LiveTab(), load_audio(speech_wav)
    tab.take = LiveTake(audio, "a test", "whisper-tiny.en", "faster-whisper")
    assert "Saved test case" in _save(config, tab, "a test", "", "", "", "")
    assert "Updated test case" in _save(config, tab, "a tent", "Welsh", "", "", "")  # the same take again
    tab.take = LiveTake(audio, "a test", "whisper-tiny.en", "faster-whisper")  # the next recording
    assert "Saved test case" in _save(config, tab, "a test", "", "", "", "")
    assert sorted(c.reference for c in get_store(tmp_path).list_cases()) == ["a tent", "a test"]


def test_flag_and_save_pressed_at_once_then_again_keep_one_flag_and_one_test_case(tmp_path, speech_wav):
    """Gradio runs Transcribe's Flag and Save at once (two events) with the same take; each kept the id it saved in
    the tab's take, the last one back overwriting the other's, so the next Flag (or Save) added a copy."""
    import threading

    from dashboard.config import DashboardConfig
    from dashboard.pages.transcribe import Shown, _flag, _forget, _save, _transcribe
    from dashboard.shared import get_store

    config, shown = DashboardConfig(data_dir=tmp_path), Shown()
    _forget(str(speech_wav), shown)
    take, *_ = _transcribe(str(speech_wav), "whisper-tiny.en", "faster-whisper", shown, progress=lambda *a, **k: None)
    barrier, said = threading.Barrier(2), []
    presses = [lambda: _flag(config, take, "wrong words", "fixed", ""), lambda: _save(config, take, "fixed", *[""] * 4)]
    threads = [threading.Thread(target=lambda p=p: (barrier.wait(), said.append(p()))) for p in presses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(said) == 2 and any("Flagged" in m for m in said) and any("Saved test case" in m for m in said), said
    assert "Updated flag" in _flag(config, take, "wrong words", "fixed again", "")  # the tab's take, as it is now
    assert "Updated test case" in _save(config, take, "fixed again", "Welsh", "", "", "")
    cases = get_store(tmp_path).list_cases()
    assert sorted((c.kind, c.reference) for c in cases) == [("flag", "fixed again"), ("test_case", "fixed again")]


def test_the_first_progress_line_says_what_the_run_is_and_later_ones_count_rows():
    from dashboard.validate_view import ProgressLine
    from evaluation.progress import RunProgress

    for prefix in ("", "model 1/2 (whisper-tiny.en): "):
        lines: list[str] = []
        line = ProgressLine(prefix)
        tracker = RunProgress(
            6, 2, lambda done, total, message, lines=lines, line=line: lines.append(line(done, total, message))
        )
        tracker.start("run r1 on local: 4 to transcribe, 2 already stored")  # resumed: 2 rows were done
        tracker.add([], skipped=1)
        assert lines[0] == f"{prefix}run r1 on local: 4 to transcribe, 2 already stored"  # not "2/6 run r1: ..."
        assert lines[1].startswith(f"{prefix}3/6 ") and "ETA" in lines[1], lines


def test_a_take_under_way_when_its_prompt_is_skipped_is_discarded_not_scored_against_the_next(
    tmp_path, fw_backend, speech_wav
):
    """Skip pressed while recording prompt 1: the take, stopped after, was scored and kept against prompt 2."""
    import soundfile as sf

    from asr.streaming import StreamOptions
    from dashboard.pages.record import RecordTab, _decide, _on_chunk, _on_start, _on_stop, _start
    from dashboard.shared import get_store

    store, tab = get_store(tmp_path), RecordTab()
    form = ("builtin:ivr-commands", "", None, "", "tester-07", "Scottish", "", "", "", "")
    _start(store, tab, *form, fw_backend.model, "faster-whisper")
    audio, rate = sf.read(speech_wav, dtype="int16")
    try:
        _on_start(store, tab)
        _on_chunk((rate, audio[: 2 * rate]), tab, fw_backend.model, "faster-whisper", StreamOptions())
        skipped = _decide(store, tab, "skip")
        assert "Skipped prompt 1" in skipped[5] and "discarded" in skipped[5]
        live, wer, checks, message, accept, rerecord = _on_stop(store, tab)
        assert "discarded" in message and "prompt 1" in message and "Record prompt 2" in message
        assert tab.pending is None and not (accept.visible or rerecord.visible) and wer == ""
        session = store.recordings.get_session(tab.session_id)
        assert session.position == 1 and store.recordings.summary(session.id)[0].accepted == 0
        with pytest.raises(gr.Error, match="Record the prompt first"):
            _decide(store, tab, "accept")  # nothing to accept against prompt 2
        # a take recorded for prompt 2 and stopped with no skip is scored against prompt 2, as before
        _on_start(store, tab)
        _on_chunk((rate, audio[: 2 * rate]), tab, fw_backend.model, "faster-whisper", StreamOptions())
        assert _on_stop(store, tab)[4].visible and tab.pending is not None and tab.pending.index == 1
    finally:
        tab.close()


def test_a_take_started_while_its_accept_is_written_is_kept_for_the_next_prompt(
    tmp_path, fw_backend, speech_wav, monkeypatch
):
    """A then R at once (or Accept queued behind another tester's): the take started before the accept was written
    was discarded at stop as "recorded for prompt 1, which was skipped" (or the accept found no take)."""
    import threading

    import soundfile as sf

    from asr.streaming import StreamOptions
    from dashboard.pages.record import RecordTab, _decide, _on_chunk, _on_start, _on_stop, _start
    from dashboard.shared import get_store

    store, tab = get_store(tmp_path), RecordTab()
    form = ("builtin:ivr-commands", "", None, "", "tester-07", "Scottish", "", "", "", "")
    _start(store, tab, *form, fw_backend.model, "faster-whisper")
    audio, rate = sf.read(speech_wav, dtype="int16")
    writing, accept, decided = threading.Event(), store.recordings.accept, []

    def slow_accept(*args, **kwargs):  # the accept under way when R is pressed
        writing.set()
        threading.Event().wait(0.5)
        return accept(*args, **kwargs)

    monkeypatch.setattr(store.recordings, "accept", slow_accept)
    try:
        _on_start(store, tab)
        _on_chunk((rate, audio[: 2 * rate]), tab, fw_backend.model, "faster-whisper", StreamOptions())
        assert _on_stop(store, tab)[4].visible  # the take for prompt 1 waits for a decision
        pressed = threading.Thread(target=lambda: decided.append(_decide(store, tab, "accept")))
        pressed.start()
        assert writing.wait(30)
        _on_start(store, tab)  # R while the accept is written
        pressed.join()
        assert "Prompt 1 saved as test case" in decided[0][5] and tab.recording_for == 1
        _on_chunk((rate, audio[: 2 * rate]), tab, fw_backend.model, "faster-whisper", StreamOptions())
        message = _on_stop(store, tab)[3]
        assert "discarded" not in message and tab.pending is not None and tab.pending.index == 1, message
    finally:
        tab.close()


def test_a_run_cancelled_while_it_waits_its_turn_is_dropped_when_the_turn_comes(tmp_path):
    """One run at a time: Cancel on a run queued behind another tab's said "nothing to cancel" and it then ran."""
    from dashboard.pages.validate import CANCELLED_QUEUED, ValidateTab, _cancel, _queue, _run
    from evaluation.store import Store

    config = DashboardConfig(data_dir=tmp_path).validate()
    store, tab = Store(tmp_path), ValidateTab()
    _queue(tab)  # Run pressed: the page's first step, not queued
    assert len(tab.waiting) == 1 and not tab.waiting[0].is_set()
    waiting = tab.waiting[0]
    assert _cancel(tab) == gr.skip() and waiting.is_set()  # honoured, not "No run in progress"
    status, *rest = _run(store, config, tab, "not read: the run is dropped first")
    assert status == CANCELLED_QUEUED and rest and all(r == gr.skip() for r in rest)
    assert store.runs.list_runs() == [] and not (tab.waiting or tab.running)  # nothing loaded, stored or run
    _queue(tab)  # the next Run starts with the switch off
    assert not tab.waiting[0].is_set()


def test_run_pressed_while_the_tabs_run_waits_or_runs_is_refused_and_cancel_still_stops_it():
    """Run pressed again during a run was dropped by the browser without a word, after the page had made it a
    cancel switch no run would take: a later Cancel then said a run was waiting, and the next Run was dropped."""
    from dashboard.pages.validate import RUN_UNDER_WAY, ValidateTab, _cancel, _queue, _take_switch

    tab = ValidateTab()
    assert _queue(tab).interactive is False  # Run disabled until the run ends
    with pytest.raises(gr.Error, match=RUN_UNDER_WAY):  # pressed again while it waits for another tab's run
        _queue(tab)
    assert len(tab.waiting) == 1
    tab.cancel, tab.running = _take_switch(tab), True  # what _run does as the run begins
    first = tab.cancel
    with pytest.raises(gr.Error, match=RUN_UNDER_WAY):  # and while it runs
        _queue(tab)
    assert tab.cancel is first and tab.waiting == []  # no switch left behind for a run that never comes
    assert isinstance(_cancel(tab), str) and first.is_set()  # "Cancelling at the next model call..."
    tab.running = False  # the run ended: Run works again, with a fresh switch
    _queue(tab)
    assert len(tab.waiting) == 1 and not tab.waiting[0].is_set()


def test_the_review_panel_closes_when_the_filters_hide_its_case(tmp_path, speech_wav):
    """The detail panel stayed open, editable, for a case the filters no longer listed."""
    from dashboard.pages.review import detail_if_listed
    from evaluation.store import Store

    store = Store(tmp_path)
    flag = store.add_case("flag", str(speech_wav), transcript="a", reference="", reason="wrong words")
    store.add_case("test_case", str(speech_wav), transcript="b", reference="b")
    kept = detail_if_listed(store, flag, Filters("flag", "all", "all", "all"))
    assert kept == (gr.skip(),) * 4  # still listed: the panel is left as it is
    case_id, group, confirm_row, pending = detail_if_listed(store, flag, Filters("test_case", "all", "all", "all"))
    assert case_id is None and pending is None and not group.visible and not confirm_row.visible
    assert detail_if_listed(store, None, Filters("test_case", "all", "all", "all")) == (gr.skip(),) * 4
    store.delete_case(flag.id)  # deleted in another tab: a Refresh closes its panel too
    assert detail_if_listed(store, flag, Filters("all", "all", "all", "all"))[0] is None


# What a press does while the same event of the tab is still under way (the browser decides, from each event's
# trigger mode): Gradio's default, "once", drops it without a word. "always_last" runs it after, with the page as it
# is then (a save updates its case, a read shows the last choice); "multiple" runs each click of a table in order
# ("always_last" replays the first click's row); "once" stays where a second press must not act twice (a start, an
# accept) or where the button is disabled until the event ends (Validate's Run, Review's Export).
TRIGGER_MODES = {
    "live_stop": "always_last",
    "live_save_case": "always_last",
    "record_start": "once",
    "record_resume": "always_last",
    "record_mic_stop": "always_last",
    "record_accept": "once",
    "record_skip": "once",
    "transcribe": "always_last",
    "transcribe_flag": "always_last",
    "transcribe_save_case": "always_last",
    "validate_conditions": "always_last",
    "validate_columns": "always_last",
    "validate_queue": "once",
    "validate_open_run": "always_last",
    "validate_compare": "always_last",
    "validate_utterance": "multiple",
    "review_refresh": "always_last",
    "review_select": "multiple",
    "review_save": "always_last",
    "review_refresh_after_save": "always_last",
    "review_export_start": "once",
}


def test_a_press_during_a_long_event_runs_after_it_or_is_refused_never_dropped(tmp_path):
    """Review's Save pressed again during a save, after another edit, kept the edit in the box and not in the store;
    Live's Stop pressed while the last take was still being finished lost that recording; a row clicked while the
    last one loaded showed the row before. Each event's mode is the decision above."""
    demo = build_demo(DashboardConfig(data_dir=tmp_path))
    modes = {fn.api_name: fn.trigger_mode for fn in demo.fns.values()}
    assert {name: modes.get(name) for name in TRIGGER_MODES} == TRIGGER_MODES
    # the buttons that are "once" because they are disabled until their event ends are enabled again after it, on
    # success and on failure alike (Gradio 6's browser skips a .then step after a failure)
    assert {"validate_run_ended", "validate_run_failed", "review_export_ended", "review_export_failed"} <= modes.keys()


def test_a_second_export_in_the_same_second_gets_its_own_folder(tmp_path):
    """Two exports within one second were given one folder: the second was refused, shown as a bare "Error"."""
    from evaluation.export import unused_folder

    base = tmp_path / "cases-20260101-120000-csv"
    assert unused_folder(base) == base
    base.mkdir()
    second = unused_folder(base)
    assert second == tmp_path / "cases-20260101-120000-csv-2" and not second.exists()
    (tmp_path / "cases-20260101-120000-csv-2.zip").write_bytes(b"")  # an archive left without its folder counts too
    assert unused_folder(base).name == "cases-20260101-120000-csv-3"
    assert unused_folder(tmp_path / "cases-20260101-120000-datasets").name == "cases-20260101-120000-datasets"


def test_review_save_redraws_the_wer_and_refuses_a_blank_reference(tmp_path, speech_wav):
    """Save kept the diff of the reference the panel opened with: a corrected reference still showed the old errors."""
    from dashboard.pages.review import _save, _show
    from evaluation.store import Store

    store = Store(tmp_path)
    case = store.add_case("test_case", str(speech_wav), transcript="the birch canoe slid", reference="the birch canoe")
    opened = _show(store, case.id)[5]
    words = opened.split("asrqa-legend")[0]  # the words, not the legend
    assert "WER 33.3%" in opened and "asrqa-ins" in words and "slid" in words  # "slid" inserted
    message, diff, *_ = _save(store, case, "confirmed", "The birch canoe slid.", "", "", "", "", "")
    assert case.id in message and "WER 0.0%" in diff and "(0 errors / 4 words" in diff
    assert "asrqa-ins" not in diff.split("asrqa-legend")[0]
    assert store.get_case(case.id).reference == "The birch canoe slid."
    for blank in ("", "  \n "):  # validation would skip the case: refused, nothing saved
        with pytest.raises(gr.Error, match="reference is empty"):
            _save(store, case, "fixed", blank, "", "", "", "", "")
    assert (store.get_case(case.id).reference, store.get_case(case.id).status) == ("The birch canoe slid.", "confirmed")


def test_review_refuses_a_label_named_as_an_export_column_and_an_export_that_meets_one(tmp_path, speech_wav):
    """A label ``file_name`` typed in Other labels was saved, then dropped from every export without a word."""
    import sqlite3

    from dashboard.config import DashboardConfig
    from dashboard.pages.review import _export, _save
    from dashboard.review_view import Filters
    from evaluation.store import Store

    store = Store(tmp_path)
    case = store.add_case("test_case", str(speech_wav), transcript="a test", reference="a test")
    with pytest.raises(gr.Error, match=r"Other labels, label 'file_name': every export .*; nothing was saved\."):
        _save(store, case, "confirmed", "a test", "", "", "", "mic=3\nfile_name=take-3.wav", "")
    assert (store.get_case(case.id).status, store.get_case(case.id).labels) == ("new", {})
    with sqlite3.connect(store.db_path) as conn:  # saved so before the rule
        conn.execute('UPDATE cases SET labels = \'{"Text": "x"}\'')
    with pytest.raises(gr.Error, match=f"case {case.id}: label 'Text': .* on Review, then export again"):
        _export(store, DashboardConfig(data_dir=tmp_path), "csv", Filters("all", "all", "all", "all"))


def test_review_save_keeps_the_order_of_labels_and_rows(tmp_path, speech_wav):
    """Review built the label set from its boxes (other labels, then accent, noise, device), so a save, even with
    nothing changed, moved a Record take's labels about in the table; they keep their order now, new ones after."""
    from dashboard.pages.review import _save, _show
    from dashboard.review_view import Filters
    from dashboard.review_view import cases_table as _table
    from dashboard.shared import get_store

    store = get_store(tmp_path)
    profile = {"speaker": "tester-07", "accent": "Welsh", "device": "headset", "session": "s1", "prompt_id": "p01"}
    case = store.add_case("test_case", str(speech_wav), transcript="a test", reference="a test", labels=profile)
    store.add_case("flag", str(speech_wav), transcript="a test", reference="a tent", labels={"noise": "cafe"})
    every = Filters("all", "all", "all", "all")
    before = _table(store, every)
    opened, *_, status, reference, accent, noise, device, extra, notes = _show(store, case.id)
    _save(store, opened, status, reference, accent, noise, device, extra, notes)  # saved as shown
    assert list(store.get_case(case.id).labels) == list(profile)
    assert _table(store, every).equals(before)  # the same rows, in the same order, the same labels text
    _save(
        store, store.get_case(case.id), "confirmed", reference, "Scottish", "office", device, extra + "\nroom=b", notes
    )
    labels = store.get_case(case.id).labels
    assert list(labels) == [*profile, "room", "noise"] and labels["accent"] == "Scottish"  # changed in place
    assert list(_table(store, every)["id"]) == list(before["id"])


def test_review_edits_of_one_case_in_two_tabs_keep_both_or_refuse_the_clash(tmp_path, speech_wav):
    """Review wrote every box of its panel, so of two tabs open on one case the later save put back what the
    earlier one changed (a case confirmed in one tab went back to new when the other added a label), silently."""
    from dashboard.pages.review import _save, _show
    from dashboard.shared import get_store

    store = get_store(tmp_path)
    labels = {"accent": "Welsh", "speaker": "t-07"}
    case = store.add_case("test_case", str(speech_wav), transcript="a test", reference="a test", labels=labels)
    one, *_, status, reference, accent, noise, device, extra, notes = _show(store, case.id)  # tab 1 opens it
    two = _show(store, case.id)[0]  # and so does tab 2
    one = _save(store, one, "confirmed", reference, accent, noise, device, extra, notes)[2]  # tab 1 confirms it
    said, _, two, *boxes = _save(store, two, status, reference, accent, noise, "headset", extra, "mic check")
    saved = store.get_case(case.id)
    assert (saved.status, saved.labels["device"], saved.notes) == ("confirmed", "headset", "mic check")
    assert boxes[0] == "confirmed" and all(b == gr.skip() for b in boxes[1:]), boxes  # tab 2 now shows it
    assert "kept: status" in said
    _save(store, one, "fixed", reference, "Scottish", noise, device, extra, notes)  # device left as tab 1 shows it
    with pytest.raises(gr.Error, match=r"changed elsewhere.*status.*label accent.*nothing was saved"):
        _save(store, two, "wont_fix", reference, "Irish", noise, "headset", extra, "mic check")
    after = store.get_case(case.id)
    assert (after.status, after.labels["accent"], after.labels["device"]) == ("fixed", "Scottish", "headset")


def test_a_reload_on_a_finished_session_says_it_is_finished(tmp_path):
    """It said "Resumed session ... at prompt 3 / 3" under "Session finished", as if a prompt were left."""
    from dashboard.pages.record import RecordTab, _restore
    from evaluation.prompts import parse_pasted
    from evaluation.recordstore import SpeakerProfile
    from evaluation.store import Store

    store = Store(tmp_path)
    script = store.recordings.save_script("two", parse_pasted("One.\nTwo."), "pasted")
    session = store.recordings.start_session(script.id, SpeakerProfile("t-1", "Welsh").validate())
    assert "at prompt 1 / 2" in _restore(store, RecordTab(), session.id)[5]
    store.recordings.skip(session.id, 0)
    store.recordings.skip(session.id, 1)
    note = _restore(store, RecordTab(), session.id)[5]
    assert "is finished" in note and "prompt" not in note


def test_playback_keeps_the_take_level_and_gradio_warns_nothing(speech_wav):
    """Float samples handed to gr.Audio were divided by their peak: a take 30 dB too quiet played back at full
    scale (and the server logged Gradio's UserWarning for every playback)."""
    import warnings

    import soundfile as sf

    from asr.audio import SAMPLE_RATE, load_audio
    from dashboard.shared import player_audio

    quiet = load_audio(speech_wav) * 0.03
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the float conversion's UserWarning would fail here
        served = gr.Audio(type="numpy").postprocess(player_audio(quiet))
    played, rate = sf.read(served.path, dtype="float32")
    assert rate == SAMPLE_RATE and len(played) == len(quiet)
    assert abs(float(abs(played).max()) - float(abs(quiet).max())) < 1e-3  # its own peak, not 1.0
    assert float(abs(played).max()) < 0.1


def test_a_refusal_is_one_log_line_and_a_bug_keeps_its_traceback(caplog):
    """Gradio's queue prints a traceback unless the exception is a ``gr.Error`` with ``print_exception`` off:
    the app's refusals turn it off and log one line; anything else passes through untouched."""
    import asyncio

    from dashboard.app import DashboardBlocks

    def refuse():
        raise gr.Error("Pick a case\n  in the table first.")

    def bug():
        raise RuntimeError("a real bug")

    with DashboardBlocks() as demo:
        button, out = gr.Button(), gr.Textbox()
        button.click(refuse, None, out)
        button.click(bug, None, out)
    refused, failed = demo.fns.values()
    caplog.set_level("INFO", logger="dashboard")
    with pytest.raises(gr.Error) as refusal:
        asyncio.run(demo.process_api(block_fn=refused, inputs=[]))
    assert refusal.value.print_exception is False  # Gradio's queue prints no traceback for it
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "refused: Pick a case in the table first.")
    ]
    caplog.clear()
    with pytest.raises(RuntimeError, match="a real bug") as crash:
        asyncio.run(demo.process_api(block_fn=failed, inputs=[]))
    assert not isinstance(crash.value, gr.Error)  # Gradio prints its traceback, as before
    assert not [r for r in caplog.records if "refused" in r.getMessage()]
