"""Streaming ASR: committed and tentative text from audio fed in chunks, for an hour, for many users at once.

``policy`` decides (pure, no clock; ``hypothesis`` holds what it exchanges with the model), ``session`` holds
one user's stream (``adapt``: greedy windows when the worker is busy or the session lags), ``scheduler`` serves
every session of a model with one worker and batched model calls, ``simulate`` drives sessions on a simulated
live clock (``clock``: measured, or modelled by a calibrated cost model), which the streaming benchmark and
evaluation's streaming mode measure.
"""

from asr.streaming.policy import StreamOptions, StreamPolicy
from asr.streaming.scheduler import Scheduler, get_scheduler
from asr.streaming.session import StreamingError, StreamingSession, StreamUpdate

__all__ = [
    "StreamOptions",
    "StreamPolicy",
    "StreamUpdate",
    "StreamingError",
    "StreamingSession",
    "Scheduler",
    "get_scheduler",
]
