"""Whisper's temperature fallback and the coverage check: the rules on made window results, then seeded
retries on the real tiny.en (the same window gives the same retry alone, in a batch and on every run)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.backends.base import WindowResult, window_seed
from asr.backends.seek import joined, seek_point
from asr.fallback import LOOP_CHARACTERS_PER_SECOND, best_of, needs_retry, undercovered
from asr.results import COMPRESSION_RATIO_THRESHOLD, LOGPROB_THRESHOLD, DecodeOptions, Segment, Word, compression_ratio

OPTIONS = DecodeOptions()
LOOP = "the the the the the the the the the the the the the the the the the the the the the the"


def _result(text: str, logprob: float = -0.3, no_speech: float = 0.0, silent: bool = False) -> WindowResult:
    segments = () if silent else (Segment(0.0, 1.0, text),)
    return WindowResult(segments, "en", logprob, no_speech, text, 0.0, silent)


def test_retry_on_repetition_or_low_likelihood_but_not_on_silence():
    assert compression_ratio(LOOP) > COMPRESSION_RATIO_THRESHOLD
    assert needs_retry(_result(LOOP), OPTIONS)
    assert needs_retry(_result("press one for sales", LOGPROB_THRESHOLD - 0.1), OPTIONS)
    assert not needs_retry(_result("press one for sales"), OPTIONS)
    assert not needs_retry(_result("uh", LOGPROB_THRESHOLD - 1, no_speech=0.9, silent=True), OPTIONS)


def test_a_repetitive_text_is_a_loop_only_when_it_outruns_its_window():
    fits = len(LOOP) / LOOP_CHARACTERS_PER_SECOND  # the seconds its 87 characters fit
    assert needs_retry(_result(LOOP), OPTIONS, seconds=fits - 0.1)  # it outruns them
    assert not needs_retry(_result(LOOP), OPTIONS, seconds=fits + 0.1)  # as long as the audio holds
    hyphens = "It's T-8-10" + "-11" * 100  # a loop of one "word"
    assert needs_retry(_result(hyphens), OPTIONS, seconds=3.7)
    assert needs_retry(_result(LOOP, LOGPROB_THRESHOLD - 0.1), OPTIONS, seconds=30.0)  # unlikely all the same
    first, retry = _result(LOOP, -0.3), _result("the cat sat on the mat", -1.2)
    assert best_of([first, retry], first, OPTIONS, seconds=30.0) is first  # fits 30 s: the likeliest wins
    assert best_of([first, retry], first, OPTIONS, seconds=1.0) is retry  # outruns 1 s: a loop, passed over


def test_best_is_the_likeliest_fluent_retry_that_keeps_the_words():
    first = _result("to decrease the audio volume press four to decrease your speaking volume press seven", -1.2)
    garbled = _result("to decrease", -0.2)  # likelier, but drops most of the words: never chosen
    fluent = _result("to decrease the audio volume press four to decrease your speaking volume press 7", -1.1)
    looping = _result(LOOP, -0.05)  # likeliest, but too repetitive
    assert best_of([first, garbled, fluent, looping], first, OPTIONS) is fluent
    assert best_of([first, garbled], first, OPTIONS) is first


def test_a_window_that_ends_at_its_first_sentence_is_undercovered():
    def window(n: int, step: float) -> WindowResult:
        words = tuple(Word(f" w{i}", i * step, i * step + 0.3, 0.9) for i in range(n))
        text = "".join(w.word for w in words).strip()
        return WindowResult((Segment(0.0, words[-1].end, text, words),), "en", -0.2, 0.0, text)

    assert undercovered(window(30, 0.4), 25.0)  # words up to 12 s of 25
    assert undercovered(window(7, 3.5), 25.0)  # seven words stretched over the whole window
    assert not undercovered(window(7, 0.4), 5.0)  # short windows are never split
    assert not undercovered(window(60, 0.4), 25.0)


def test_window_seed_depends_on_the_audio_seed_and_temperature_only():
    audio = np.linspace(-0.1, 0.1, 16000, dtype=np.float32)
    assert window_seed(0, audio, 0.2) == window_seed(0, audio.copy(), 0.2)
    assert len({window_seed(0, audio, 0.2), window_seed(1, audio, 0.2), window_seed(0, audio, 0.4)}) == 3
    assert window_seed(0, audio, 0.2) != window_seed(0, audio[::-1].copy(), 0.2)


def test_retries_are_the_same_alone_in_a_batch_and_on_every_run(fw_backend, speech_wav):
    from asr.audio import load_audio

    speech = load_audio(speech_wav)
    a, b = speech[: 6 * 16000], speech[6 * 16000 :]
    hot = DecodeOptions(temperature=0.6)
    alone = fw_backend.transcribe_windows([a], hot)[0]
    again = fw_backend.transcribe_windows([a], hot)[0]
    in_batch = fw_backend.transcribe_windows([b, a], hot)[1]
    assert alone.text and alone.text == again.text == in_batch.text
    assert alone.temperature == 0.6 and alone.segments == in_batch.segments


T0 = 50257  # a timestamp_begin: tokens from it on are timestamps, 0.02 s each
SAMPLES_30S = 30 * 16000


@pytest.mark.parametrize(
    ("tokens", "kept", "seek_seconds"),
    [
        ([T0, 1, 2, T0 + 100], 4, None),  # single timestamp ending: the whole window was consumed
        ([T0, 1, 2, T0 + 100, T0 + 100], 4, 2.0),  # a complete segment, then end-of-text: seek to its end
        ([T0, 1, T0 + 50, T0 + 50, 2, 3], 3, 1.0),  # an unfinished segment after 1 s: dropped, decoded again
        ([T0, 1, 2, T0 + 1475, T0 + 1475], 5, None),  # seek 29.5 s: less than SEEK_MIN_SECONDS left
        ([1, 2, 3], 3, None),  # no timestamps (max_length reached in text): kept as decoded
        ([T0, T0], 2, None),  # a seek to 0 would never advance
    ],
)
def test_whispers_seek_rule(tokens, kept, seek_seconds):
    out, seek = seek_point(tokens, T0, SAMPLES_30S)
    assert out == tokens[:kept]
    assert seek == (None if seek_seconds is None else int(seek_seconds * 16000))


def test_a_decoded_rest_is_joined_in_window_time():
    first = WindowResult((Segment(0.0, 2.0, "One two.", (Word(" One", 0.1, 0.5, 0.9),)),), "en", -0.2, 0.1, "One two.")
    rest = WindowResult((Segment(0.5, 1.0, "Three.", (Word(" Three.", 0.5, 1.0, 0.8),)),), "en", -0.5, 0.3, "Three.")
    both = joined(first, rest, 2.0)
    assert both.text == "One two. Three." and both.no_speech_prob == 0.1
    assert [(s.start, s.end) for s in both.segments] == [(0.0, 2.0), (2.5, 3.0)]
    assert both.segments[1].words[0].start == 2.5
    assert both.avg_logprob == pytest.approx((-0.2 * 2 - 0.5) / 3)
    assert joined(first, WindowResult((), "en", -2.0, 0.9, "uh", silent=True), 2.0) == first


def _with_white_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size)
    scale = np.sqrt(np.mean(audio**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
    return (audio + scale * noise).astype(np.float32)


def test_a_retry_from_the_kept_encoding_is_the_window_decoded_alone(fw_backend, speech_wav):
    """The fallback decodes retries from the first decode's encoding, the windows still failing together: each
    must be, to the bit, what decoding that window alone at that temperature gives (the path that encoded it
    every time)."""
    from asr import compat
    from asr.audio import SAMPLE_RATE, load_audio

    speech = load_audio(speech_wav)
    cut = 6 * SAMPLE_RATE
    windows = [_with_white_noise(speech[:cut], 10, 0), _with_white_noise(speech[:cut], 5, 1)]
    windows.append(_with_white_noise(speech[cut:], 5, 2))
    options = DecodeOptions()
    encoded = fw_backend.encode_windows(windows, options)
    first = encoded.decode(options)
    assert first == fw_backend.transcribe_windows(windows, options)
    noisy = [i for i, r in enumerate(first) if needs_retry(r, options)]
    assert noisy and len(noisy) < len(windows), [(r.text, r.avg_logprob) for r in first]
    for temperature in options.fallback_temperatures:
        hot = options.replace(temperature=temperature, beam_size=1)
        together = encoded.decode(hot, range(len(windows)), words=False)  # as the fallback's rules read them
        for i in noisy:
            again = encoded.decode(hot, [i])  # the words of the generation made beside the other windows
            assert again == fw_backend.transcribe_windows([windows[i]], hot), (i, temperature)
            assert again[0].temperature == temperature and again[0].segments[0].words
            quick = together[i]
            assert (quick.text, quick.avg_logprob, quick.silent) == (
                again[0].text,
                again[0].avg_logprob,
                again[0].silent,
            )
    # the premise: CTranslate2 encodes a window in a batch to the same bits as alone
    whisper = fw_backend.whisper_model
    feats = [compat.fw_pad_or_trim(whisper.feature_extractor(w)[..., :-1], 1000) for w in windows]
    batch = np.asarray(compat.fw_encode(whisper, np.stack(feats)))
    for i, f in enumerate(feats):
        assert np.array_equal(np.asarray(compat.fw_encode(whisper, f[None]))[0], batch[i])


def test_the_fallback_chooses_what_it_chose_when_each_retry_encoded_its_window(fw_backend, speech_wav):
    """with_fallback over a batch equals the old path, written out here: the batch decoded, then each window
    that needs it decoded alone at each temperature (encoding it every time) until one passes."""
    from asr.audio import SAMPLE_RATE, load_audio
    from asr.fallback import _keeps_words, with_fallback

    speech = load_audio(speech_wav)
    cut = 6 * SAMPLE_RATE
    windows = [_with_white_noise(speech[:cut], 5, 1), _with_white_noise(speech[cut:], 10, 4), speech[:cut]]
    options = DecodeOptions()
    old = fw_backend.transcribe_windows(windows, options)
    for i, first in enumerate(list(old)):
        seconds = windows[i].size / SAMPLE_RATE
        if needs_retry(first, options, seconds):
            tried = [first]
            for temperature in options.fallback_temperatures:
                hot = options.replace(temperature=temperature, beam_size=1)
                tried.append(fw_backend.transcribe_windows([windows[i]], hot)[0])
                if not needs_retry(tried[-1], options, seconds) and _keeps_words(tried[-1], first):
                    old[i] = tried[-1]
                    break
            else:
                old[i] = best_of(tried, first, options, seconds)
    results, retried = with_fallback(fw_backend, windows, options)
    assert any(retried) and not all(retried)
    assert results == old
