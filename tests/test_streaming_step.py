"""How often the streaming policy decodes, with chunks framed as the browser's are.

The policy sees audio as 32 ms VAD frames, and a browser chunk is not a whole number of them (0.5 s is 15.625):
``asr.vad.StreamingVad`` carries the rest of a frame to the next chunk, so a 0.5 s chunk adds 15 or 16 frames
(0.48 or 0.512 s). The step (``StreamOptions.step_seconds``, 0.5 s) is compared in seconds, so after a chunk of 15
frames it waits for the next chunk: with 0.5 s chunks steps come 1.0 and 0.5 s apart in turn, 1.25 a second.
That is what every streaming figure on main was measured with; a step per chunk (the step in whole frames) and a
step per two chunks were measured against it in session 18 (docs/performance-log.md, "the step and the VAD's
frames"), and neither is taken yet. These tests pin what the policy does, so a change to it is a decision.
"""

from __future__ import annotations

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.streaming.policy import Hypothesis, StreamOptions, StreamPolicy
from asr.vad import FRAME, StreamingVad

OPTS = StreamOptions(first_window_seconds=0.0)  # every step counts, the utterance's first window included


def chunk_frames(chunk_seconds: float, chunks: int) -> list[int]:
    """VAD frames each chunk adds: complete 512-sample frames, the remainder carried to the next chunk."""
    n = int(round(chunk_seconds * SAMPLE_RATE))
    return [((k + 1) * n) // FRAME - (k * n) // FRAME for k in range(chunks)]


def planned_at(chunk_seconds: float, seconds: float, options: StreamOptions = OPTS) -> list[float]:
    """Audio received (seconds) at each planned request over ``seconds`` of continuous speech, one plan per chunk
    as the worker does when it keeps up; every request is answered at once with no words."""
    policy, times = StreamPolicy(options), []
    chunks = int(round(seconds / chunk_seconds))
    for k, n in enumerate(chunk_frames(chunk_seconds, chunks)):
        policy.insert(np.full(n, 0.95, np.float32))
        request = policy.plan()
        if request is not None:
            assert not request.flush and request.end == pytest.approx(policy.audio_end)
            times.append(round((k + 1) * chunk_seconds, 6))
            policy.step(request, Hypothesis((), ()))
        assert policy.plan() is None  # never a second request before the next chunk
    return times


def test_scripted_chunks_are_framed_as_the_streaming_vad_frames_them():
    for chunk_seconds in (0.5, 0.3):
        n = int(round(chunk_seconds * SAMPLE_RATE))
        vad = StreamingVad()
        got = [vad.accept(np.zeros(n, np.float32)).size for _ in range(16)]
        assert got == chunk_frames(chunk_seconds, 16)
    assert chunk_frames(0.5, 8) == [15, 16, 15, 16, 16, 15, 16, 16]  # 0.48 or 0.512 s, never 0.5


@pytest.mark.parametrize(
    ("chunk_seconds", "steps", "apart"),
    [
        (0.5, 15, {0.5, 1.0}),  # the browser's chunk: a chunk of 15 frames is short of 0.5 s, its step waits
        (0.25, 19, {0.5, 0.75}),  # two chunks of 0.25 s are 31 frames now and then: short of 0.5 s too
        (1.0, 12, {1.0}),  # one a chunk: a longer chunk is never split into two steps
        (0.3, 20, {0.6}),  # every second chunk: one chunk (9 or 10 frames) is short of the step
    ],
)
def test_steps_follow_the_vad_frames_not_the_chunks(chunk_seconds, steps, apart):
    times = planned_at(chunk_seconds, 12.0)
    assert len(times) == steps
    assert set(np.round(np.diff(times), 6)) == apart
