"""The transformers backend's small helpers: where its model comes from, its no-speech token, which windows are
generated together, and the decoder's thread count. Kept apart so the backend module stays one reading."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from asr.backends.base import BackendError
from asr.models import ResolvedModel


@contextlib.contextmanager
def decoder_threads() -> Iterator[None]:
    """Decode on one torch thread (the encoder keeps every core). A decoder step is a few hundred small operations;
    splitting each over the cores costs a synchronisation per operation, which on a shared CPU cost 30x (a step of
    4 windows: 0.63 s on 2 threads, 0.02 s on 1, load 5 on 2 cores). Process-wide, held under the backend's lock."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers' progress bars off while a model loads or converts (its "Loading weights" bar landed in a CLI's
    output or a server's log), back on after if they were on. Both backends load through this."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def group_by_prompt(keys: list[tuple[str | None, str | None]]) -> dict[tuple[str | None, str | None], list[int]]:
    """Windows that share a (prompt, forced prefix) are generated together (one start sequence per call)."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(tuple(k.strip() if k and k.strip() else None for k in key), []).append(i)
    return groups


def no_speech_id(tokenizer) -> int | None:
    for token in ("<|nocaptions|>", "<|nospeech|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            return token_id
    return None


def model_source(resolved: ResolvedModel) -> str:
    """What ``pipeline(model=...)`` gets: the converted folder, a local Hugging Face folder, or the hub id."""
    if resolved.format == "ctranslate2":
        from asr.convert import ConversionError, hf_model_dir

        try:
            return str(hf_model_dir(resolved))
        except (ConversionError, OSError, KeyError, ValueError) as exc:
            raise BackendError(f"cannot import the CTranslate2 model {resolved.name!r}: {exc}") from exc
    return resolved.path
