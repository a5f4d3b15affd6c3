"""Whisper's temperature fallback for batched windows, and the check that a window was decoded whole.

Batched decoding has no fallback of its own. Whisper decodes a window at temperature 0 and, when the text is
too repetitive (compression ratio above :data:`asr.results.COMPRESSION_RATIO_THRESHOLD`) or too unlikely (mean log
probability below :data:`asr.results.LOGPROB_THRESHOLD`), decodes it again at rising temperatures, keeping the
first retry that passes, else the likeliest among those not too repetitive. Here the same rule runs per window,
with two more. A text that compresses well counts as a loop only when it also outruns the audio (more than
:data:`LOOP_CHARACTERS_PER_SECOND` characters per second of the window): a prompt that really repeats itself ("the
conference will begin when our glorious leader arrives" said four times) is as long as its audio holds and is
kept, where a loop runs on past the speech (every loop measured: 82 or more characters per second). And
a retry that keeps fewer than half of the first decode's distinct words is never chosen (a repeating prompt is not
replaced by a shorter garbled sample). Retries are decoded from the encoding of
the first decode where the backend keeps it, and never depend on batch-mates: the transformers backend samples
each window alone under a seed made from the run seed and the window's audio; faster-whisper, whose sampler
cannot be seeded per call, decodes each "temperature" greedily with a rising repetition penalty instead (see
``asr/backends/faster_whisper.py``), which gives a window the same tokens alone or beside others.

A window can also end early: the decoder emits end-of-text after the first sentence of a 25 s window and the
rest is silently lost. :func:`undercovered` notices when the decoded words cover much less of the window than
the VAD found speech, and the caller decodes the window again in halves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import Backend, EncodedWindows, WindowResult
from asr.results import DecodeOptions, compression_ratio

LOOP_CHARACTERS_PER_SECOND = 25.0  # a repetitive text is a loop only above this many characters per second of its
# window: about twice an ordinary speaking rate (the median real-speech prompt of each of the five languages: 8.7 to
# 14.4 characters per second of its file). Characters, not words: a loop of "11-11-11-..." is one word, and
# languages differ in word length far more than in characters per second. The 7 windows of the held-out joined files
# that really repeat themselves (compression 2.4 to 3.4) run at 12.7 to 14.8 and were garbled by their retries;
# every loop the compression test caught on real speech, the synthetic set and the synthetic set in white noise at
# 5 dB ran at 82 to 946 (a 0.8 s "March" decoded to 112 "March."), and a loop that fills Whisper's 448 tokens
# runs at 50 or more in a 30 s window
KEEP_WORDS = 0.5  # a retry must keep at least this share of the first decode's distinct words
MIN_SPLIT_SECONDS = 8.0  # windows shorter than this are never split for coverage
UNCOVERED_SECONDS = 3.0  # speech after the last decoded word, beyond which a window is undercovered ...
UNCOVERED_SHARE = 0.3  # ... when it is also more than this share of the window
MIN_WORDS_PER_SECOND = 0.8  # without word times: fewer words than this per second of speech is undercovered


def needs_retry(result: WindowResult, options: DecodeOptions, seconds: float | None = None) -> bool:
    """Whisper's rule: too repetitive or too unlikely, unless the window is judged silence. Given the window's
    ``seconds``, a repetitive text is retried only when it outruns them (:data:`LOOP_CHARACTERS_PER_SECOND`)."""
    if result.silent or not result.text:
        return False
    repetitive = _repetitive(result, options, seconds)
    unlikely = options.logprob_threshold is not None and result.avg_logprob < options.logprob_threshold
    return repetitive or unlikely


def with_fallback(
    backend: Backend, windows: Sequence[np.ndarray], options: DecodeOptions
) -> tuple[list[WindowResult], list[bool]]:
    """``windows`` decoded in one batch, every window that needs it decoded again, and which windows were.

    The windows are encoded once (:meth:`Backend.encode_windows`) and every retry decodes from that encoding:
    at each temperature the windows still failing are decoded in one call, without words (the rules read only
    text and probabilities), and only the retry each window keeps is decoded again with its words."""
    encoded = backend.encode_windows(windows, options)
    first = encoded.decode(options)
    seconds = [w.size / SAMPLE_RATE for w in windows]
    pending = [i for i, r in enumerate(first) if options.fallback_temperatures and needs_retry(r, options, seconds[i])]
    tried = {i: [first[i]] for i in pending}
    passed: dict[int, WindowResult] = {}
    for temperature in options.fallback_temperatures:
        if not pending:
            break
        hot = options.replace(temperature=temperature, beam_size=1)
        for i, retry in zip(pending, encoded.decode(hot, pending, words=False)):
            tried[i].append(retry)
            if not needs_retry(retry, options, seconds[i]) and _keeps_words(retry, first[i]):
                passed[i] = retry
        pending = [i for i in pending if i not in passed]
    out = list(first)
    for i, results in tried.items():
        kept = passed[i] if i in passed else best_of(results, first[i], options, seconds[i])
        out[i] = _with_words(encoded, i, options, kept, first[i])
    return out, [i in tried for i in range(len(out))]


def _with_words(
    encoded: EncodedWindows, index: int, options: DecodeOptions, chosen: WindowResult, first: WindowResult
) -> WindowResult:
    if chosen is first or not options.word_timestamps:  # the first decode has its words; or none are wanted
        return chosen
    return encoded.decode(options.replace(temperature=chosen.temperature, beam_size=1), [index])[0]


def best_of(
    tried: Sequence[WindowResult], first: WindowResult, options: DecodeOptions, seconds: float | None = None
) -> WindowResult:
    """Whisper's choice when every temperature failed: the likeliest decode that is not too repetitive (else
    the likeliest), among those that kept most of the first decode's words (the first always qualifies)."""
    kept = [r for r in tried if r is first or _keeps_words(r, first)]
    fluent = [r for r in kept if not _repetitive(r, options, seconds)]
    return max(fluent or kept, key=lambda r: r.avg_logprob)


def _repetitive(result: WindowResult, options: DecodeOptions, seconds: float | None) -> bool:
    """Compresses better than Whisper's threshold and, given the window's ``seconds``, outruns them."""
    return repeats_itself(result.text, options) and _outruns(result.text, seconds)


def _outruns(text: str, seconds: float | None) -> bool:
    return seconds is None or len(text) > LOOP_CHARACTERS_PER_SECOND * seconds


def _distinct_words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _keeps_words(retry: WindowResult, first: WindowResult) -> bool:
    return len(_distinct_words(retry.text)) >= KEEP_WORDS * len(_distinct_words(first.text))


def repeats_itself(text: str, options: DecodeOptions) -> bool:
    """Whisper's compression test alone (above ``options.compression_ratio_threshold``, whatever the text's pace),
    as conditioning reads it: such a text is no prompt for the next window, and a window that came out so when
    prompted is decoded again without its prompt. Whisper resets its prompt after a decode that failed its tests for
    this reason: a repetitive context leads the next window into one more repeat or one fewer. The loop-rate
    exemption of :func:`needs_retry` protects a genuine repeat from a garbled retry; it does not make the text a
    good prompt, and an unprompted decode is no garbled retry (it is what an unconditioned run decodes). On the
    held-out prompts joined, the prompted windows whose speech really repeats itself ("the conference will begin
    when our glorious leader arrives", the volume menu) lost or gained a repeat: 98 -> 64 errors of 1687 words."""
    limit = options.compression_ratio_threshold
    return limit is not None and compression_ratio(text) > limit


def undercovered(result: WindowResult, seconds: float) -> bool:
    """True when a window of ``seconds`` of VAD speech was decoded into much less: fewer than
    :data:`MIN_WORDS_PER_SECOND` words per second of it, or a last word ending more than
    :data:`UNCOVERED_SECONDS` (and :data:`UNCOVERED_SHARE`) before the window does.

    The word rate is the test that catches a decode that stopped at its first sentence: the alignment stretches
    the few words it has over the whole window, so their times alone would not show it."""
    if seconds < MIN_SPLIT_SECONDS or result.silent:
        return False
    if len(result.text.split()) < MIN_WORDS_PER_SECOND * seconds:
        return True
    words = [w for s in result.segments for w in s.words]
    missing = seconds - words[-1].end if words else 0.0
    return missing > UNCOVERED_SECONDS and missing > UNCOVERED_SHARE * seconds
