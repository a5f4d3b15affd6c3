"""Validation of speech recognition: WER per accent x noise condition, with confidence intervals and run comparison.

Stages, one module each: ``datasets`` (+ ``sources``, ``builtin``) -> ``noise`` -> ``runner`` (through
``asr.transcribe``) -> ``scoring`` (+ ``normalizer``) -> ``tables`` / ``report`` -> ``store`` (+ ``runstore``);
``compare`` and ``replay`` read stored runs; ``cli`` is the terminal front end. Free of Gradio.
"""
