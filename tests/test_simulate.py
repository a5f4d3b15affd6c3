"""The simulated live clock (asr.streaming.simulate): typed records a latency or flip measure can rely on."""

from __future__ import annotations

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from asr.streaming.policy import StreamOptions
from asr.streaming.simulate import simulate
from tests.conftest import wer


@pytest.fixture(scope="module")
def run(speech_wav, fw_backend):
    audio = load_audio(speech_wav)
    return audio, simulate(audio, fw_backend, StreamOptions(keep_recording=False), sessions=2, chunk_seconds=0.5)


def test_committed_words_rebuild_each_sessions_text(run, speech_text):
    audio, stream = run
    assert stream.audio_seconds == pytest.approx(audio.size / SAMPLE_RATE)
    assert len(stream.texts) == 2 and stream.texts[0] == stream.texts[1]
    for session, text in enumerate(stream.texts):
        words = [w for w in stream.words if w.session == session]
        assert "".join(w.text for w in words).strip() == text
    assert wer(speech_text, stream.texts[0]) <= 0.3, stream.texts[0]


def test_times_are_causal_and_ordered(run):
    _, stream = run
    arrival_slack = 0.5 + 0.05  # a word's audio ends at most one chunk (plus timestamp slack) before it arrives
    for w in stream.words:
        assert 0 <= w.start <= w.end <= stream.audio_seconds + 0.05
        assert w.commit_time >= w.end - arrival_slack, w
    commits = [w.commit_time for w in stream.words]
    assert commits == sorted(commits)
    clocks = [r.clock for r in stream.rounds]
    assert clocks == sorted(clocks) and all(r.compute_seconds > 0 and r.windows >= 1 for r in stream.rounds)
    assert stream.clock_seconds >= stream.audio_seconds
    lat = stream.latencies()
    assert lat.size == len(stream.words) == stream.latencies(0).size + stream.latencies(1).size
    assert np.all(lat > -arrival_slack) and float(np.median(lat)) > 0


def test_updates_record_what_each_session_showed(run):
    _, stream = run
    for session in (0, 1):
        shown = [u for u in stream.updates if u.session == session]
        committed = [u.committed for u in shown]
        assert all(later.startswith(earlier) for earlier, later in zip(committed, committed[1:], strict=False))
        assert shown[-1].committed == stream.texts[session] and shown[-1].tentative == ""
        assert any(u.tentative for u in shown)  # something was shown before it was final


def test_bad_arguments_are_refused(fw_backend):
    with pytest.raises(ValueError, match="sessions"):
        simulate(np.zeros(SAMPLE_RATE, np.float32), fw_backend, sessions=0)
    with pytest.raises(ValueError, match="chunk_seconds"):
        simulate(np.zeros(SAMPLE_RATE, np.float32), fw_backend, chunk_seconds=0)


def test_cpu_share_out_of_range_is_refused(fw_backend):
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"cpu_share must be > 0 and <= 1, not {bad!r}"):
            simulate(np.zeros(SAMPLE_RATE, np.float32), fw_backend, cpu_share=bad)


def test_a_lagging_session_catches_up_on_a_shared_cpu(fw_backend):
    """The joined real file's first 30 s on a fifth of the CPU (modelled clock, so the same on every run): with
    beam search throughout, the lag grows with the buffer (each late window is longer, so costlier); catch-up
    windows (greedy, shorter trim) keep it bounded, at the cost of a few words."""
    from tests.test_real_speech import _joined_file_clip

    clip = _joined_file_clip(0.0, 30.0)
    runs = {}
    for threshold in (None, StreamOptions().catchup_lag_seconds):
        options = StreamOptions(keep_recording=False, catchup_lag_seconds=threshold)
        runs[threshold] = simulate(clip, fw_backend, options, clock="modelled", cpu_share=0.2)
    off, on = runs[None], runs[StreamOptions().catchup_lag_seconds]

    def max_lag(stream, first: float, last: float) -> float:
        return max(r.lag_seconds for r in stream.rounds if first <= r.clock < last)

    assert off.catchup_windows == (0,) and on.catchup_windows[0] >= 3, on.catchup_windows
    assert off.cpu_share == on.cpu_share == 0.2
    assert max_lag(off, 15.0, 40.0) >= max_lag(off, 3.0, 15.0) + 1.0  # grows without the rule
    assert max_lag(on, 3.0, 40.0) <= 2.5  # bounded with it
    assert max_lag(off, 15.0, 40.0) >= max_lag(on, 15.0, 40.0) + 1.0
    assert on.max_lag_seconds < off.max_lag_seconds
    assert np.percentile(on.latencies(), 95) < np.percentile(off.latencies(), 95)
    assert wer(off.texts[0], on.texts[0]) <= 0.15, (off.texts[0], on.texts[0])
