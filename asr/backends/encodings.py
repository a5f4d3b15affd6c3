"""The faster-whisper backend's encoded windows, kept so that the temperature fallback decodes a window again
without computing its features and encoder output again (most of a retry's cost on CPU), and aligns words only
for the retry it keeps.

Why it may: CTranslate2 encodes a window in a batch to the same bits as alone on the CPU, so a retry decoded from
its batch's rows is the retry decoded alone; on a GPU a subset of a batch is encoded again instead, as before.
At a fallback temperature the windows of a group still failing are generated in one call: retries are greedy
(``faster_whisper._retry_settings``), and a window's tokens came out the same alone and beside others. A retry
decoded without words keeps its generation, and the decode with words of the retry chosen aligns that same
generation. tests/test_fallback.py checks all three against each window decoded alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import ctranslate2
import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import WindowResult
from asr.backends.seek import decode_rest
from asr.results import DecodeOptions


class Encoded:
    """:class:`~asr.backends.base.EncodedWindows` of the faster-whisper backend: its groups of windows, each
    encoded in one call, with their language, as ``FasterWhisperBackend._encoded`` made them."""

    def __init__(self, backend, windows, prompts, frames, groups) -> None:
        self._backend, self._windows, self._prompts, self._frames = backend, windows, prompts, frames
        self._groups: list[tuple[list[int], str, object]] = groups
        self._generated: dict[tuple, list] = {}  # generations decoded without words, to align if chosen

    def decode(
        self,
        options: DecodeOptions,
        indices: Sequence[int] | None = None,
        words: bool = True,
        prefixes: Sequence[str | None] | None = None,
    ) -> list[WindowResult]:
        indices = list(range(len(self._windows))) if indices is None else list(indices)
        prefixes = list(prefixes) if prefixes is not None else [None] * len(self._windows)
        decoding = options if words else options.replace(word_timestamps=False)
        results: dict[int, WindowResult] = {}
        seeks: dict[int, int | None] = {}
        for group, language, encoded in self._groups:
            for idx in self._batches(group, indices, options):
                if idx != group and self._backend.device != "cpu":  # no rows of a GPU encoding: encoded again
                    windows, prompts = [self._windows[i] for i in idx], [self._prompts[i] for i in idx]
                    again = self._backend.transcribe_windows(windows, decoding, prompts, [prefixes[i] for i in idx])
                    results.update(zip(idx, again))
                    seeks.update(dict.fromkeys(idx))
                    continue
                keys = [(i, prefixes[i], options.replace(word_timestamps=True)) for i in idx]
                kept = [self._generated.pop(k, None) for k in keys]
                rows = (encoded, None) if idx == group else _rows(group, encoded, idx)  # the view and its array
                decoded, generated = self._backend._decode(
                    rows[0],
                    [self._windows[i] for i in idx], language, [self._prompts[i] for i in idx],
                    [prefixes[i] for i in idx], [self._frames[i] for i in idx], decoding,
                    kept if None not in kept else None,
                )  # fmt: skip
                if not words and options.word_timestamps:  # to align if decoded again with words
                    self._generated.update(zip(keys, generated))
                for i, (result, seek) in zip(idx, decoded):
                    results[i], seeks[i] = result, seek
        # Whisper's seek inside batched windows: the rest of every window whose timestamp-mode decode stopped
        # before its end (see asr.backends.seek.seek_point) is decoded in a follow-up batch and joined on
        return decode_rest(
            self._backend.transcribe_windows, self._backend.multilingual,
            [self._windows[i] for i in indices], decoding, [self._prompts[i] for i in indices],
            [results[i] for i in indices], [seeks[i] for i in indices],
        )  # fmt: skip

    def _batches(self, group: list[int], indices: list[int], options: DecodeOptions) -> list[list[int]]:
        """The windows of ``group`` asked for, as generated together. At a fallback temperature (greedy, so
        a window's tokens do not depend on its batch-mates) only windows with the same token cap share a call,
        since CTranslate2 takes one ``max_length`` per call."""
        idx = [i for i in group if i in indices]
        if not idx or options.temperature <= 0 or options.max_tokens_per_second is None:
            return [idx] if idx else []
        caps: dict[int | None, list[int]] = {}
        for i in idx:
            caps.setdefault(options.max_new_tokens(self._windows[i].size / SAMPLE_RATE), []).append(i)
        return list(caps.values())


def _rows(group: list[int], encoded, idx: list[int]) -> tuple[object, np.ndarray]:
    """The encoder output of some windows of a group: its rows (CPU), as a StorageView and the array it shares
    (which must outlive the view's use)."""
    array = np.ascontiguousarray(np.asarray(encoded)[[group.index(i) for i in idx]])
    return ctranslate2.StorageView.from_array(array), array
