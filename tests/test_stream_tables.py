"""The streaming table's bootstrap percentiles: many samples at once, the same floats as np.percentile each."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.stream_tables import percentiles


@pytest.mark.parametrize("q", [0, 2.5, 33.3, 50, 95, 97.5, 100])
@pytest.mark.parametrize("cells", [1, 7, 1 << 22])  # one sample per grid, a few, all in one grid
def test_percentiles_are_numpys_bit_for_bit(q: float, cells: int) -> None:
    rng = np.random.default_rng(int(q * 10) + cells)
    samples = [np.round(rng.gamma(2.0, 0.8, size=int(rng.integers(1, 40))), 4) for _ in range(200)]
    samples += [np.full(int(rng.integers(1, 5)), 1.25), np.array([0.5]), rng.integers(0, 3, 9).astype(float)]
    expected = np.array([np.percentile(a, q) for a in samples])
    assert percentiles(samples, q, cells=cells).tobytes() == expected.tobytes()
