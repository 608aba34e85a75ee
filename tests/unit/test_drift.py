"""The drift engine: its false-alarm rate per batch at every size, its power on small batches, and
the pieces it is made of against scipy's own two-sample statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelyard.contract.config import DriftLimits
from modelyard.quality.drift import (
    TEST_UP_TO,
    compare,
    ks_p_value,
    power_note,
    wasserstein,
    wasserstein_noise,
    worst,
)
from modelyard.quality.profile import SKETCH, profile_frame

LIMITS = DriftLimits()
POOL_ROWS = 20_000


def make_pool(rows: int, seed: int) -> pd.DataFrame:
    """Columns of the kinds real tables have: normal, skewed, counts, flags, categories with a rare
    level, and missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "normal": rng.normal(50, 10, rows),
            "skewed": rng.lognormal(10, 0.8, rows),
            "counts": rng.poisson(3, rows).astype(float),
            "flag": rng.integers(0, 2, rows),
            "plan": rng.choice(["basic", "pro", "team", "enterprise"], rows, p=[0.6, 0.25, 0.13, 0.02]),
            "region": rng.choice([f"r{i}" for i in range(12)], rows),
            "label": rng.choice(["a", "b"], rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "skewed"] = np.nan
    return frame


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    return make_pool(POOL_ROWS, seed=0)


@pytest.fixture(scope="module")
def reference(pool: pd.DataFrame) -> dict:
    return profile_frame(pool, "label", "classification")


def alarm_rate(pool: pd.DataFrame, reference: dict, rows: int, batches: int, seed: int) -> float:
    """Share of batches bootstrapped from the reference data in which any column drifts."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(batches):
        batch = pool.iloc[rng.integers(0, len(pool), rows)]
        alarms += worst([r.level for r in compare(batch, reference, LIMITS)]) != "ok"
    return alarms / batches


@pytest.mark.parametrize(
    ("rows", "batches"),
    [(50, 400), (150, 400), (1_000, 200), (100_000, 20), (1_000_000, 5)],
)
def test_same_distribution_batches_raise_at_most_five_percent_false_alarms(
    pool: pd.DataFrame, reference: dict, rows: int, batches: int
) -> None:
    assert alarm_rate(pool, reference, rows, batches, seed=rows) <= 0.05


def test_a_half_sd_shift_in_one_feature_is_seen_in_nine_of_ten_batches_of_150(
    pool: pd.DataFrame, reference: dict
) -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        batch = pool.iloc[rng.integers(0, len(pool), 150)].copy()
        batch["normal"] += 0.5 * 10
        drifted = [r.column for r in compare(batch, reference, LIMITS) if r.level != "ok"]
        hits += "normal" in drifted
    assert hits / 200 >= 0.9


def test_every_kind_and_size_gets_its_own_method(pool: pd.DataFrame, reference: dict) -> None:
    small = {r.column: r.method for r in compare(pool.sample(200, random_state=0), reference, LIMITS)}
    assert small == {
        "normal": "ks",
        "skewed": "ks",
        "counts": "ks",
        "flag": "ks",
        "plan": "chi2",
        "region": "chi2",
    }
    large = {r.column: r.method for r in compare(pool.sample(10_000, random_state=0), reference, LIMITS)}
    assert set(large.values()) == {"wasserstein", "psi"}
    assert all(r.effective_rows > TEST_UP_TO for r in compare(pool.sample(10_000), reference, LIMITS))


def test_a_small_batch_is_judged_and_says_its_power_is_low(pool: pd.DataFrame, reference: dict) -> None:
    results = compare(pool.sample(30, random_state=1), reference, LIMITS)
    assert all(r.size is not None for r in results if r.column != "skewed")
    note = power_note(results)
    assert note.startswith("low power: with 2") and "standard deviations" in note
    assert power_note(compare(pool.sample(1000, random_state=1), reference, LIMITS)) == ""


def test_ks_against_the_sketch_matches_scipy_two_sample_ks() -> None:
    rng = np.random.default_rng(2)
    reference, batch = rng.normal(size=5000), rng.normal(0.1, 1, 300)
    sketch = np.quantile(reference, np.linspace(0, 1, SKETCH + 1))
    n_eff = 300 * 5000 / 5300
    ours = ks_p_value(sketch, np.sort(batch), n_eff)
    theirs = stats.ks_2samp(batch, reference, method="asymp").pvalue
    assert ours == pytest.approx(theirs, rel=0.15)


def test_ks_is_not_fooled_by_ties_in_a_discrete_column() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 3, 5000).astype(float)
    sketch = np.quantile(reference, np.linspace(0, 1, SKETCH + 1))
    p_values = [ks_p_value(sketch, np.sort(rng.integers(0, 3, 200).astype(float)), 200) for _ in range(50)]
    assert min(p_values) > 0.01


def test_wasserstein_and_its_noise_match_scipy_and_sampling() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=100_000)
    sketch = np.quantile(reference, np.linspace(0, 1, SKETCH + 1))
    shifted = np.sort(rng.normal(0.3, 1, 100_000))
    assert wasserstein(sketch, shifted) == pytest.approx(
        stats.wasserstein_distance(shifted, reference), abs=0.01
    )
    same = [wasserstein(sketch, np.sort(rng.normal(size=2000))) for _ in range(50)]
    assert np.mean(same) == pytest.approx(wasserstein_noise(sketch, 2000 * 100_000 / 102_000), rel=0.2)


def test_values_read_back_from_csv_tie_with_the_reference_again(tmp_path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame  # `sex` holds two scaled values
    reference = profile_frame(frame, "target", "regression")
    frame.to_csv(tmp_path / "same.csv", index=False)
    results = compare(pd.read_csv(tmp_path / "same.csv"), reference, LIMITS)
    assert [r.column for r in results if r.level != "ok"] == []
