"""The streaming table's bootstrap percentiles: many samples at once, the same floats as np.percentile each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.stream_tables import percentiles, side_by_side


@pytest.mark.parametrize("q", [0, 2.5, 33.3, 50, 95, 97.5, 100])
@pytest.mark.parametrize("cells", [1, 7, 1 << 22])  # one sample per grid, a few, all in one grid
def test_percentiles_are_numpys_bit_for_bit(q: float, cells: int) -> None:
    rng = np.random.default_rng(int(q * 10) + cells)
    samples = [np.round(rng.gamma(2.0, 0.8, size=int(rng.integers(1, 40))), 4) for _ in range(200)]
    samples += [np.full(int(rng.integers(1, 5)), 1.25), np.array([0.5]), rng.integers(0, 3, 9).astype(float)]
    expected = np.array([np.percentile(a, q) for a in samples])
    assert percentiles(samples, q, cells=cells).tobytes() == expected.tobytes()


def test_side_by_side_twice_is_side_by_side_once() -> None:
    rows = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b"],
            "noise": ["clean", "white@10", "clean", "white@10"],
            "mode": ["offline", "offline", "streaming", "streaming"],
            "errors": [1, 2, 3, 4],
        }
    )
    once = side_by_side(rows)
    assert list(once["noise"]) == ["clean", "white@10", "clean [streaming]", "white@10 [streaming]"]
    pd.testing.assert_frame_equal(side_by_side(once), once)
    assert list(rows["noise"]) == ["clean", "white@10", "clean", "white@10"]  # the caller's rows untouched
    one_path = rows[rows["mode"] == "streaming"]
    assert side_by_side(one_path) is one_path  # one path: nothing to tell apart
