"""Bootstrap intervals: contain the estimate, shrink with more data, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.evaluation.bootstrap import BootstrapSettings, GroupResampler, bootstrap_ci, resample_indices
from braintumor.metrics.classification import summary_metrics


def _data(n: int, seed: int = 0, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A classifier with some skill: the true class gets a random boost."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    probs[np.arange(n), labels] += rng.uniform(0, 0.6, n)
    return labels, probs / probs.sum(axis=1, keepdims=True)


FAST = BootstrapSettings(n_resamples=300, seed=1)


@pytest.mark.parametrize("stratified", [True, False])
def test_interval_contains_point_estimate(stratified: bool) -> None:
    labels, probs = _data(300)
    point = summary_metrics(labels, probs, list("abcd"))
    ci = bootstrap_ci(labels, probs, settings=BootstrapSettings(n_resamples=300, stratified=stratified))
    for key in ("accuracy", "macro_f1", "auc_roc_macro", "ece"):
        low, high = ci[key]
        assert low < point[key] < high, (key, low, point[key], high)
        assert high - low > 0.01  # a real interval, not a point


def test_interval_is_narrower_with_more_data() -> None:
    small = bootstrap_ci(*_data(80), settings=FAST)
    large = bootstrap_ci(*_data(2000), settings=FAST)
    for key in ("accuracy", "macro_f1", "auc_roc_macro", "ece"):
        # width shrinks like 1/sqrt(n): 25x the data -> about 1/5 of the width
        assert (large[key][1] - large[key][0]) < 0.5 * (small[key][1] - small[key][0]), key


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    labels, probs = _data(200)
    a = bootstrap_ci(labels, probs, settings=FAST)
    b = bootstrap_ci(labels, probs, settings=FAST)
    c = bootstrap_ci(labels, probs, settings=BootstrapSettings(n_resamples=300, seed=2))
    assert a == b
    assert a != c


def test_stratified_resample_keeps_class_counts() -> None:
    labels = np.array([0] * 5 + [1] * 3 + [2] * 1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = resample_indices(labels, rng, stratified=True)
        assert np.bincount(labels[idx], minlength=3).tolist() == [5, 3, 1]
    plain = [np.bincount(labels[resample_indices(labels, rng, False)], minlength=3)[2] for _ in range(50)]
    assert len(set(plain)) > 1  # plain resampling lets class counts vary


def test_auc_interval_is_none_when_undefined() -> None:
    # every scan of one class: one-vs-rest AUC has no negatives in any resample
    labels = np.zeros(10, dtype=int)
    probs = np.tile([0.7, 0.3], (10, 1))
    ci = bootstrap_ci(labels, probs, settings=BootstrapSettings(n_resamples=20))
    assert ci["auc_roc_macro"] is None
    assert ci["accuracy"] == [1.0, 1.0]


def test_settings_are_reported_and_checked() -> None:
    d = BootstrapSettings().to_dict()
    assert d["method"] == "percentile bootstrap" and d["n_resamples"] == 1000 and d["confidence"] == 0.95
    assert "stratified" in d["resampling"]
    with pytest.raises(ValueError, match="no scans"):
        bootstrap_ci(np.array([], dtype=int), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(*_data(10), settings=BootstrapSettings(confidence=1.5))
    with pytest.raises(ValueError, match="do not index"):
        bootstrap_ci(np.array([0, 5]), np.full((2, 2), 0.5))


def test_group_resampling_keeps_copies_together_and_widens_the_interval() -> None:
    # 150 distinct scans, each present 5 times (copies): scan-level resampling counts 750 independent
    # scans and gives an interval about sqrt(5) too narrow; resampling the 150 groups gives the honest one
    labels, probs = _data(150)
    copies_l, copies_p = np.repeat(labels, 5), np.repeat(probs, 5, axis=0)
    groups = np.repeat(np.arange(150), 5)
    naive = bootstrap_ci(copies_l, copies_p, settings=FAST)
    grouped = bootstrap_ci(copies_l, copies_p, settings=FAST, groups=groups)
    distinct = bootstrap_ci(labels, probs, settings=FAST)
    for key in ("accuracy", "macro_f1"):
        width = {name: ci[key][1] - ci[key][0] for name, ci in (("n", naive), ("g", grouped), ("d", distinct))}
        assert width["g"] > 1.7 * width["n"], (key, width)
        assert width["g"] == pytest.approx(width["d"], rel=0.35), (key, width)
    draw = GroupResampler(copies_l, groups, stratified=True)
    idx = draw(np.random.default_rng(0))
    assert len(idx) == 750 and all(np.unique(groups[idx], return_counts=True)[1] % 5 == 0)
    per_class_groups = np.bincount(labels)
    assert (np.bincount(copies_l[idx], minlength=4) == 5 * per_class_groups).all()  # stratified by group class
    with pytest.raises(ValueError, match="group ids"):
        bootstrap_ci(labels, probs, groups=groups)
