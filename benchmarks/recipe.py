"""The Gradio recipe's streaming demo, replayed on the benchmark's clock: the baseline of ``benchmarks stream``.

The recipe appends every chunk, peak-normalised by its own maximum, to a growing array and runs the transformers
pipeline over all of it on every chunk. Each update therefore costs more than the last, the text falls behind
the voice, nothing is ever final, and past 30 s the pipeline refuses the input. The replay runs the same code on
the same audio with the same chunks, one update per chunk in arrival order, and stops at the pipeline's error or
once the text is ``max_lag`` seconds behind the voice, so that the benchmark stays bounded.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.results import Transcript
from benchmarks.figures import update_figures, wer

logger = logging.getLogger(__name__)


class BaselineUnavailable(RuntimeError):
    """The recipe's pipeline cannot be built here (the message says why)."""


def recipe_pipeline(model: str, device: str = "cpu"):
    """The recipe's ``pipeline("automatic-speech-recognition", model=...)`` on ``model``'s Hugging Face weights.

    Threads are set as our transformers backend sets them, so that threads are not what a benchmark compares.
    """
    try:
        import torch
        from transformers import pipeline
    except ImportError as exc:
        raise BaselineUnavailable(f"the recipe needs transformers and torch: {exc}") from exc
    from asr.backends.base import BackendError, cpu_cores, pick_device
    from asr.convert import ConversionError, hf_model_dir
    from asr.models import UnknownModelError, resolve

    torch.set_num_threads(cpu_cores())
    try:
        source = str(hf_model_dir(resolve(model)))
        return pipeline("automatic-speech-recognition", model=source, device=pick_device(device))
    except (BackendError, ConversionError, UnknownModelError, OSError, ValueError) as exc:
        raise BaselineUnavailable(f"no transformers pipeline for {model!r}: {exc}") from exc


def recipe_update(pipe, stream: np.ndarray | None, chunk: np.ndarray) -> tuple[np.ndarray, str]:
    """The recipe's handler, line for line (16 kHz mono chunks): peak-normalise, append, re-transcribe all."""
    y = chunk.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        y /= np.max(np.abs(y))  # the recipe's normalisation: an all-zero chunk becomes NaN
    stream = y if stream is None else np.concatenate([stream, y])
    return stream, pipe({"sampling_rate": SAMPLE_RATE, "raw": stream})["text"]


def run_baseline(audio: np.ndarray, model: str, chunk: float, offline: Transcript, *, max_lag: float = 10.0) -> dict:
    """Replay the recipe on ``audio``: the figures of ``benchmarks stream`` for it.

    ``{"available": False, "stop_reason": ...}`` when its pipeline cannot be built (transformers missing, no
    Hugging Face weights for ``model``); any other failure is raised.
    """
    try:
        pipe = recipe_pipeline(model)
    except BaselineUnavailable as exc:
        logger.warning("baseline skipped: %s", exc)
        return {"available": False, "stop_reason": str(exc)}
    recipe_update(pipe, None, audio[:SAMPLE_RATE])  # warm-up: the first call of a pipeline is slow
    step = max(int(round(chunk * SAMPLE_RATE)), 1)
    costs, times = [], []
    stream, text, clock, nan_chunks = None, "", 0.0, 0
    stopped_at, reason = None, "reached the end of the audio"
    for i in range(0, audio.size, step):
        arrival = min(i + step, audio.size) / SAMPLE_RATE
        clock = max(clock, arrival)
        piece = audio[i : i + step]
        nan_chunks += int(not np.any(piece))
        t0 = time.perf_counter()
        try:
            stream, text = recipe_update(pipe, stream, piece)
        except ValueError as exc:  # the pipeline refusing input past 30 s: the recipe's failure is what we report
            stopped_at, reason = arrival, f"error: {str(exc).splitlines()[0][:200]}"
            break
        costs.append(time.perf_counter() - t0)
        times.append(clock)
        clock += costs[-1]
        if clock - arrival > max_lag:
            stopped_at, reason = arrival, f"fell behind real time by more than {max_lag:g} s"
            break
    covered = stopped_at if stopped_at is not None else audio.size / SAMPLE_RATE
    heard = "".join(w.word for w in offline.words if w.end <= covered).strip()
    logger.info("baseline stopped at %s s: %s", covered, reason)
    return {
        "available": True,
        "sessions": 1,
        "audio_seconds": round(covered, 3),
        **update_figures(np.asarray(costs), np.asarray(times), covered),
        "commit_latency_p50": None,  # nothing is ever final: every update may rewrite all of the text
        "commit_latency_p95": None,
        "final_lag_seconds": round(clock - covered, 3),
        "committed_text": text.strip(),
        "wer_vs_offline": wer(heard, text),
        "wer_vs_ref": None,
        "nan_chunks": nan_chunks,
        "stopped_at_seconds": stopped_at,
        "stop_reason": reason,
    }
