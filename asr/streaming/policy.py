"""The streaming policy: a state machine that decides what to decode and what becomes final. It never reads the
clock and never calls a model, so it is tested by replaying scripted hypotheses.

The cycle is ``insert`` (speech probabilities of newly arrived audio), ``plan`` (which stretch of the buffer to
decode, with which prompt, or nothing) and ``step`` (the model's words for that stretch, in absolute seconds).

* **LocalAgreement-2** (whisper_streaming): a word becomes *committed* when two consecutive hypotheses over the
  buffer agree on it, as part of their longest common prefix after the committed words. The rest of the newest
  hypothesis is *tentative*. Committed words never change and are never committed twice.
* **Prompt and forced prefix**: the committed text before the buffer is fed back as the prompt, and the committed
  words inside the buffer are forced as the start of the transcript (SimulStreaming does the same), so the model
  only writes what follows them. It cannot re-transcribe a committed phrase differently and so commit it twice
  (whisper_streaming's n-gram dedup misses a revised phrase: "the depth in the depth of it well"). A backend
  that ignores the prefix still works: the hypothesis is then cut after the committed words by time and n-grams.
* **Bounded buffer**: once the buffer is longer than ``trim_seconds`` it is cut at the last committed sentence
  or segment end; past ``max_buffer_seconds`` (below Whisper's 30 s) at the last committed word, committing the
  oldest tentative words first if nothing is committed (a *forced commit*). A tentative word that is
  ``force_commit_seconds`` behind the newest audio is committed too, so long speech without agreement still
  produces final text within a bounded delay.
* **VAD**: with no speech in the buffer nothing is planned and the buffer follows the newest audio, so silence
  never reaches the model; a pause of ``pause_seconds`` after speech ends the utterance: one last call over it
  commits everything but words that start after the speech end (the next utterance's soft onset, decoded by
  the next window), and the buffer restarts after it. ``finish`` does the same for the end of the stream. When
  every word is committed and no speech came after the last window, that call is skipped (Whisper would only
  read the utterance, its forced prefix, out a second time).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.results import SENTENCE_ENDS, Word
from asr.streaming.hypothesis import Hypothesis, Request, StepResult, drop_loops, join_words, late_words, normalize
from asr.streaming.options import StreamOptions
from asr.vad import FRAME, MAX_WINDOW_SECONDS

FRAME_SECONDS = FRAME / SAMPLE_RATE  # one VAD probability covers this much audio (32 ms)
_SKIP_MARGIN = 0.5  # seconds of speech after the last word (and before the window end) that mean a skip
_SLACK_WORDS = 3  # how far the cut between committed and new words may move from where word times put it
_MAX_NGRAM = 5  # longest repeat of the committed tail looked for at the head of a hypothesis
_RECENT_WORDS = 160  # committed words kept for the prompt, the prefix and trimming (more than 30 s of speech)
_MIN_WORD_SECONDS = 0.1  # less new speech than this cannot hold a word: a flush over it is not decoded
_MIN_REPEAT = 3  # a hypothesis that opens with this many committed words again re-read them (see drop_loops)
_REREAD_WORD_SECONDS = 0.1  # re-read words take less than this each (Whisper stamps them into the window's start)


class StreamPolicy:
    """The per-session state machine. Not thread-safe: one worker drives it."""

    def __init__(self, options: StreamOptions | None = None) -> None:
        self.options = (options or StreamOptions()).validate()
        self.buffer_start = 0.0  # absolute seconds where the next window begins
        self.processed_until = 0.0  # audio the model has seen or the VAD has judged silent
        self.finished = False
        self._frames = 0  # VAD frames inserted; the audio end is frames * FRAME_SECONDS
        self._probs = np.zeros(0, np.float32)  # speech probabilities from frame ``_probs_from`` on
        self._probs_from = 0
        self._last_speech_end: float | None = None
        self._last_request_end = 0.0
        self._in_flight: Request | None = None
        self._finishing = False
        self._recent: deque[Word] = deque(maxlen=_RECENT_WORDS)
        self._tentative: list[Word] = []
        self._last_flush = False  # the last request was a flush
        self._settled: tuple[Word, ...] = ()  # words a plan committed without a model call (take_settled)

    # ---- audio in -------------------------------------------------------------------------------------------
    @property
    def audio_end(self) -> float:
        return self._frames * FRAME_SECONDS

    @property
    def committed_end(self) -> float:
        return self._recent[-1].end if self._recent else 0.0

    @property
    def finishing(self) -> bool:
        """``finish`` was called: the stream has ended (``finished`` once everything is committed)."""
        return self._finishing

    @property
    def tentative(self) -> tuple[Word, ...]:
        return tuple(self._tentative)

    def insert(self, speech_probs: np.ndarray) -> None:
        """Take the speech probability of each new 32 ms frame of audio (``asr.vad.StreamingVad``)."""
        if self._finishing:
            raise RuntimeError("insert after finish")
        probs = np.asarray(speech_probs, np.float32).reshape(-1)
        speech = np.flatnonzero(probs >= self.options.vad_threshold)
        if speech.size:
            self._last_speech_end = (self._frames + int(speech[-1]) + 1) * FRAME_SECONDS
        self._frames += probs.size
        self._probs = np.concatenate([self._probs, probs])

    def finish(self) -> None:
        """The stream has ended: the next plan decodes and commits whatever speech is left."""
        self._finishing = True

    # ---- deciding what to decode ----------------------------------------------------------------------------
    def plan(self) -> Request | None:
        """The next stretch to decode, or None when there is nothing worth a model call."""
        if self._in_flight is not None or self.finished:
            return None
        opts = self.options
        self._skip_silence()
        if not (self._tentative or self._has_speech()):
            self.processed_until = max(self.processed_until, self.audio_end)
            if self._finishing:
                self._close()
            return None
        speech_end = self._last_speech_end if self._last_speech_end is not None else self.audio_end
        if self._finishing or self.audio_end - speech_end >= opts.pause_seconds:
            end = min(self.audio_end, speech_end + opts.speech_pad_seconds)
            if self._all_heard(speech_end):
                return self._settle(end)
            if self._heard_to(speech_end):
                return self._flush_heard(end)
            return self._request(end, flush=True, due=min(self.audio_end, speech_end + opts.pause_seconds))
        if self.audio_end - self._last_request_end < opts.step_seconds:
            return None
        due = self._last_request_end + opts.step_seconds
        if self._opening():
            if self.audio_end - self.buffer_start < opts.first_window_seconds:
                return None
            due = max(due, self.buffer_start + opts.first_window_seconds)
        return self._request(self.audio_end, flush=False, due=due)

    def _opening(self) -> bool:
        """No hypothesis yet for the buffer's speech: the next window starts an utterance."""
        return not self._tentative and self.committed_end <= self.buffer_start

    def _request(self, end: float, *, flush: bool, due: float) -> Request:
        end = min(end, self.buffer_start + MAX_WINDOW_SECONDS - 0.5)
        prefix = join_words(self._in_window()) if self.options.force_prefix else ""
        self._in_flight = Request(self.buffer_start, end, self._prompt(), flush, prefix, due)
        self._last_request_end, self._last_flush = end, flush
        return self._in_flight

    def _all_heard(self, speech_end: float) -> bool:
        """Nothing tentative, under a word's worth of speech since the last window, and committed words up to
        the speech end (a model that stopped early gets its flush: the words it skipped may still come)."""
        new_speech = speech_end - max(self._last_request_end, self.buffer_start)
        return (
            not self._tentative and new_speech < _MIN_WORD_SECONDS and self.committed_end >= speech_end - _SKIP_MARGIN
        )

    def _settle(self, end: float) -> None:
        """End an utterance without a model call: every word the model said is committed and no speech came
        after its last window. Decoding the same audio again with the whole utterance as the forced prefix (or
        the prompt) only makes Whisper read it out a second time."""
        self.processed_until = max(self.processed_until, end)
        self._move_start(end)
        if self._finishing and not self._has_speech_after(end):
            self._close()

    def _heard_to(self, speech_end: float) -> bool:
        """The last window (a step, not a flush) reached ``flush_heard_seconds`` past the speech end."""
        reach = self.options.flush_heard_seconds
        return (
            reach is not None
            and bool(self._tentative)
            and not self._last_flush
            and self._last_request_end >= speech_end + reach
        )

    def _flush_heard(self, end: float) -> None:
        """End an utterance without a model call, committing the last window's tentative words as a flush
        would have committed its own (see ``StreamOptions.flush_heard_seconds``)."""
        new = [w for w in self._tentative if w.start < end]
        late = [] if self._finishing else late_words(new, self._last_speech_end or 0.0)
        self._settled += self._commit(new[: len(new) - len(late)])
        self._tentative = []
        self.processed_until = max(self.processed_until, end)
        self._move_start(max(late[0].start - self.options.onset_pad_seconds, self.committed_end) if late else end)
        if self._finishing and not self._has_speech_after(end):
            self._close()

    def take_settled(self) -> tuple[Word, ...]:
        """The words committed by ``plan`` itself since the last call (see :meth:`_flush_heard`)."""
        settled, self._settled = self._settled, ()
        return settled

    def _has_speech(self) -> bool:
        speech_seconds = self._speech_frames().size * FRAME_SECONDS
        return speech_seconds > 0 and speech_seconds >= self.options.min_speech_seconds

    def _skip_silence(self) -> None:
        """With no words in the buffer, move its start up to the first speech (or the newest audio)."""
        if self._tentative or self.committed_end > self.buffer_start:
            return
        opts = self.options
        anchor = self.audio_end
        recent = self._last_speech_end is not None and self.audio_end - self._last_speech_end < opts.pause_seconds
        if recent or self._has_speech():
            onset = self._speech_frames()
            if onset.size:
                anchor = (self._probs_from + int(onset[0])) * FRAME_SECONDS
        self._move_start(anchor - opts.onset_pad_seconds)

    def _speech_frames(self) -> np.ndarray:
        """Indices into ``_probs`` of the speech frames at or after the buffer start."""
        first = max(int(self.buffer_start / FRAME_SECONDS) - self._probs_from, 0)
        return np.flatnonzero(self._probs[first:] >= self.options.vad_threshold) + first

    def _in_window(self) -> list[Word]:
        """The committed words inside the buffer (the forced prefix of the next request)."""
        return [w for w in self._recent if w.end > self.buffer_start + 1e-6]

    def _prompt(self) -> str:
        words = [w for w in self._recent if w.end <= self.buffer_start + 1e-6]
        text = join_words(words)
        limit = self.options.prompt_chars
        if len(text) > limit:
            text = text[-limit:]
            text = text[text.find(" ") + 1 :] if " " in text else text
        return text

    def _move_start(self, t: float) -> None:
        if t <= self.buffer_start:
            return
        self.buffer_start = t
        drop = int(t / FRAME_SECONDS) - self._probs_from
        if drop > 0:
            self._probs = self._probs[drop:]
            self._probs_from += drop

    def _close(self) -> None:
        self.finished = True
        self._tentative = []
        self.processed_until = self.audio_end

    # ---- taking the model's answer --------------------------------------------------------------------------
    def step(self, request: Request, hypothesis: Hypothesis, *, busy: bool = False) -> StepResult:
        """Apply the model's words for ``request`` (the one ``plan`` returned last). ``busy``: the worker serves
        several sessions at once, or this one lags (``asr.streaming.adapt``), so the buffer is cut at
        ``busy_trim_seconds`` to keep its rounds short."""
        if request is not self._in_flight:
            raise RuntimeError("step() must answer the request plan() returned last")
        self._in_flight = None
        self.processed_until = max(self.processed_until, request.end)
        new = self._new_words(hypothesis.words, request)
        if request.flush:
            late = [] if self._finishing else late_words(new, self._last_speech_end or 0.0)  # see late_words
            committed, self._tentative = self._commit(new[: len(new) - len(late)]), []
            onset = max(late[0].start - self.options.onset_pad_seconds, self.committed_end) if late else request.end
            self._move_start(onset)
            if self._finishing and not self._has_speech_after(request.end):
                self._close()
            return StepResult(committed, (), 0)
        agreed = self._agreed(new, request.end)
        self._tentative = new[len(agreed) :]
        aged = self._take_tentative(lambda w: w.end <= request.end - self.options.force_commit_seconds)
        committed = self._commit(agreed + aged)
        trimmed = self._trim(request, hypothesis, self.options.busy_trim_seconds if busy else self.options.trim_seconds)
        return StepResult(committed + trimmed, tuple(self._tentative), len(aged) + len(trimmed))

    def skipped_speech(self, request: Request, hypothesis: Hypothesis) -> bool:
        """Did the model stop before the speech did? Whisper now and then ends a short window early, leaving
        speech the VAD heard without words; such a window is worth decoding again with more context."""
        last = max((w.end for w in hypothesis.words), default=request.start)
        first = int((last + _SKIP_MARGIN) / FRAME_SECONDS) - self._probs_from
        stop = int((request.end - _SKIP_MARGIN) / FRAME_SECONDS) - self._probs_from
        if stop <= max(first, 0):
            return False
        speech = int((self._probs[max(first, 0) : stop] >= self.options.vad_threshold).sum()) * FRAME_SECONDS
        return speech >= max(self.options.min_speech_seconds, _SKIP_MARGIN)

    def _has_speech_after(self, t: float) -> bool:
        return self._last_speech_end is not None and self._last_speech_end > t + FRAME_SECONDS

    def _new_words(self, words: Sequence[Word], request: Request) -> list[Word]:
        """The hypothesis minus what is already committed, with any loop cut off.

        Normally the hypothesis starts with the forced prefix, and the new words are simply the rest. A loop that
        starts in the committed tail ("in the" + "in the in the") is cut too. Otherwise (a backend that ignored
        the prefix) the cut is found as whisper_streaming's ``HypothesisBuffer`` does; see ``_cut_committed``.
        """
        words = [w for w in words if w.start < request.end and normalize(w.word)]
        forced = self._in_window() if request.prefix else []
        if forced and [normalize(w.word) for w in words[: len(forced)]] == [normalize(w.word) for w in forced]:
            # the tail reaches back over the whole prefix: Whisper may read all of it again after itself
            new, tail = words[len(forced) :], list(self._recent)[-max(_MAX_NGRAM, len(forced)) :]
            kept = drop_loops(tail + new, longest=max(10, (len(tail) + len(new)) // 2))
            return list(new[: len(kept) - len(tail)] if len(kept) >= len(tail) else drop_loops(new))
        return self._cut_committed(list(drop_loops(words)))

    def _cut_committed(self, words: list[Word]) -> list[Word]:
        """Word times jitter by a tenth of a second or more between calls, so a cut by time alone either repeats
        a committed word or drops a new one. The cut is first placed by time (a word whose middle lies before
        the committed end is old), then moved by up to three words (none starting 0.5 s after the committed end)
        to where it repeats the longest committed tail (two words at least, unless the cut stays where time put it).
        """
        if not self._recent:
            return words
        done = self.committed_end
        by_time = sum(1 for w in words if (w.start + w.end) / 2 < done)
        reach = max(by_time, min(by_time + _SLACK_WORDS, sum(1 for w in words if w.start < done + _SKIP_MARGIN)))
        keys, recent = [normalize(w.word) for w in words], [normalize(w.word) for w in self._recent]
        tail = recent[-_MAX_NGRAM:]
        best = (0, 0, by_time)  # (words of committed tail matched, -distance from the time cut, cut)
        for cut in range(max(by_time - _SLACK_WORDS, 0), reach + 1):
            for n in range(min(len(tail), cut), 0, -1):
                if keys[cut - n : cut] == tail[-n:] and (n >= 2 or cut == by_time):
                    best = max(best, (n, -abs(cut - by_time), cut))
                    break
        # the prompt read out again: the new words open with the committed text's last words squeezed into a moment
        # (said again at a speaking pace they were said again: "... greeting. Your temporary greeting has been")
        n = next((n for n in range(min(len(keys), len(recent)), _MIN_REPEAT - 1, -1) if keys[:n] == recent[-n:]), 0)
        reread = n if n and words[n - 1].end - words[0].start < _REREAD_WORD_SECONDS * n else 0
        return words[max(best[2], reread) :]

    def _agreed(self, new: list[Word], end: float) -> list[Word]:
        """LocalAgreement-2: the longest common prefix of the previous and the new hypothesis.

        Words are compared without case and punctuation, except the last word of the prefix: its punctuation
        depends on what follows, which neither hypothesis may have heard yet ("clangs," then "clangs."). Once a
        comma is committed, the forced prefix steers the model to run-on sentences, so it waits for a match.
        """
        agreed: list[Word] = []
        for old, cur in zip(self._tentative, new):
            if normalize(old.word) != normalize(cur.word) or cur.end > end - self.options.commit_margin_seconds:
                break
            agreed.append(cur)
        if agreed and self._tentative[len(agreed) - 1].word.strip() != agreed[-1].word.strip():
            agreed.pop()
        return agreed

    def _take_tentative(self, condition) -> list[Word]:
        taken = []
        while self._tentative and condition(self._tentative[0]):
            taken.append(self._tentative.pop(0))
        return taken

    def _commit(self, words: list[Word]) -> tuple[Word, ...]:
        kept = []
        for w in words:
            end = max(w.end, self.committed_end)
            w = w if end == w.end else dataclasses.replace(w, end=end)
            kept.append(w)
            self._recent.append(w)
        return tuple(kept)

    def _trim(self, request: Request, hypothesis: Hypothesis, trim_seconds: float) -> tuple[Word, ...]:
        """Keep the buffer bounded; returns words committed by force to make a cut possible."""
        opts = self.options
        length = request.end - self.buffer_start
        if length <= trim_seconds:
            return ()
        done = self.committed_end
        cuts = [t for t in hypothesis.segment_ends if self.buffer_start < t <= done + 1e-6]
        cuts += [w.end for w in self._recent if w.end > self.buffer_start and w.word.rstrip().endswith(SENTENCE_ENDS)]
        if cuts:
            self._move_start(max(cuts))
        if request.end - self.buffer_start <= opts.max_buffer_seconds:
            return ()
        keep_from = request.end - trim_seconds
        forced = self._take_tentative(lambda w: w.end <= keep_from)
        committed = self._commit(forced)
        if self.committed_end > self.buffer_start:
            self._move_start(self.committed_end)
        if request.end - self.buffer_start > opts.max_buffer_seconds:
            self._move_start(keep_from)  # no words to cut at (noise the VAD calls speech): drop the oldest audio
            self._tentative = [w for w in self._tentative if w.start >= keep_from]
        return committed
