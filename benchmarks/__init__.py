"""Benchmarks: commands that print measured figures (the README's "Performance"), never imported by the project.

``python -m benchmarks asr FILE|DATASET|--long`` compares our full-context paths with faster-whisper's own side by
side in one process (``--isolated FILE``: one process per approach, with memory), ``stream FILE``
replays a live stream on a simulated clock (:mod:`asr.streaming.simulate`) against the Gradio recipe, and
``sweep`` times a whole built-in validation sweep. This package sits above the engine and evaluation and imports
both; nothing imports it, so benchmark code never becomes an engine dependency. Every WER it prints is
:mod:`evaluation.scoring`'s, the one validation reports.
"""

import asr  # noqa: F401  (first: it sets the OpenMP wait policy before any benchmark loads torch or CTranslate2)
