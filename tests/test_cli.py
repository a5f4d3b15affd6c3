"""``python -m asr`` as a tester runs it: exit codes, one-line errors, JSON, subtitles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True, env=ENV, timeout=300)


def test_models_lists_the_default():
    out = run("models")
    assert out.returncode == 0
    assert "whisper-tiny.en*" in out.stdout and "present" in out.stdout


def test_json_per_file_and_failures_named_without_traceback(speech_wav, tmp_path):
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio at all")
    out = run("transcribe", str(speech_wav), str(broken), str(tmp_path / "missing.wav"), "--json")
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 1
    record = lines[0]
    for key in ("file", "text", "words", "segments", "language", "duration", "compute_seconds", "model", "backend"):
        assert key in record
    assert record["file"] == str(speech_wav) and "smooth" in record["text"].lower()
    assert set(record["words"][0]) == {"word", "start", "end", "probability"}
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in out.stderr
    assert "broken.flac" in errors[0] and "missing.wav: no such file" in errors[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transcribe"], "the following arguments are required: FILE"),
        (["transcribe", "x.wav", "--beam-size", "x"], "argument --beam-size: must be an integer >= 1, not 'x'"),
        (["transcribe", "x.wav", "--beam-size", "0"], "argument --beam-size: must be an integer >= 1, not '0'"),
        (["transcribe", "x.wav", "--format", "doc"], "argument --format: invalid choice: 'doc'"),
        (["transcribe", "x.wav", "--bogus"], "unrecognized arguments: --bogus"),
        # whichever came last won, unsaid: --json --format srt printed subtitles to a script that reads JSON
        (["transcribe", "x.wav", "--json", "--format", "srt"], "--json and --format srt contradict each other"),
        (["transcribe", "x.wav", "--format", "text", "--json"], "--json and --format text contradict each other"),
    ],
)
def test_a_bad_argument_is_one_line_not_the_usage_text(args, message):
    """argparse printed its 8-line usage text first; every other error of the CLI is one line."""
    out = run(*args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_bad_paths_are_said_before_the_model_loads(speech_wav, tmp_path):
    """`transcribe ""` said "error: : is a folder, not an audio file", and a missing file was reported only after
    the model had loaded. With a model folder that resolves but cannot load, bad paths alone get their lines and
    exit 1 (so nothing was loaded); with a good file among them, the load is tried and fails (exit 2, one line)."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a CTranslate2 model")
    (broken / "config.json").write_text("{}")
    missing = str(tmp_path / "missing.wav")
    out = run("transcribe", "", missing, "--model", str(broken))
    assert out.returncode == 1 and out.stdout == "", out.stderr
    assert out.stderr.splitlines() == [
        "error: an empty file name: give the path of an audio file",
        f"error: {missing}: no such file",
    ]
    out = run("transcribe", missing, str(speech_wav), "--model", str(broken))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"error: cannot load model {str(broken)!r} with faster-whisper: ")


def test_unknown_model_exits_2_with_one_line():
    out = run("transcribe", "x.wav", "--model", "whisper-nope")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "whisper-tiny.en" in out.stderr


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("xx", "language 'xx' is not a Whisper language code (en, fr, de, es, zh, ...; python -m asr languages lists"),
        ("FR", "--language fr: whisper-tiny.en is English-only"),
    ],
)
def test_a_language_the_model_cannot_decode_exits_2_with_one_line(speech_wav, language, message):
    """``xx`` failed every file of the batch with the tokenizer's error (exit 1); ``fr`` on tiny.en was ignored."""
    out = run("transcribe", str(speech_wav), str(speech_wav), "--language", language)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_language_codes_in_any_case_and_the_list_of_them(speech_wav):
    """``--language EN`` (or ``En``) was refused as "not a Whisper language code"; it is en, and the JSON says so.
    ``--format json`` beside ``--json`` agrees with it and is taken."""
    lower = json.loads(run("transcribe", str(speech_wav), "--language", "en", "--json").stdout)
    for code in ("EN", " En "):
        out = run("transcribe", str(speech_wav), "--language", code, "--format", "json", "--json")
        assert out.returncode == 0, out.stderr
        record = json.loads(out.stdout)
        assert record["options"]["language"] == "en" and record["text"] == lower["text"]
    listed = run("languages")
    codes = listed.stdout.split("\n100 codes")[0].split()
    assert listed.returncode == 0 and len(codes) == 100 and {"en", "fr", "yue"} <= set(codes)


@pytest.mark.parametrize("backend", ["faster-whisper", "transformers"])
def test_hub_id_offline_exits_2_with_one_line(backend, tmp_path):
    """Without a hub a hub id used to exit 1 with a 71-line chained traceback (transformers: exit 2, two lines),
    then the library's "We couldn't connect to 'https://huggingface.co'": now what is available offline."""
    out = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", "x.wav", "--model", "openai/whisper-base.en", "--backend", backend],
        capture_output=True,
        text=True,
        env={**ENV, "TRANSFORMERS_OFFLINE": "1", "ASRQA_CACHE": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "'openai/whisper-base.en' is not in the Hugging Face cache" in out.stderr
    assert "HF_HUB_OFFLINE=1" in out.stderr and "available offline: whisper-tiny.en" in out.stderr


def hub_cache_layout(cache: Path, repo_id: str, files: Path) -> None:
    """A repository laid out as the hub client caches it (refs/main, snapshots/COMMIT), its files linked to FILES."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in files.iterdir():
        (snapshot / file.name).symlink_to(file)


def test_hub_id_in_the_hugging_face_cache_transcribes_offline(speech_wav, tmp_path):
    """The offline refusal must not block an id the cache holds: a CTranslate2 repository laid out as the hub
    client caches it (refs/main, snapshots/COMMIT), its files linked to the bundled tiny.en, loads and transcribes."""
    from asr.models import resolve

    hub_cache_layout(tmp_path / "hub", "test-org/faster-whisper-tiny-en", Path(resolve("whisper-tiny.en").path))
    env = {**ENV, "ASRQA_CACHE": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")}
    out = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", str(speech_wav), "--model", "test-org/faster-whisper-tiny-en"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "smooth" in out.stdout.lower()


def no_hub_env(tmp_path: Path) -> dict[str, str]:
    """Offline mode unset and the hub endpoint a local port nothing listens on: a user with no network."""
    from tests.test_models import closed_port

    port = closed_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {
        **env,
        "HF_ENDPOINT": f"http://127.0.0.1:{port}",
        "ASRQA_CACHE": str(tmp_path),
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }


@pytest.mark.parametrize("command", [["asr", "transcribe", "x.wav"], ["evaluation", "run", "--limit", "1"]])
def test_an_unreachable_hub_is_one_line_at_once_for_an_uncached_id(command, tmp_path):
    """With offline mode unset and no hub, the hub client retried silently for about 25 s before its "We couldn't
    connect" line; a probe of the endpoint now says so at once (0.4 s here), exit 2, in both command lines."""
    args = [*command, "--model", "openai/whisper-small"]
    if command[0] == "evaluation":
        args += ["--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=no_hub_env(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "cannot reach the Hugging Face hub (127.0.0.1) and openai/whisper-small is not cached" in out.stderr
    assert "available offline: whisper-tiny.en" in out.stderr and not (tmp_path / "out").exists()


def test_a_cached_hub_id_transcribes_with_no_hub(speech_wav, tmp_path):
    """A Hugging Face model in the hub cache, offline mode unset and no hub: the client retried each optional
    file it lacks (3 to 5 min); offline mode is now switched on while the hub cannot be reached."""
    from asr.convert import hf_model_dir
    from asr.models import resolve

    hub_cache_layout(tmp_path / "hub", "test-org/whisper-tiny-en", hf_model_dir(resolve("whisper-tiny.en")))
    out = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", str(speech_wav), "--model", "test-org/whisper-tiny-en"]
        + ["--backend", "transformers"],
        capture_output=True,
        text=True,
        env=no_hub_env(tmp_path),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "smooth" in out.stdout.lower()


def test_the_hub_client_s_retries_are_not_logged_line_by_line():
    """A hub id with no network (HF_HUB_OFFLINE unset) logged each of the hub client's retries twice, 24 lines
    before the one-line error; they show with --debug only, once each (asr/logs.py). (The retry itself takes 25 s:
    logged here directly.)"""
    code = (
        "import sys; from asr.cli import main; code = main(sys.argv[1:]);"
        "from huggingface_hub.utils import logging as hub;"
        "hub.get_logger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].')"
    )
    for debug, lines in (([], 0), (["--debug"], 1)):
        done = subprocess.run(
            [sys.executable, "-c", code, *debug, "models"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and len(done.stderr.splitlines()) == lines, done.stderr


@pytest.mark.parametrize(("fmt", "marker"), [("srt", " --> "), ("vtt", "WEBVTT")])
def test_subtitles(speech_wav, fmt, marker):
    out = run("transcribe", str(speech_wav), "--format", fmt)
    assert out.returncode == 0 and marker in out.stdout
    if fmt == "srt":
        assert out.stdout.startswith("1\n00:00:0")


def test_subtitles_of_several_files_say_which_file_each_cue_belongs_to(speech_wav, tmp_path):
    """Each file's cues start at 1 again: they used to run on from one file into the next with nothing between."""
    other = tmp_path / "other.wav"
    other.write_bytes(speech_wav.read_bytes())
    out = run("transcribe", str(speech_wav), str(other), "--format", "srt")
    assert out.returncode == 0
    first, second = out.stdout.split(f"# {other}\n")
    assert first.startswith(f"# {speech_wav}\n1\n00:00:0") and second.startswith("1\n00:00:0")
    assert second == first.split("\n", 1)[1]  # the same audio, the same cues


def test_word_timestamps_text(speech_wav):
    out = run("transcribe", str(speech_wav), "--word-timestamps")
    assert out.returncode == 0
    assert "->" in out.stdout and "smooth" in out.stdout


def test_bench_is_the_side_by_side_benchmark_on_a_file_or_a_dataset(tmp_path):
    """``python -m asr bench`` runs ``python -m benchmarks asr``; a missing dataset folder is one line, exit 2."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    usage = subprocess.run([sys.executable, "-m", "asr", "bench", "--help"], capture_output=True, text=True, env=env)
    assert usage.returncode == 0 and "an audio file, or a dataset" in usage.stdout
    assert usage.stdout.startswith("usage: python -m asr bench [-h]")  # was "python -m benchmarks asr", not typed
    missing = str(tmp_path / "no-such-set")
    out = subprocess.run([sys.executable, "-m", "asr", "bench", missing], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not found" in out.stderr, out.stderr
    assert out.stderr.startswith("asr bench: ")  # was "benchmarks asr: "
    for extra, said in (
        (["--bogus"], "python -m asr bench: error: unrecognized arguments: --bogus"),
        (["--isolated", missing + ".wav"], f"asr bench --isolated: {missing}.wav: no such file"),
    ):
        out = subprocess.run([sys.executable, "-m", "asr", "bench", *extra], capture_output=True, text=True, env=env)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == said, out.stderr


def _bad_and_good_files(real_set, folder):
    """A real prompt in every shape a tester may hand over, and every kind of broken file, side by side."""
    import numpy as np
    import soundfile as sf
    import soxr

    speech, rate = sf.read(real_set / "audio/en/conf-getpin.wav", dtype="float32")  # 8 kHz telephone prompt
    at16 = soxr.resample(speech, rate, 16_000, quality="HQ").astype(np.float32)
    at48 = soxr.resample(speech, rate, 48_000, quality="HQ").astype(np.float32)
    good = {
        "8k.wav": (speech, rate, "PCM_16"),
        "48k-stereo.wav": (np.stack([at48, at48 * 0.5], 1), 48_000, "PCM_16"),
        "six-channels.wav": (np.stack([at16 * (0.3 + 0.1 * i) for i in range(6)], 1), 16_000, "PCM_16"),
        "uint8.wav": (at16, 16_000, "PCM_U8"),
        "float64.wav": (at16.astype(np.float64), 16_000, "DOUBLE"),
        "loud.wav": (at16 * 7.5, 16_000, "FLOAT"),
        "silence.wav": (np.zeros(5 * 16_000, np.float32), 16_000, "PCM_16"),
    }
    for name, (samples, sample_rate, subtype) in good.items():
        sf.write(folder / name, samples, sample_rate, subtype=subtype)
    nan = at16.copy()
    nan[1000] = np.nan
    sf.write(folder / "nan.wav", nan, 16_000, subtype="FLOAT")
    sf.write(folder / "zero-length.wav", np.zeros(0, np.int16), 16_000, subtype="PCM_16")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.wav").write_bytes(np.random.default_rng(0).bytes(50_000))
    whole = (folder / "8k.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (folder / "a-folder").mkdir()
    bad = {
        "nan.wav": "1 sample(s) are NaN or infinite",
        "zero-length.wav": "the audio is empty",
        "empty.wav": "the file is empty",
        "random.wav": "not a decodable audio file",
        "truncated.wav": "truncated",
        "a-folder": "is a folder",
        "missing.wav": "no such file",
    }
    return list(good), bad


def test_a_batch_of_bad_files_gives_one_line_each_and_keeps_every_good_result(real_set, tmp_path, fw_backend):
    """Each broken file is one line naming it (no traceback, no second log line), every good one is transcribed
    as the engine transcribes it, and a loud float file gets exactly one warning line."""
    from asr.transcribe import transcribe

    good, bad = _bad_and_good_files(real_set, tmp_path)
    names = [n for pair in zip(good, bad) for n in pair] + good[len(bad) :]  # bad files between the good ones
    out = run("transcribe", *(str(tmp_path / n) for n in names), "--json")
    assert out.returncode == 1
    records = {Path(r["file"]).name: r for r in map(json.loads, out.stdout.splitlines())}
    assert list(records) == good
    for name in good:
        assert records[name]["text"] == transcribe(tmp_path / name, backend=fw_backend).text, name
    assert "pin number" in records["8k.wav"]["text"].lower() and records["silence.wav"]["text"] == ""
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and len(lines) == len(bad) + 1, out.stderr
    for name, problem in bad.items():
        line = next(line for line in lines if name in line)
        assert line.startswith(f"error: {tmp_path / name}: ") and line.count(str(tmp_path)) == 1 and problem in line
    assert lines.count(f"warning: {records['loud.wav']['warnings'][0]}") == 1


@pytest.mark.parametrize(("stop", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_keeps_the_transcripts_printed_and_names_the_files_left(real_set, tmp_path, stop, status):
    """Ctrl-C printed a 47-line KeyboardInterrupt traceback from inside the encoder. SIGTERM (kill, timeout, a CI
    job's time limit) ended the process with nothing said: it now does as Ctrl-C, exit 143."""
    import signal
    import time

    short, long = real_set / "audio/en/conf-getpin.wav", real_set / "long/en-dev-long.wav"
    command = [sys.executable, "-m", "asr", "transcribe", str(short), str(long), str(short)]
    # a shell's background job (CI started with "&") ignores SIGINT, and so would the child: Ctrl-C's default
    # back; PYTHONUNBUFFERED off, so the first transcript must arrive because the CLI flushes it, not by luck
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore
    )
    assert proc.stdout.readline() == f"# {short}\n"
    first = proc.stdout.readline()  # the first file is done: the second (13 minutes) is being transcribed
    time.sleep(1)
    proc.send_signal(getattr(signal, stop))
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == status and "pin number" in first.lower() and rest == ""
    assert err == f"interrupted: {long} and the 1 file(s) after it not transcribed\n"


def test_the_progress_bar_on_a_terminal_counts_audio_seconds_per_second(real_set):
    """The bar began at the first batch's end, so it showed that batch as done in no time ("13502211.51s/s")."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm needs a width
    command = [sys.executable, "-m", "asr", "transcribe", str(real_set / "long/en-dev-joined.wav")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL, env=ENV)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=300) == 0
    rates = [float(r) for r in re.findall(rb"([0-9.]+)s/s", shown)]
    assert b"/495 [" in shown and rates and max(rates) < 1000, shown[-500:]  # tiny.en: tens of audio s per s
    assert b"\ren-dev-joined.wav:" in shown, shown[-500:]  # the name, not the path's last 30 characters


def test_an_error_message_names_its_file_once(tmp_path):
    """The CLI and noise files each checked whether the engine's message named the file; one helper does it now."""
    from asr.audio import AudioError, load_audio, naming_file

    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is no audio at all" * 10)
    with pytest.raises(AudioError) as caught:
        load_audio(junk)
    message = naming_file(junk, caught.value)
    assert message.startswith(f"{junk}") and message.count(str(junk)) == 1, message
    assert naming_file(junk, OSError("Permission denied")) == f"{junk}: Permission denied"


def test_every_transcribe_option_says_what_it_does_and_help_gives_the_exit_codes():
    """`transcribe --help` listed FILE, --backend, --device and --format bare, and never said the exit codes."""
    import argparse

    from asr.cli import _parser

    parser = _parser()
    transcribe = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["transcribe"]
    bare = [a.dest for a in transcribe._actions if not a.help]
    assert bare == [] and "Exit 0" in transcribe.description, bare
    assert "130 for Ctrl-C and 143 for SIGTERM" in transcribe.description
    assert "(default whisper-tiny.en)" in transcribe.format_help()


def test_a_file_named_dash_is_audio_piped_in(real_set, fw_backend):
    """`cat talk.wav | python -m asr transcribe -` said "-: no such file"."""
    from asr.transcribe import transcribe

    data = (real_set / "audio/en/conf-getpin.wav").read_bytes()
    command = [sys.executable, "-m", "asr", "transcribe", "-", "--json"]
    out = subprocess.run(command, input=data, capture_output=True, env=ENV, timeout=300)
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    record = json.loads(out.stdout)
    assert record["file"] == "-" and record["text"] == transcribe(data, backend=fw_backend).text
    for piped, problem in ((b"", "nothing on standard input"), (b"no audio" * 50, "not a decodable audio file")):
        out = subprocess.run(command, input=piped, capture_output=True, env=ENV, timeout=300)
        err = out.stderr.decode()
        assert out.returncode == 1 and err.count("\n") == 1 and err.startswith("error: ") and problem in err, err
        assert "standard input" in err and "uploaded" not in err, err


def test_a_pipe_named_as_a_file_is_read_and_a_device_refused(real_set, fw_backend, tmp_path):
    """bash's `<(sox ... -t wav -)` names a pipe, whose size is 0: it said "/dev/fd/63: the file is empty", as did
    /dev/zero, a device that never ends."""
    from asr.transcribe import transcribe

    clip = real_set / "audio/en/conf-getpin.wav"
    command = f'exec "{sys.executable}" -m asr transcribe --json <(cat "{clip}") /dev/zero'
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, timeout=300)
    record = json.loads(out.stdout)
    assert record["file"].startswith("/dev/fd/") and record["text"] == transcribe(clip, backend=fw_backend).text
    assert (
        out.returncode == 1 and out.stderr == "error: /dev/zero: not a regular file (a device?); give an audio file\n"
    )
