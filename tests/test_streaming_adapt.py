"""The catch-up rule (asr.streaming.adapt): scripted lags and round sizes give the decoding each window gets."""

from __future__ import annotations

import pytest

from asr.streaming.adapt import window_mode
from asr.streaming.options import StreamOptions

OPTS = StreamOptions()


def test_a_lagging_session_decodes_greedily_until_it_is_back_under_the_threshold():
    threshold = OPTS.catchup_lag_seconds
    lags = [0.5, threshold, threshold + 0.01, 2 * threshold, threshold + 0.5, threshold - 0.01, 0.3]
    modes = [window_mode(OPTS, 1, lag) for lag in lags]
    assert [m.decode.beam_size for m in modes] == [3, 3, 1, 1, 1, 3, 3]
    assert [m.catching_up for m in modes] == [False, False, True, True, True, False, False]
    assert [m.short_trim for m in modes] == [m.catching_up for m in modes]
    # only the beam changes: the rest of the decoding is the session's own
    assert modes[2].decode == OPTS.decode.replace(beam_size=1) and modes[0].decode == OPTS.decode


def test_a_busy_round_is_greedy_whatever_the_lag_but_is_not_catch_up():
    busy = window_mode(OPTS, OPTS.greedy_from_windows, 0.0)
    assert busy.decode.beam_size == 1 and busy.short_trim and not busy.catching_up
    both = window_mode(OPTS, OPTS.greedy_from_windows, 10.0)
    assert both.decode.beam_size == 1 and both.short_trim and both.catching_up
    assert window_mode(OPTS, OPTS.greedy_from_windows - 1, 0.0).decode.beam_size == 3


def test_no_threshold_never_catches_up_and_greedy_sessions_still_count_their_catch_up_windows():
    never = OPTS.replace(catchup_lag_seconds=None)
    assert not any(window_mode(never, 1, lag).catching_up for lag in (0.0, 5.0, 1000.0))
    assert window_mode(never, 1, 1000.0).decode.beam_size == 3
    greedy = OPTS.replace(decode=OPTS.decode.replace(beam_size=1))
    mode = window_mode(greedy, 1, 10.0)
    assert mode.catching_up and mode.short_trim and mode.decode == greedy.decode


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_threshold_that_is_not_positive_is_refused_quoting_it(bad):
    with pytest.raises(ValueError, match=rf"catchup_lag_seconds must be > 0 or None, not {bad!r}"):
        OPTS.replace(catchup_lag_seconds=bad)
