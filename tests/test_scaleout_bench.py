"""``python -m benchmarks ray``'s table on a real local run (the Ray runs themselves are the benchmark's to time)."""

from __future__ import annotations

import math

from benchmarks import scaleout


def _local(limit: int, chunk: int) -> scaleout.Measured:
    spec = {"dataset": "builtin", "split": None, "noise": "clean", "limit": limit, "executor": "local"}
    return scaleout.measure({**spec, "workers": None, "chunk": chunk})


def test_a_run_of_one_batch_has_no_driver_share_and_says_why(fw_backend):
    """`benchmarks ray --limit 4` stored every row in its first batch: the steady part the driver figures are taken
    over is empty, and the table and summary line printed nan and "nan%"."""
    one_batch = _local(limit=3, chunk=16)
    assert one_batch.rows == one_batch.first_rows == 3 and not math.isfinite(one_batch.driver_share)
    assert "nan" not in scaleout._row("ray", one_batch, driver=True)
    assert "n/a (every row came in the first batch: give --limit above --chunk)" in scaleout._driver_text(one_batch)
    steady = _local(limit=3, chunk=1)
    assert steady.first_rows == 1 and math.isfinite(steady.driver_share)
    assert "% of decode time per row" in scaleout._driver_text(steady) and "nan" not in scaleout._row(
        "ray", steady, True
    )
