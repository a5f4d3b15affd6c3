"""CSV files written for people to open in a spreadsheet: a text cell that starts like a formula is kept as text.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
return before one) as a formula when a CSV file is opened: a hub dataset's reference ``=HYPERLINK(...)``, a group
value ``@SUM(...)`` or a hypothesis ``- 2 + 3`` in results.csv ran, or showed as an error. As OWASP's CSV injection
advice says, such a cell is written with a ``'`` before it, which makes it text. Only text changes: numbers (a
negative SNR) stay numbers, and a file with no such cell is written byte for byte as before.

Used for the files a run writes for people (results.csv, summary.csv, compare.csv), which the product never reads
back: a run resumes from the store, and reports are made from the store's rows. Files it does read back (an
export's ``metadata.csv``, the built-in sets' manifests) are datasets, written as they are. A script or test that
reads one of these files reads it with ``read_csv`` or ``read_rows``, which give back the text as it was (a
hypothesis ``-2 + 3`` read with ``pandas.read_csv`` is ``'-2 + 3``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list
TEXT_MARK = "'"


def as_text(value: Any) -> Any:
    """``value`` with a ``'`` before it when it is a string a spreadsheet would run as a formula (or one that starts
    with ``'`` before such a start, so that ``unmark`` gives back exactly what was given)."""
    return TEXT_MARK + value if _formula_like(value) else value


def unmark(value: Any) -> Any:
    """What ``as_text`` was given, from what it returned: for a script that reads such a file back."""
    return value[1:] if isinstance(value, str) and value.startswith(TEXT_MARK) and _formula_like(value) else value


def _formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip(TEXT_MARK).startswith(FORMULA_STARTS)


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name passed through ``as_text``; numeric columns untouched."""
    return _map_text(frame.copy(), as_text)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """``frame.to_csv(path, index=False)``, safe to open in a spreadsheet (see the module's docstring)."""
    safe_frame(frame).to_csv(path, index=False)


def read_csv(path: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)`` of a file ``write_csv`` wrote, with column names and text cells unmarked."""
    return _map_text(pd.read_csv(path, **kwargs), unmark)


def _map_text(frame: pd.DataFrame, fn: Callable[[Any], Any]) -> pd.DataFrame:
    """``frame`` (changed in place) with ``fn`` applied to its column names and to every cell of its text columns;
    numeric and boolean columns untouched. By place, not by name: a frame may repeat a column name."""
    for i in range(frame.shape[1]):
        dtype = frame.dtypes.iloc[i]
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            frame.isetitem(i, frame.iloc[:, i].map(fn))
    frame.columns = [fn(c) for c in frame.columns]
    return frame


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a file ``write_csv`` wrote, as ``csv.DictReader`` gives them (all text), every cell unmarked."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{unmark(k): unmark(v) for k, v in row.items()} for row in csv.DictReader(f)]
