"""How a stream is cut, decoded and committed: :class:`StreamOptions`, the settings the policy, the session and the
scheduler read (a module of its own so the policy's state machine stays one screenful of rules)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from asr.results import DecodeOptions
from asr.vad import MAX_WINDOW_SECONDS


def _default_decode() -> DecodeOptions:
    """Beam search of 3, word times on, and the encoder fed the buffer (>= 10 s) rather than Whisper's 30 s.

    The short encoder window makes an update 2 to 4 times cheaper on CPU. On the 88 s benchmark file beam 3
    brought the committed text's WER from 16.5% to 13.2% (offline: 12.4%) for 1.4x the update cost; beam 5 did
    no better. Under load the scheduler drops to greedy (``StreamOptions.greedy_from_windows``), and so does a
    session that lags (``catchup_lag_seconds``; :mod:`asr.streaming.adapt`).
    """
    return DecodeOptions(
        beam_size=3,
        word_timestamps=True,
        vad_filter=False,
        batch_size=8,
        encoder_seconds=10.0,
        max_tokens_per_second=8.0,  # about twice fast speech; a hallucination loop stops there
        timestamp_tokens=False,  # streaming was tuned (forced prefix, commits) without Whisper's timestamp tokens
    )


@dataclass(frozen=True)
class StreamOptions:
    """How a stream is cut, decoded and committed. Change fields with :func:`dataclasses.replace`."""

    step_seconds: float = 0.5  # least new audio between two model calls on one session, compared with the audio
    # the VAD has framed (32 ms frames): a 0.5 s chunk adds 15 or 16, so with 0.5 s chunks steps come 1.0 and 0.5 s
    # apart in turn (tests/test_streaming_step.py; a step per chunk or per two chunks: README, Performance, session 18)
    first_window_seconds: float = 1.5  # an utterance's first window waits for this much buffer: its words never
    # commit (they wait for the next window to agree), so a 1 s first window was one encoder call in five spent on
    # a guess; joined real file 4.09% -> 4.27% committed WER (offline 3.74%), latency p50 1.36 -> 1.44 s
    trim_seconds: float = 15.0  # a longer buffer is cut at its last committed sentence or segment end
    max_buffer_seconds: float = 25.0  # hard limit, below Whisper's 30 s: cut at the last committed word
    vad_threshold: float = 0.5  # Silero speech probability above which a 32 ms frame is speech
    min_speech_seconds: float = 0.25  # less speech than this in the buffer does not wake the model (clicks)
    pause_seconds: float = 0.5  # silence this long after speech ends the utterance and commits all of it
    speech_pad_seconds: float = 0.4  # audio kept after speech stops (0.2 dropped soft final words: "press pound")
    onset_pad_seconds: float = 0.4  # audio kept before speech starts (0.2 cut "After the tone" to "Left to the tone")
    commit_margin_seconds: float = 0.0  # an agreed word needs this much audio after it before it is committed
    flush_heard_seconds: float | None = 0.2  # an utterance's end commits the last window's tentative words
    # without the flush's model call when that window reached this far past the VAD's speech end (None: never):
    # the flush would decode the same speech with only trailing silence added. Joined real file: committed WER
    # 4.27% either way, latency p50 1.44 s, 4% less compute; 0.0 cost it 0.8 points (5.07%)
    force_commit_seconds: float = 2.0  # a tentative word this far behind the newest audio is committed as it is
    prompt_chars: int = 200  # committed text fed back as the prompt (whisper_streaming's 200 characters)
    busy_trim_seconds: float = 13.0  # trim_seconds in such rounds: 4 sessions' commit latency p50 2.08 -> 1.90 s
    greedy_from_windows: int = 3  # a worker round with this many windows (sessions) decodes them greedily:
    # beam search costs 1.4x per window, which three or more live sessions on two cores cannot afford
    catchup_lag_seconds: float | None = 1.0  # a window that waited this long for the worker (audio received
    # beyond the point its step, first window or flush was due) decodes greedily and trims at busy_trim_seconds;
    # beam search returns once the session is back under (None: never). See asr.streaming.adapt
    force_prefix: bool = True  # force the committed words inside the buffer as the start of each hypothesis
    max_session_seconds: float = 3600.0  # audio beyond this is ignored (a runaway tab cannot stream forever)
    keep_recording: bool = True  # keep the whole recording (int16, in a temporary file) for saving test cases
    decode: DecodeOptions = field(default_factory=_default_decode)  # how each window is decoded

    def validate(self) -> StreamOptions:
        """Reject values that would break the buffer bounds, quoting the bad value."""
        positive = ("step_seconds", "trim_seconds", "max_buffer_seconds", "pause_seconds", "force_commit_seconds")
        positive += ("max_session_seconds",)
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)!r}")
        if not self.trim_seconds < self.max_buffer_seconds < MAX_WINDOW_SECONDS:
            raise ValueError(
                f"need trim_seconds < max_buffer_seconds < {MAX_WINDOW_SECONDS:g}, not "
                f"{self.trim_seconds!r} and {self.max_buffer_seconds!r}"
            )
        if not 0 < self.busy_trim_seconds <= self.trim_seconds:
            raise ValueError(
                f"need 0 < busy_trim_seconds <= trim_seconds, not busy_trim_seconds={self.busy_trim_seconds!r} "
                f"with trim_seconds={self.trim_seconds!r}"
            )
        if not 0 < self.vad_threshold < 1:
            raise ValueError(f"vad_threshold must be between 0 and 1, not {self.vad_threshold!r}")
        pads = (self.min_speech_seconds, self.speech_pad_seconds, self.onset_pad_seconds, self.commit_margin_seconds)
        pads += (self.first_window_seconds,)
        if min(pads) < 0:
            raise ValueError("min_speech, speech_pad, onset_pad, commit_margin and first_window seconds must be >= 0")
        if self.flush_heard_seconds is not None and not self.flush_heard_seconds >= 0:
            raise ValueError(f"flush_heard_seconds must be >= 0 or None, not {self.flush_heard_seconds!r}")
        if self.catchup_lag_seconds is not None and not self.catchup_lag_seconds > 0:
            raise ValueError(f"catchup_lag_seconds must be > 0 or None, not {self.catchup_lag_seconds!r}")
        if not isinstance(self.greedy_from_windows, int) or self.greedy_from_windows < 1:
            raise ValueError(f"greedy_from_windows must be an integer >= 1, not {self.greedy_from_windows!r}")
        if not isinstance(self.prompt_chars, int) or self.prompt_chars < 0:
            raise ValueError(f"prompt_chars must be an integer >= 0, not {self.prompt_chars!r}")
        self.decode.validate()
        return self

    def replace(self, **changes) -> StreamOptions:
        return dataclasses.replace(self, **changes).validate()
