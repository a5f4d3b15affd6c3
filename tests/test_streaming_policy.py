"""The streaming policy on scripted hypotheses: no model, no clock, every decision checked exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from asr.results import Segment, Word
from asr.streaming.policy import (
    FRAME_SECONDS,
    Hypothesis,
    Request,
    StreamOptions,
    StreamPolicy,
    drop_loops,
    join_words,
)

OPTS = StreamOptions(first_window_seconds=0.0)  # the scripted windows below start as soon as speech does


def frames(seconds: float, prob: float) -> np.ndarray:
    return np.full(int(round(seconds / FRAME_SECONDS)), prob, np.float32)


def speech(seconds: float) -> np.ndarray:
    return frames(seconds, 0.95)


def silence(seconds: float) -> np.ndarray:
    return frames(seconds, 0.02)


def w(text: str, start: float, end: float) -> Word:
    return Word(" " + text, start, end, 0.9)


def words_at(text: str, start: float, step: float = 0.4) -> list[Word]:
    """Consecutive words, each ``step`` long with a 0.1 s gap."""
    return [w(t, start + i * step, start + i * step + step - 0.1) for i, t in enumerate(text.split())]


def hyp(words, ends=()) -> Hypothesis:
    return Hypothesis(tuple(words), tuple(ends))


def text(words) -> str:
    return join_words(words)


def test_silence_and_faint_blips_never_plan_a_model_call():
    p = StreamPolicy(OPTS)
    p.insert(silence(5))
    assert p.plan() is None
    assert p.processed_until == pytest.approx(p.audio_end)
    assert p.buffer_start == pytest.approx(p.audio_end - OPTS.onset_pad_seconds)
    p.insert(speech(0.1))  # a click, shorter than min_speech_seconds
    p.insert(silence(1.0))
    assert p.plan() is None
    p.finish()
    assert p.plan() is None and p.finished


def test_speech_onset_starts_the_buffer_just_before_the_speech():
    p = StreamPolicy(OPTS)
    p.insert(silence(3.2))
    p.insert(speech(1.0))
    req = p.plan()
    assert req is not None and not req.flush
    assert req.start == pytest.approx(3.2 - OPTS.onset_pad_seconds, abs=FRAME_SECONDS)
    assert req.end == pytest.approx(p.audio_end)
    assert req.prompt == ""


def test_local_agreement_commits_the_common_prefix_of_two_hypotheses():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.6))
    r1 = p.plan()
    s1 = p.step(r1, hyp(words_at("the birch canoe", 0.0)))
    assert s1.committed == () and text(s1.tentative) == "the birch canoe"
    assert p.plan() is None  # less than step_seconds of new audio
    p.insert(speech(0.5))
    r2 = p.plan()
    s2 = p.step(r2, hyp(words_at("the birch canoe slid", 0.0)))
    assert text(s2.committed) == "the birch canoe" and text(s2.tentative) == "slid"
    assert s2.forced == 0


def test_an_utterances_first_window_waits_for_first_window_seconds_of_buffer():
    """Its words could only wait for the next window to agree: a short first window is spent, not committed."""
    opts = dataclasses.replace(OPTS, first_window_seconds=1.5)
    p = StreamPolicy(opts)
    p.insert(silence(1.0))
    p.insert(speech(0.6))  # the buffer holds the 0.4 s onset pad and 0.6 s of speech: 1.0 s
    assert p.plan() is None
    p.insert(speech(0.5))
    first = p.plan()
    assert first is not None and first.end - first.start == pytest.approx(1.5, abs=FRAME_SECONDS)
    p.step(first, hyp(words_at("the birch", 1.0)))
    p.insert(speech(0.5))  # later windows follow the step again, however short the buffer would be
    second = p.plan()
    assert second is not None and second.end - first.end == pytest.approx(0.5, abs=FRAME_SECONDS)
    assert text(p.step(second, hyp(words_at("the birch canoe", 1.0))).committed) == "the birch"
    p.insert(silence(0.6))  # the pause's flush is never held back
    assert p.plan().flush
    off = StreamPolicy(dataclasses.replace(OPTS, first_window_seconds=0.0))
    off.insert(silence(1.0))
    off.insert(speech(0.6))
    assert off.plan() is not None  # without it the 1.0 s buffer is decoded at once
    with pytest.raises(ValueError, match="first_window"):
        StreamOptions(first_window_seconds=-1).validate()


def test_each_request_says_from_when_it_was_due_so_a_late_worker_can_be_told_from_the_policys_own_waits():
    """``Request.due``: an utterance's first window is due once it holds first_window_seconds, a step one
    step_seconds after the last window, a flush pause_seconds after the speech; audio past it waited for the
    worker (what catch-up mode measures), however long the policy itself chose to wait."""
    p = StreamPolicy(dataclasses.replace(OPTS, first_window_seconds=1.5))
    p.insert(silence(1.0))
    p.insert(speech(0.6))
    assert p.plan() is None  # the policy's own wait: no lag of the worker's
    p.insert(speech(0.5))
    first = p.plan()
    assert first.due == pytest.approx(first.start + 1.5) and first.end - first.due < FRAME_SECONDS
    p.step(first, hyp(words_at("the birch", 1.0)))
    p.insert(speech(2.5))  # the worker comes back 2.5 s later, not 0.5 s
    late = p.plan()
    assert late.due == pytest.approx(first.end + OPTS.step_seconds)
    assert late.end - late.due == pytest.approx(2.0, abs=FRAME_SECONDS)
    p.step(late, hyp(words_at("the birch canoe slid on", 1.0)))
    p.insert(silence(OPTS.pause_seconds + 0.1))
    flush = p.plan()
    assert flush.flush and flush.due == pytest.approx(late.end + OPTS.pause_seconds, abs=FRAME_SECONDS)


def test_a_revised_word_stays_tentative_until_two_hypotheses_agree():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.6))
    p.step(p.plan(), hyp(words_at("the birch canoes", 0.0)))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(words_at("the birch canoe slid", 0.0)))
    assert text(s.committed) == "the birch" and text(s.tentative) == "canoe slid"
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(words_at("the birch canoe slid on", 0.0)))
    assert text(s.committed) == "canoe slid" and text(s.tentative) == "on"


def test_case_and_punctuation_changes_still_agree_but_the_last_word_waits_for_its_punctuation():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.0))
    p.step(p.plan(), hyp([w("Hello", 0.0, 0.3), w("world", 0.4, 0.7)]))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp([w("hello,", 0.0, 0.3), w("world.", 0.4, 0.7), w("Next", 1.0, 1.3)]))
    # "world" vs "world.": whether a sentence ends there is not agreed yet, so only "hello," is final
    assert [x.word for x in s.committed] == [" hello,"]
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp([w("hello,", 0.0, 0.3), w("world.", 0.4, 0.7), w("Next", 1.0, 1.3)]))
    assert [x.word for x in s.committed] == [" world.", " Next"]


def test_the_committed_words_in_the_buffer_are_forced_as_the_prefix():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.0))
    first = p.plan()
    assert first.prefix == ""
    p.step(first, hyp(words_at("the birch canoe", 0.0)))
    p.insert(speech(0.5))
    p.step(p.plan(), hyp(words_at("the birch canoe slid", 0.0)))
    request = p.plan() or (p.insert(speech(0.5)) or p.plan())
    assert request.prefix == "the birch canoe"
    # the model continued after the prefix and re-timed it: only the words after it are new
    s = p.step(request, hyp(words_at("the birch canoe slid on the", 0.05, 0.3)))
    assert text(s.committed) == "slid" and text(s.tentative) == "on the"
    assert StreamPolicy(OPTS.replace(force_prefix=False)).options.force_prefix is False


def test_a_revised_phrase_after_the_prefix_is_not_committed_twice():
    """The duplicate seen at a buffer trim ("the depth in the depth of it well"): hypotheses that revise the
    words after the committed ones must not bring the committed words back."""
    p = StreamPolicy(OPTS)
    p.insert(speech(1.0))
    p.step(p.plan(), hyp(words_at("to tell the depth in", 0.0, 0.2)))
    p.insert(speech(0.5))
    p.step(p.plan(), hyp(words_at("to tell the depth in the", 0.0, 0.2)))
    p.insert(speech(0.5))
    request = p.plan()
    committed = p.committed_end
    s = p.step(request, hyp(words_at(request.prefix + " of it well", 0.0, 0.2)))
    assert text(s.tentative + s.committed).split()[:1] != ["depth"]
    assert all(x.start >= committed - 0.2 for x in s.tentative)


def test_no_word_is_committed_twice_when_timestamps_drift():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.6))
    p.step(p.plan(), hyp(words_at("the birch canoe", 0.0)))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(words_at("the birch canoe", 0.0)))
    assert text(s.committed) == "the birch canoe"
    # the committed tail comes back a little later than it was (drift), followed by new words
    p.insert(speech(0.5))
    drifted = [w("canoe", 1.05, 1.2), w("slid", 1.3, 1.6), w("on", 1.7, 1.9)]
    s = p.step(p.plan(), hyp(words_at("the birch", 0.0) + drifted))
    assert s.committed == () and text(s.tentative) == "slid on"
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(words_at("the birch", 0.0) + drifted))
    assert text(s.committed) == "slid on"


def test_a_pause_commits_everything_tentative_and_restarts_the_buffer():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.2))
    p.step(p.plan(), hyp(words_at("hello there", 0.0)))
    p.insert(silence(OPTS.pause_seconds + 0.1))
    req = p.plan()
    assert req.flush
    assert req.end == pytest.approx(1.2 + OPTS.speech_pad_seconds, abs=FRAME_SECONDS)
    s = p.step(req, hyp(words_at("hello there friend", 0.0)))
    assert text(s.committed) == "hello there friend" and s.tentative == ()
    assert p.buffer_start == pytest.approx(req.end)
    p.insert(silence(2.0))
    assert p.plan() is None
    p.insert(speech(1.0))
    nxt = p.plan()
    assert nxt.prompt == "hello there friend"
    assert nxt.start == pytest.approx(p.audio_end - 1.0 - OPTS.onset_pad_seconds, abs=FRAME_SECONDS)


def test_a_flush_leaves_the_next_utterances_soft_onset_to_the_next_window():
    """The speech pad lets a flush hear the soft start of the next prompt ("Thank you. Please. Please hold" on the
    joined real file): a flush word starting after the VAD's speech end is not committed; the next window, which
    starts before it, commits it once. At the end of the stream nothing is left out."""
    p = StreamPolicy(OPTS)
    p.insert(speech(1.2))
    p.step(p.plan(), hyp(words_at("thank you", 0.0)))
    p.insert(silence(0.6))
    req = p.plan()
    assert req.flush and req.end == pytest.approx(1.2 + OPTS.speech_pad_seconds, abs=FRAME_SECONDS)
    s = p.step(req, hyp(words_at("thank you", 0.0) + [w("Please.", 1.45, req.end)]))
    assert text(s.committed) == "thank you"
    assert p.buffer_start == pytest.approx(1.45 - OPTS.onset_pad_seconds)
    p.insert(speech(1.0))
    nxt = p.plan()
    assert not nxt.flush and nxt.start <= 1.45 and nxt.prompt == "thank you" and nxt.prefix == ""
    p.step(nxt, hyp(words_at("please hold", 1.45)))
    p.insert(silence(0.6))
    last = p.plan()
    done = p.step(last, hyp(words_at("please hold", 1.45)))
    assert text(done.committed) == "please hold"
    p.insert(speech(0.5))
    p.step(p.plan(), hyp([w("Bye.", 3.4, 3.9)]))
    p.insert(silence(0.3))
    p.finish()
    end = p.plan()
    assert end.flush and end.end == pytest.approx(4.2, abs=FRAME_SECONDS)
    assert text(p.step(end, hyp([w("Bye.", 3.4, 3.9), w("Now.", 4.05, 4.15)])).committed) == "Bye. Now."
    assert p.finished


def heard_past_the_speech(opts: StreamOptions) -> StreamPolicy:
    """Speech to 1.2 s; the last step's window reaches 1.5 s (0.3 s past the speech end) with "friend" tentative."""
    p = StreamPolicy(opts)
    p.insert(speech(1.0))
    p.step(p.plan(), hyp(words_at("hello there", 0.0)))
    p.insert(speech(0.2))
    p.insert(silence(0.32))
    step = p.plan()
    assert not step.flush and step.end == pytest.approx(1.5, abs=FRAME_SECONDS)
    assert text(p.step(step, hyp(words_at("hello there friend", 0.0))).committed) == "hello there"
    p.insert(silence(0.3))  # the pause: 0.6 s after the speech end
    return p


def test_a_pause_commits_what_the_last_window_heard_without_a_model_call_when_it_reached_past_the_speech():
    """``flush_heard_seconds``: the flush would decode the same speech again with only trailing silence added."""
    p = heard_past_the_speech(OPTS)  # the default: 0.2 s
    assert p.plan() is None  # no model call
    assert text(p.take_settled()) == "friend" and p.take_settled() == ()
    assert p.tentative == () and not p.finished
    assert p.buffer_start == pytest.approx(1.2 + OPTS.speech_pad_seconds, abs=FRAME_SECONDS)
    p.insert(speech(1.0))
    nxt = p.plan()
    assert not nxt.flush and nxt.prompt == "hello there friend"
    for opts in (OPTS.replace(flush_heard_seconds=None), OPTS.replace(flush_heard_seconds=0.4)):  # off, or short
        again = heard_past_the_speech(opts)
        req = again.plan()
        assert req.flush and again.take_settled() == ()
    with pytest.raises(ValueError, match="flush_heard"):
        OPTS.replace(flush_heard_seconds=-0.1)


def test_finish_commits_the_rest_and_closes():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.5))
    p.step(p.plan(), hyp(words_at("one two", 0.0)))
    p.insert(speech(0.2))
    p.finish()
    req = p.plan()
    assert req.flush and req.end == pytest.approx(p.audio_end)
    s = p.step(req, hyp(words_at("one two three four", 0.0)))
    assert text(s.committed) == "one two three four"
    assert p.finished and p.plan() is None
    with pytest.raises(RuntimeError):
        p.insert(speech(0.5))


SENTENCE = "The box was thrown beside the parked truck."


def committed_sentence() -> StreamPolicy:
    """A policy whose buffer holds 2.8 s of speech: one sentence, all committed by agreement, nothing tentative."""
    p = StreamPolicy(OPTS.replace(force_commit_seconds=5.0))  # every word committed by agreement, none by age
    p.insert(speech(2.3))
    p.step(p.plan(), hyp(words_at(SENTENCE, 0.0, 0.32)))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(words_at(SENTENCE, 0.0, 0.32)))
    assert text(s.committed) == SENTENCE and s.tentative == ()
    return p


def test_finish_with_everything_committed_and_no_new_speech_calls_no_model():
    """The stream ends right after the last update committed the whole sentence: a flush over the same audio
    with the sentence as forced prefix made Whisper read it out twice (en-gb-scotland_m7_06, en-gb-x-rp_m7_06)."""
    p = committed_sentence()
    p.finish()
    assert p.plan() is None and p.finished
    assert p.processed_until == pytest.approx(p.audio_end)


def test_a_pause_after_a_fully_committed_utterance_restarts_the_buffer_without_a_model_call():
    p = committed_sentence()
    p.insert(silence(OPTS.pause_seconds + 0.1))
    assert p.plan() is None and not p.finished
    assert p.buffer_start == pytest.approx(2.8 + OPTS.speech_pad_seconds, abs=FRAME_SECONDS)
    p.insert(speech(1.0))
    assert p.plan().prompt == SENTENCE


def test_a_model_that_stopped_before_the_speech_did_still_gets_its_flush():
    p = StreamPolicy(OPTS)
    p.insert(speech(2.0))
    p.step(p.plan(), hyp(words_at("one two", 0.0)))
    p.insert(speech(0.5))
    assert text(p.step(p.plan(), hyp(words_at("one two", 0.0))).committed) == "one two"
    p.finish()
    req = p.plan()  # speech runs to 2.5 s, the committed words end at 0.7 s
    assert req is not None and req.flush
    assert text(p.step(req, hyp(words_at("one two three four five six", 0.0))).committed) == "three four five six"


def test_a_flush_that_reads_the_whole_forced_prefix_again_commits_only_new_words():
    """The prefix is longer than the five-word tail that loop detection used to look back over."""
    p = committed_sentence()
    p.insert(speech(0.3))
    p.finish()
    req = p.plan()
    assert req.flush and req.prefix == SENTENCE
    again = words_at(SENTENCE, 0.0, 0.32) + [
        w(t, 2.8 + i * 0.03, 2.82 + i * 0.03) for i, t in enumerate(SENTENCE.split())
    ]
    assert p.step(req, hyp(again)).committed == ()
    assert p.finished


def test_a_flush_that_reads_prefix_and_new_words_again_commits_them_once():
    """The joined real-speech file (speech_pad_seconds=0.3): after the forced prefix Whisper wrote the new words,
    then the whole window once more ("... Press three to record a message for another mailbox. Press two to
    access ... mailbox."), a phrase longer than the ten words loop detection looked back over."""
    p = committed_sentence()
    p.insert(speech(3.0))
    p.finish()
    req = p.plan()
    assert req.flush and req.prefix == SENTENCE
    rest = "It fell on the road by the gate today"
    said = words_at(SENTENCE + " " + rest, 0.0, 0.3)
    again = [w(t, 1.0 + i * 0.1, 1.08 + i * 0.1) for i, t in enumerate((SENTENCE + " " + rest).split())]
    assert text(p.step(req, hyp(said + again)).committed) == rest


def test_a_hypothesis_that_reads_the_prompt_out_again_commits_only_new_words():
    p = committed_sentence()
    p.insert(silence(OPTS.pause_seconds + 0.1))
    assert p.plan() is None
    p.insert(speech(1.0))
    req = p.plan()
    assert req.prompt == SENTENCE and req.prefix == ""
    reread = words_at(SENTENCE, req.start, 0.1) + [w("Then", req.start + 0.85, req.end)]
    for _ in range(2):
        s = p.step(req, hyp(reread))
        assert text(s.committed) in ("", "Then") and text(s.tentative) in ("", "Then")
        p.insert(speech(0.5))
        req = p.plan()


def test_a_new_utterance_that_opens_with_the_last_committed_words_keeps_them():
    """Two prompts of the joined real-speech file: "... erase your temporary greeting" and, after a pause, "Your
    temporary greeting has been removed". Said at a speaking pace, they are not Whisper re-reading its prompt."""
    p = StreamPolicy(OPTS.replace(force_commit_seconds=5.0))
    first = "please erase your temporary greeting"
    p.insert(speech(2.3))
    p.step(p.plan(), hyp(words_at(first, 0.0, 0.45)))
    p.insert(speech(0.5))
    assert text(p.step(p.plan(), hyp(words_at(first, 0.0, 0.45))).committed) == first
    p.insert(silence(OPTS.pause_seconds + 0.1))
    flush = p.plan()  # the pause ends the utterance: nothing new after the committed words
    assert flush.flush and p.step(flush, hyp(words_at(first, 0.0, 0.45))).committed == ()
    p.insert(speech(2.5))
    req = p.plan()
    assert req.prompt == first and req.prefix == ""
    said = words_at("your temporary greeting has been removed", req.start + 0.1, 0.4)
    s = p.step(req, hyp(said))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(said))
    assert text(s.committed) == "your temporary greeting has been removed"


def test_forced_commit_when_hypotheses_never_agree():
    opts = OPTS.replace(force_commit_seconds=2.0)
    p = StreamPolicy(opts)
    p.insert(speech(1.0))
    committed = []
    for i in range(12):  # the model keeps changing its mind about every word
        p.insert(speech(0.5))
        req = p.plan()
        words = [w(f"w{i}x{k}", k * 0.5, k * 0.5 + 0.4) for k in range(int(req.end / 0.5))]
        s = p.step(req, hyp(words))
        committed += s.committed
        for word in s.committed:
            assert word.end <= req.end - opts.force_commit_seconds + 1e-9
    assert committed and all(s >= 0 for s in [len(committed)])
    assert p.committed_end >= p.audio_end - opts.force_commit_seconds - 0.5


def test_wrong_request_and_bad_options_are_refused():
    p = StreamPolicy(OPTS)
    p.insert(speech(1.0))
    p.plan()
    with pytest.raises(RuntimeError):
        p.step(Request(0.0, 1.0, "", False), hyp([]))
    with pytest.raises(ValueError, match="max_buffer_seconds"):
        StreamOptions(trim_seconds=20, max_buffer_seconds=31).validate()
    with pytest.raises(ValueError, match="step_seconds"):
        OPTS.replace(step_seconds=0)


def test_hypothesis_from_segments_moves_to_absolute_time_and_clamps():
    seg = Segment(0.0, 2.5, "a b", (Word(" a", 0.1, 0.5, 1.0), Word(" b", 2.0, 2.9, 1.0)))
    h = Hypothesis.from_segments([seg], offset=10.0, end=12.2)
    assert [(x.start, x.end) for x in h.words] == [(10.1, 10.5), (12.0, 12.2)]
    assert h.segment_ends == (12.2,)


class ScriptedModel:
    """A model that hears the true words but gets the word being spoken at the window's edge wrong."""

    def __init__(self, truth: list[Word], sentence_every: int = 8) -> None:
        self.truth = truth
        self.sentence_every = sentence_every

    def __call__(self, req: Request) -> Hypothesis:
        words, ends = [], []
        for i, t in enumerate(self.truth):
            if t.start < req.start - 0.05 or t.start >= req.end:
                continue
            if t.end > req.end:  # cut off by the window: misheard
                words.append(dataclasses.replace(t, word=t.word + "ish", end=req.end))
                break
            last = (i + 1) % self.sentence_every == 0
            words.append(dataclasses.replace(t, word=t.word + ("." if last else "")))
            if last:
                ends.append(t.end)
        return Hypothesis(tuple(words), tuple(ends))


def run_stream(policy: StreamPolicy, model, total: float, chunk: float = 0.5, pauses=()):
    committed, windows = [], []
    t = 0.0
    while t < total:
        silent = any(a <= t < b for a, b in pauses)
        policy.insert(silence(chunk) if silent else speech(chunk))
        t += chunk
        req = policy.plan()
        if req is not None:
            windows.append(req.end - req.start)
            committed += policy.step(req, model(req)).committed
    policy.finish()
    while (req := policy.plan()) is not None:
        committed += policy.step(req, model(req)).committed
    return committed, windows


def test_long_speech_commits_every_word_once_with_a_bounded_buffer():
    truth = [w(f"word{i}", i * 0.4, i * 0.4 + 0.3) for i in range(450)]  # 3 minutes without a pause
    policy = StreamPolicy(OPTS)
    committed, windows = run_stream(policy, ScriptedModel(truth), 180.0)
    assert [c.word.strip(".") for c in committed] == [t.word for t in truth]
    assert max(windows) <= OPTS.max_buffer_seconds + 0.5
    assert max(windows) < 30
    assert all(b.start >= a.start for a, b in zip(committed, committed[1:]))


def test_trimming_cuts_at_committed_sentence_ends_and_feeds_the_prompt():
    truth = [w(f"word{i}", i * 0.4, i * 0.4 + 0.3) for i in range(120)]
    policy = StreamPolicy(OPTS)
    prompts = []
    model = ScriptedModel(truth)

    def spy(req):
        prompts.append(req)
        return model(req)

    run_stream(policy, spy, 48.0)
    cut = [r for r in prompts if r.start > 1.0]
    assert cut, "the buffer was never trimmed"
    first = cut[0]
    assert first.prompt.endswith(".")  # cut at a sentence end
    assert first.prompt.split()[-1].strip(".") == [t.word.strip() for t in truth if t.end <= first.start][-1]
    assert max(r.end - r.start for r in prompts) <= OPTS.trim_seconds + OPTS.step_seconds * 4


def test_noise_the_model_ignores_cannot_grow_the_buffer():
    policy = StreamPolicy(OPTS)
    _, windows = run_stream(policy, lambda req: Hypothesis(()), 90.0)
    assert max(windows) <= OPTS.max_buffer_seconds + 0.5


def test_pauses_between_utterances_commit_each_utterance_in_full():
    truth = [w(f"a{i}", i * 0.4, i * 0.4 + 0.3) for i in range(10)]
    truth += [w(f"b{i}", 6.0 + i * 0.4, 6.0 + i * 0.4 + 0.3) for i in range(10)]
    policy = StreamPolicy(OPTS)
    committed, _ = run_stream(policy, ScriptedModel(truth, 100), 12.0, pauses=[(4.0, 6.0), (10.0, 12.0)])
    assert [c.word for c in committed] == [t.word for t in truth]
    assert policy.finished


@pytest.mark.parametrize(
    "said, kept",
    [
        ("the merch can do slid the merch can do slid the merch", "the merch can do slid"),
        ("sleep sleep sleep sleep", "sleep"),
        ("it was very very good", "it was very very good"),
        ("one two one two", "one two one two"),
        ("one two one two one two", "one two"),
        ("", ""),
    ],
)
def test_hallucination_loops_are_cut_after_their_first_pass(said, kept):
    assert text(drop_loops(words_at(said, 0.0))) == kept


def test_a_looping_hypothesis_commits_no_repeated_text():
    p = StreamPolicy(OPTS)
    p.insert(speech(2.0))
    loop = words_at("glue the sheet glue the sheet glue the sheet", 0.0, step=0.2)
    p.step(p.plan(), hyp(loop))
    p.insert(speech(0.5))
    s = p.step(p.plan(), hyp(loop))
    assert text(s.committed) == "glue the sheet"


def test_busy_rounds_trim_the_buffer_shorter():
    truth = [w(f"word{i}", i * 0.4, i * 0.4 + 0.3) for i in range(120)]
    longest = {}
    for busy in (False, True):
        policy = StreamPolicy(OPTS.replace(trim_seconds=15.0, busy_trim_seconds=8.0))
        model, windows, t = ScriptedModel(truth), [], 0.0
        while t < 48.0:
            policy.insert(speech(0.5))
            t += 0.5
            if (req := policy.plan()) is not None:
                windows.append(req.end - req.start)
                policy.step(req, model(req), busy=busy)
        longest[busy] = max(windows[40:])  # after the first trims
    assert longest[True] < 10.5 < 14.0 < longest[False]
    with pytest.raises(ValueError, match="busy_trim_seconds"):
        OPTS.replace(busy_trim_seconds=20.0)


def test_a_phrase_really_said_twice_is_kept():
    """Two prompts of the joined real-speech file: "... or press 2 to erase your temporary greeting" and "Your
    temporary greeting has been removed". Offline keeps both copies; loop detection used to drop the second."""
    said = words_at("press 2 to erase your temporary greeting your temporary greeting has been removed", 0.0)
    assert text(drop_loops(said)) == text(said)
    at_the_end = words_at("erase your temporary greeting your temporary greeting", 0.0)  # nothing after it: a loop
    assert text(drop_loops(at_the_end)) == "erase your temporary greeting"
    squeezed = (
        words_at("erase your temporary greeting", 0.0)
        + [w(t, 1.6 + i * 0.03, 1.62 + i * 0.03) for i, t in enumerate("your temporary greeting".split())]
        + [w("has", 1.8, 2.0)]
    )  # a re-read squeezed into a moment, even with a word after it
    assert text(drop_loops(squeezed)) == "erase your temporary greeting"


def test_a_repeat_across_two_commits_is_kept_when_really_said():
    """The first copy is committed before the second is heard: the forced prefix's tail plus the new words hold
    the repeat, and it is kept when really said (other words follow, each copy takes its time)."""
    p = StreamPolicy(OPTS)
    p.insert(speech(3.0))
    first = words_at("please erase your temporary greeting", 0.0)
    committed = list(p.step(p.plan(), hyp(first)).committed)
    p.insert(speech(0.5))
    committed += p.step(p.plan(), hyp(first)).committed
    assert text(committed) == "please erase your temporary greeting"
    more = words_at("please erase your temporary greeting your temporary greeting has been removed", 0.0)
    for seconds in (2.0, 0.5):
        p.insert(speech(seconds))
        committed += p.step(p.plan(), hyp(more)).committed
    p.finish()
    committed += p.step(p.plan(), hyp(more)).committed
    assert text(committed) == text(more)
