"""Logging for the command lines: each message printed once, by the root handler, at the level the command set.

``datasets`` and ``huggingface_hub`` add a console handler of their own to their top logger when imported and
still let their records propagate, so under ``logging.basicConfig`` each of their warnings was printed twice:
their bare text, then ours (``transformers`` does the same where ``CI`` is set; without it, and ``ray`` always,
its records stop at its own handler and print once). The libraries are imported late, after the command line
has set up logging, so :func:`configure` cannot remove those handlers at once: a record factory removes a plain
``logging.StreamHandler`` from the loggers a record passes through on its way to our handler, before the record
is handled (a library's file handlers, and loggers that do not propagate to ours, are left alone).

The libraries set their own level when imported (WARNING), from the variables they document; :func:`configure`
sets those variables (unless the user has) to the command's level, at its floor or above without ``--debug``:
a library's INFO lines are its progress, not ours, and the hub client's warnings are its retries (with no
network, 12 to 20 lines before the command's one-line error, which says what the hub probe found).
"""

from __future__ import annotations

import logging
import os
import sys

# the libraries that set their level when imported: the variable each reads it from, its level without --debug
LIBRARY_LEVELS = {
    "datasets": ("DATASETS_VERBOSITY", logging.WARNING),
    "huggingface_hub": ("HF_HUB_VERBOSITY", logging.ERROR),
    "transformers": ("TRANSFORMERS_VERBOSITY", logging.WARNING),
}
_installed = False  # the record factory, once per process


def configure(level: int, fmt: str) -> None:
    """``logging.basicConfig(level, fmt)`` with the libraries' messages once each, at ``level`` (DEBUG: ``--debug``).

    Nothing else is changed where the root logger already had a handler (an application or pytest that embeds
    the command has its own logging).
    """
    if logging.getLogger().handlers:
        return
    logging.basicConfig(level=level, format=fmt)
    for name, (variable, floor) in LIBRARY_LEVELS.items():
        chosen = level if level <= logging.DEBUG else max(level, floor)
        os.environ.setdefault(variable, logging.getLevelName(chosen).lower())  # (the names they read are lower case)
        known = logging.getLevelName(os.environ[variable].upper())  # a number for a level's name
        if name in sys.modules and isinstance(known, int):  # imported already: it has read its level
            logging.getLogger(name).setLevel(known)
    _install()


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def record(name: str, *args, **kwargs) -> logging.LogRecord:
        _one_printer(logging.getLogger(name))
        return make_record(name, *args, **kwargs)

    logging.setLogRecordFactory(record)


def _one_printer(logger: logging.Logger) -> None:
    """Remove the console handlers of ``logger`` and the loggers above it whose records reach the root's."""
    chain: list[logging.Logger] = []
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        chain.append(node)
        if not node.propagate:
            return  # its records stop below the root: the library's own handler is the one printer
        node = node.parent
    if not logging.root.handlers:
        return
    for node in chain:
        for handler in [h for h in node.handlers if type(h) is logging.StreamHandler]:
            node.removeHandler(handler)
