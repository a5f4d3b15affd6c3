"""How a window's decoding adapts to the worker's load: a round shared by many sessions, or a session that lags.

Two signals make a window cheaper (greedy instead of beam search, the buffer trimmed at ``busy_trim_seconds``):

* **a busy round**: ``greedy_from_windows`` or more sessions are decoded in the same worker round;
* **a lagging session** (*catch-up*): the session's window waited more than ``catchup_lag_seconds`` for the
  worker. One session on a CPU shared with other work (a validation sweep beside it) otherwise stays behind:
  beam 3 costs more per update than real time allows, and each late round decodes a longer window, which costs
  more again. Greedy windows of a shorter buffer let it catch up; beam search returns as soon as a window is
  served in time again.

How late a window is: the audio received when it was planned minus the audio time from which the policy wanted
it (``Request.due``: the previous window's end plus ``step_seconds``, an utterance's first ``first_window_seconds``,
the ``pause_seconds`` before a flush). The lag a user sees (received minus processed, ``StreamUpdate.lag_seconds``)
also holds those waits of the policy's own: on the joined real file at the full CPU it is 1.0 s at the median
(a 0.5 s step waits for the second chunk when the first ends a VAD frame short) and 2.0 s at the most (an
utterance's first window), so a threshold on it either fires on a machine that keeps up or only long after one
that does not has fallen behind. A worker that keeps up serves a window at most one chunk late (0.52 s on that
file: 0.5 s and a VAD frame), so the default threshold of 1.0 s never fires there (the text is byte-identical).

A pure function of the options, the round's size and the lag the session measured (no clock, no state), so the
scheduler, the session and the tests all get the same answer for the same inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from asr.results import DecodeOptions
from asr.streaming.options import StreamOptions


@dataclass(frozen=True)
class WindowMode:
    """How one window is decoded and what its answer does to the buffer."""

    decode: DecodeOptions  # the options of the model call
    short_trim: bool  # the buffer is trimmed at busy_trim_seconds rather than trim_seconds
    catching_up: bool  # the session's lag chose this mode (counted in StreamUpdate.catchup_windows)


def window_mode(options: StreamOptions, windows: int, lag_seconds: float) -> WindowMode:
    """The mode of a window decoded in a round of ``windows`` windows, planned ``lag_seconds`` late."""
    busy = windows >= options.greedy_from_windows
    threshold = options.catchup_lag_seconds
    catching_up = threshold is not None and lag_seconds > threshold
    decode = options.decode
    if (busy or catching_up) and decode.beam_size > 1:
        decode = dataclasses.replace(decode, beam_size=1)
    return WindowMode(decode, busy or catching_up, catching_up)
