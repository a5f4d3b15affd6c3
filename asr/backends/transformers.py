"""transformers backend: the Gradio recipe's ``pipeline("automatic-speech-recognition", ...)``, batched.

The model, tokenizer and feature extractor are loaded exactly as the recipe does, through ``pipeline(...)``
(for the bundled CTranslate2 models, from the Hugging Face folder that :mod:`asr.convert` makes once). The
windows given in one call are decoded together as the faster-whisper backend decodes them: encoded at their
length plus 2 s, one batched ``generate`` in Whisper's timestamp mode (:mod:`asr.backends.hf_rules`), and the
rest of a window whose decode stopped at a timestamp decoded on (:mod:`asr.backends.seek`). The pipeline is not called,
because it hides what word timestamps need: a second, teacher-forced decoder pass over the text gives each
token's probability (softmax of the model's logits) and the cross-attention of the alignment heads, which
dynamic time warping turns into word times, following openai/whisper's ``find_alignment``; segments are the
sentences of a window. No torchaudio is used: audio arrives as 16 kHz float32 arrays.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from asr import compat
from asr.alignment import default_heads, jump_times, words_from_jumps
from asr.audio import SAMPLE_RATE
from asr.backends.base import (
    LANGUAGE_SURE,
    MEL_FRAMES,
    BackendError,
    DecodedAgain,
    WindowResult,
    cpu_cores,
    encoder_frames,
    one_blas_thread,
    pick_device,
    window_seed,
)
from asr.backends.hf_rules import Scores, Suppress, TimestampRules, token_mask, token_scores
from asr.backends.hf_support import decoder_threads, group_by_prompt, model_source, no_progress_bars, no_speech_id
from asr.backends.seek import applies, decode_rest, seek_point
from asr.models import ResolvedModel
from asr.results import DecodeOptions, Segment, Word, split_sentences

try:
    import torch
    from transformers import LogitsProcessorList, pipeline
    from transformers.modeling_outputs import BaseModelOutput
except ImportError as exc:  # pragma: no cover - exercised only without the packages
    raise BackendError("the transformers backend needs transformers and torch: pip install transformers torch") from exc

logger = logging.getLogger(__name__)

NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}  # words are split at characters, not spaces
BEST_OF = 5  # samples drawn per window at a temperature > 0 (Whisper's best_of); the likeliest is kept
__all__ = ["TransformersBackend", "cpu_cores", "pick_device"]


@dataclass(frozen=True)
class _Decoded:
    """One window's generated tokens, before they become segments."""

    prefix: list[int]  # start-of-transcript tokens (sot, language, task) used to decode it
    tokens: list[int]  # the forced start and the generated text tokens (no timestamps, no end-of-text)
    language: str
    seek: int | None = None  # where Whisper's seek rule says to decode on from (sample), None: consumed whole


class TransformersBackend:
    name = "transformers"

    def __init__(self, resolved: ResolvedModel, device: str = "auto") -> None:
        self.model = resolved.name
        compat.transformers_parts()  # fail here, with the version, if its private calls changed
        one_blas_thread()  # the features, hence the text, the same in every process (see its docstring)
        self.device = pick_device(device, "torch")
        torch.set_num_threads(cpu_cores())  # torch's default may be lower than the cores this process may use
        source = model_source(resolved)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        try:
            with no_progress_bars():
                self._pipe = pipeline("automatic-speech-recognition", model=source, device=self.device, dtype=dtype)
        except Exception as exc:
            raise BackendError(f"cannot load model {resolved.name!r} with transformers: {exc}") from exc
        self._model = self._pipe.model.eval()
        self._tokenizer = self._pipe.tokenizer
        self._features = self._pipe.feature_extractor
        gen = self._model.generation_config
        self.multilingual = bool(getattr(gen, "is_multilingual", hasattr(gen, "lang_to_id")))
        self._eot = int(gen.eos_token_id if isinstance(gen.eos_token_id, int) else gen.eos_token_id[0])
        self._no_timestamps = int(gen.no_timestamps_token_id)
        self._no_speech = no_speech_id(self._tokenizer)
        config = self._model.config
        heads = getattr(gen, "alignment_heads", None) or default_heads(
            config.decoder_layers, config.decoder_attention_heads
        )
        self._heads = [tuple(h) for h in heads]
        self._suppress_always = token_mask(gen.suppress_tokens, self._model.config.vocab_size, self.device)
        self._suppress_at_begin = token_mask(gen.begin_suppress_tokens, self._model.config.vocab_size, self.device)
        # transformers fills every None of a passed generation config from the model's own, so the settings
        # replaced here are cleared on the model's config: suppression is done by Suppress's precomputed masks,
        # and the start tokens (language, task, prompt) are given to generate directly
        gen.suppress_tokens = gen.begin_suppress_tokens = gen.forced_decoder_ids = None
        self._generation = copy.deepcopy(gen)
        self._lock = threading.Lock()

    def transcribe_windows(
        self,
        windows: Sequence[np.ndarray],
        options: DecodeOptions,
        prompts: Sequence[str | None] | None = None,
        prefixes: Sequence[str | None] | None = None,
    ) -> list[WindowResult]:
        if not windows:
            return []
        prompts = list(prompts) if prompts is not None else [options.initial_prompt] * len(windows)
        prefixes = list(prefixes) if prefixes is not None else [None] * len(windows)
        if options.temperature > 0:  # sampled: one window at a time, each under its own seed
            done = [self._sampled(w, p, f, options) for w, p, f in zip(windows, prompts, prefixes)]
        else:
            done = self._batched(windows, prompts, prefixes, options)
        results, seeks = [r for r, _ in done], [s for _, s in done]
        # Whisper's seek inside batched windows, as on the faster-whisper backend (asr.backends.seek)
        return decode_rest(self.transcribe_windows, self.multilingual, windows, options, prompts, results, seeks)

    def encode_windows(self, windows: Sequence[np.ndarray], options: DecodeOptions) -> DecodedAgain:
        """Nothing kept yet: each fallback retry encodes its window again (it is sampled under its own seed)."""
        return DecodedAgain(self, list(windows))

    def _batched(
        self, windows: Sequence[np.ndarray], prompts: list, prefixes: list, options: DecodeOptions
    ) -> list[tuple[WindowResult, int | None]]:
        """One encoder pass per padded length among the windows (see :meth:`_encode`), then one ``generate`` per
        (prompt, forced start) among those."""
        done: list[tuple[WindowResult, int | None] | None] = [None] * len(windows)
        with self._lock, torch.inference_mode():
            encodings = self._encode(windows, options)
        unsure: list[int] = []  # windows whose language was unclear on a short encoding: encoded at 30 s next
        self._decode_groups(encodings, windows, prompts, prefixes, options, done, unsure)
        if unsure:  # detected and decoded on Whisper's 30 s encoding, as on the faster-whisper backend
            with self._lock, torch.inference_mode():
                again = self._encode([windows[i] for i in unsure], options, MEL_FRAMES)
            self._decode_groups(
                [([unsure[r] for r in g], e) for g, e in again], windows, prompts, prefixes, options, done
            )
        return done  # type: ignore[return-value]

    def _decode_groups(self, encodings, windows, prompts, prefixes, options, done, unsure=None) -> None:
        """Decode each (windows, encoding) group into ``done``; with ``unsure`` given, a window of a short encoding
        whose language is unclear (under ``LANGUAGE_SURE``) is left out and added to it instead."""
        with self._lock, torch.inference_mode(), decoder_threads():
            for group, encoded in encodings:
                languages, sure = self._languages(encoded, options)
                if unsure is not None and encoded.shape[1] < MEL_FRAMES // 2 and not all(sure):
                    unsure += [i for i, ok in zip(group, sure) if not ok]
                    rows = [r for r, ok in enumerate(sure) if ok]
                    group, encoded, languages = [group[r] for r in rows], encoded[rows], [languages[r] for r in rows]
                    if not group:
                        continue
                keys = [(prompts[i], prefixes[i]) for i in group]
                for (prompt, forced), rows in group_by_prompt(keys).items():
                    idx = [group[r] for r in rows]
                    sizes = [windows[i].size for i in idx]
                    langs = [languages[r] for r in rows]
                    decoded = self._generate(encoded[rows], langs, prompt, forced, sizes, options)
                    for i, pair in zip(idx, self._results(encoded[rows], decoded, [windows[i] for i in idx], options)):
                        done[i] = pair

    def _sampled(
        self, window: np.ndarray, prompt: str | None, forced: str | None, options: DecodeOptions
    ) -> tuple[WindowResult, int | None]:
        """:data:`BEST_OF` samples of one window under its own seed (run seed + its audio); the likeliest wins."""
        with self._lock, torch.inference_mode():
            torch.manual_seed(window_seed(options.seed, window, options.temperature))
            [(_, encoded)] = self._encode([window], options)
            with decoder_threads():
                [language], [sure] = self._languages(encoded, options)
            if not sure and encoded.shape[1] < MEL_FRAMES // 2:  # as in _batched: detected and decoded at 30 s
                [(_, encoded)] = self._encode([window], options, MEL_FRAMES)
                with decoder_threads():
                    [language], _ = self._languages(encoded, options)
            with decoder_threads():
                decoded = self._generate(encoded, [language], prompt, forced, [window.size], options, samples=BEST_OF)
                many = encoded.expand(len(decoded), -1, -1)
                results = self._results(many, decoded, [window] * len(decoded), options)
        return max(results, key=lambda pair: pair[0].avg_logprob)

    def _encode(
        self, windows: Sequence[np.ndarray], options: DecodeOptions, frames: int | None = None
    ) -> list[tuple[list[int], torch.Tensor]]:
        """(windows, encoder output) per padded length, shortest first. Each window's log-mel is computed alone
        and padded with zeros to :func:`asr.backends.base.encoder_frames` (its length plus 2 s, at least
        ``options.encoder_seconds``), as the faster-whisper backend pads it: both backends then encode a window
        alike, and a window's encoding never depends on its batch-mates. (The recipe's feature extractor pads
        the audio to 30 s instead, which hears some words differently and encodes a short prompt 3x slower.)"""
        feats = [
            self._features(
                np.asarray(w, np.float32), sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="pt"
            ).input_features[0, :, :MEL_FRAMES]
            for w in windows
        ]
        padded = [frames or encoder_frames(f.shape[-1], options.encoder_seconds) for f in feats]
        out = []
        for n in sorted(set(padded)):
            group = [i for i, f in enumerate(padded) if f == n]
            batch = torch.stack([torch.nn.functional.pad(feats[i], (0, n - feats[i].shape[-1])) for i in group])
            out.append((group, compat.hf_encode(self._model.model.encoder, batch.to(self.device, self._model.dtype))))
        return out

    def _languages(self, encoded: torch.Tensor, options: DecodeOptions) -> tuple[list[str], list[bool]]:
        """Each window's language and whether it is clear: English-only models are always "en"; multilingual ones
        use the option or detect per window, as Whisper does (the first decoder step after start-of-transcript,
        softmax over the language tokens), clear at ``LANGUAGE_SURE`` or more."""
        n = len(encoded)
        if not self.multilingual:
            return ["en"] * n, [True] * n
        if options.language:
            return [options.language] * n, [True] * n
        gen = self._model.generation_config
        names, ids = zip(*sorted((t.strip("<|>"), i) for t, i in gen.lang_to_id.items()))
        start = torch.full((n, 1), int(gen.decoder_start_token_id), device=encoded.device)
        logits = self._model(encoder_outputs=BaseModelOutput(last_hidden_state=encoded), decoder_input_ids=start).logits
        probs = logits[:, -1, list(ids)].float().softmax(-1)
        best = probs.max(-1)
        return [names[int(i)] for i in best.indices], [float(p) >= LANGUAGE_SURE for p in best.values]

    def _generate(
        self,
        encoded: torch.Tensor,
        languages: list[str],
        prompt: str | None,
        forced: str | None,
        sizes: list[int],
        options: DecodeOptions,
        samples: int = 1,
    ) -> list[_Decoded]:
        """One batched ``generate`` call from the prompt if any, Whisper's start tokens, <|notimestamps|> (or, in
        timestamp mode, <|0.00|> before a forced start) and the forced start of the transcript if any (it is kept
        in the tokens, so it is scored and aligned too). ``sizes``: each window's samples.

        In timestamp mode each row's decode is cut where Whisper's seek rule says (see :func:`_cut`); segment
        and word times come from the alignment, not from the timestamps. ``GenerationMixin.generate`` is called
        rather than Whisper's ``generate`` (see :func:`asr.compat.hf_generate`). ``samples`` > 1 returns that
        many samples of each window, in order.
        """
        config = copy.deepcopy(self._generation)
        config.num_beams = options.beam_size
        if options.temperature > 0:  # Whisper samples from the whole distribution: no top-k, no top-p
            config.do_sample, config.temperature, config.top_k, config.top_p = True, options.temperature, 0, 1.0
            config.num_return_sequences = samples
        prefixes = [self._prefix(language, options) for language in languages]
        text = self._forced(forced)
        if not options.timestamp_tokens:
            mode = [self._no_timestamps]
        else:  # a forced start is an open segment from <|0.00|> (as faster-whisper's prompt has it)
            mode = [self._no_timestamps + 1] if text else []
        before = self._prompt(prompt)
        start = torch.tensor([before + p + mode + text for p in prefixes], device=self.device)
        config.max_length = self._model.config.max_target_positions - 1  # room for <|endoftext|> when scoring
        if (cap := options.max_new_tokens(max(sizes) / SAMPLE_RATE)) is not None:
            config.max_length = min(config.max_length, start.shape[1] + cap)
        rules = [Suppress(self._suppress_always, self._suppress_at_begin, start.shape[1])]
        if options.timestamp_tokens:
            rules.append(TimestampRules(self._eot, self._no_timestamps, len(before) + len(prefixes[0])))
        sequences = compat.hf_generate(
            self._model,
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
            decoder_input_ids=start,
            # unused by Whisper once encoded; given so that transformers does not warn about padding
            attention_mask=torch.ones(encoded.shape[:2], dtype=torch.long, device=self.device),
            generation_config=config,
            logits_processor=LogitsProcessorList(rules),
        )
        per = len(sequences) // len(prefixes)
        rows = [(p, lang, n) for p, lang, n in zip(prefixes, languages, sizes) for _ in range(per)]
        out = []
        for row, (prefix, language, n) in zip(sequences[:, start.shape[1] :].tolist(), rows):
            kept, seek = self._cut(row, n, options, forced)
            out.append(_Decoded(prefix, text + self._text(kept), language, seek))
        return out

    def _cut(self, row: list[int], samples: int, options: DecodeOptions, forced: str | None):
        """A generated row up to its end-of-text, and where Whisper's seek rule says the window's decode stopped
        (:func:`asr.backends.seek.seek_point`; None: the window was consumed whole)."""
        row = row[: row.index(self._eot)] if self._eot in row else row
        if not applies(options, forced):
            return row, None
        return seek_point(row, self._no_timestamps + 1, samples)

    def _forced(self, forced: str | None) -> list[int]:
        """Tokens of the forced transcript start, at most half the context (as faster-whisper's ``prefix``)."""
        if not forced or not forced.strip():
            return []
        ids = self._tokenizer(" " + forced.strip(), add_special_tokens=False).input_ids
        return ids[: self._model.config.max_target_positions // 2 - 1]

    def _prompt(self, prompt: str | None) -> list[int]:
        """``<|startofprev|>`` and the prompt's last tokens, at most half the context (as openai/whisper)."""
        if not prompt:
            return []
        ids = self._tokenizer(" " + prompt.strip(), add_special_tokens=False).input_ids
        limit = self._model.config.max_target_positions // 2 - 1
        return [int(self._model.generation_config.prev_sot_token_id)] + ids[-limit:]

    def _prefix(self, language: str, options: DecodeOptions) -> list[int]:
        gen = self._model.generation_config
        prefix = [int(gen.decoder_start_token_id)]
        if self.multilingual:
            prefix += [gen.lang_to_id[f"<|{language}|>"], gen.task_to_id[options.task]]
        return prefix

    def _results(
        self,
        encoded: torch.Tensor,
        decoded: list[_Decoded],
        windows: list[np.ndarray],
        options: DecodeOptions,
    ) -> list[tuple[WindowResult, int | None]]:
        """Score the text with a teacher-forced pass, align words, and build each window's segments; with each,
        where to decode on from (None for a window judged silent, as on the faster-whisper backend).

        The pass is over the text without timestamps after <|notimestamps|>, whichever mode decoded it: that is
        what openai/whisper's word alignment reads, and the mean log probability is the text's."""
        rows = [d.prefix + [self._no_timestamps] + d.tokens + [self._eot] for d in decoded]
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [self._eot] * (length - len(r)) for r in rows], device=self.device)
        with self._attention("eager" if options.word_timestamps else None):
            out = self._model.model.decoder(
                input_ids=ids, encoder_hidden_states=encoded, output_attentions=options.word_timestamps
            )
        logits = self._model.proj_out(out.last_hidden_state).float()
        results = []
        for b, (d, window) in enumerate(zip(decoded, windows)):
            n_prefix = len(d.prefix) + 1  # with <|notimestamps|>
            stats = token_scores(logits[b], n_prefix, rows[b][n_prefix:], self._eot, self._no_speech)
            jumps = None
            if options.word_timestamps and len(rows[b]) > n_prefix + 1:
                attention = torch.stack([out.cross_attentions[la][b, h, : len(rows[b])] for la, h in self._heads])
                jumps = jump_times(attention, len(d.prefix), window.size)
            text = self._tokenizer.decode(d.tokens).strip()
            segments = self._segments(d, text, jumps, stats, (d.seek or window.size) / SAMPLE_RATE)
            silent = (
                stats.no_speech_prob > options.no_speech_threshold and stats.avg_logprob < options.logprob_threshold
            )
            result = WindowResult(
                () if silent else segments, d.language, stats.avg_logprob, stats.no_speech_prob, text,
                options.temperature, silent,
            )  # fmt: skip
            results.append((result, None if silent else d.seek))
        return results

    def _text(self, tokens: list[int]) -> list[int]:
        return [t for t in tokens if t < self._eot]

    def _segments(
        self, d: _Decoded, text: str, jumps: np.ndarray | None, stats: Scores, duration: float
    ) -> tuple[Segment, ...]:
        """With words, one segment per sentence, from its first to its last word; without, the whole window."""
        if not text:
            return ()
        if jumps is None:
            return (Segment(0.0, duration, text, (), stats.avg_logprob, stats.no_speech_prob),)
        split_as = "chinese" if d.language in NO_SPACE_LANGUAGES else "english"
        words_text, word_tokens, _ = compat.hf_combine_tokens_into_words(self._tokenizer, d.tokens, split_as)
        words: tuple[Word, ...] = words_from_jumps(words_text, word_tokens, jumps, stats.token_probs)
        return tuple(
            Segment(
                start=sentence[0].start,
                end=sentence[-1].end,
                text="".join(w.word for w in sentence).strip(),
                words=sentence,
                avg_logprob=stats.avg_logprob,
                no_speech_prob=stats.no_speech_prob,
            )
            for sentence in split_sentences(words)
        )

    @contextlib.contextmanager
    def _attention(self, implementation: str | None) -> Iterator[None]:
        """Attention weights need the eager implementation; switch only for the scoring pass."""
        previous = compat.hf_attn_implementation(self._model)
        if implementation is None or implementation == previous:
            yield
            return
        compat.hf_set_attn_implementation(self._model, implementation)
        try:
            yield
        finally:
            compat.hf_set_attn_implementation(self._model, previous)
