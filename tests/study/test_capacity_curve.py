"""Interference against capacity: differences, CIs, the table and the PNG on fixed figures."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import stats

from tf_metaling.study.capacity_curve import capacity_table, interference_by_capacity, plot_capacity_curve

GROUPS = {"high": ["en", "fr"], "low": ["sw"]}
# held-out loss per seed; the joint models get relatively better with width
RESULTS = {
    32: {
        "mono": {"en": [3.0, 3.1, 3.2], "fr": [3.3, 3.4, 3.3], "sw": [4.0, 4.1, 4.2]},
        "joint_pair": {"fr": [3.5, 3.6, 3.55], "sw": [4.3, 4.35, 4.4]},
        "joint_all": {"en": [3.3, 3.35, 3.5], "fr": [3.6, 3.7, 3.65], "sw": [4.4, 4.5, 4.7]},
    },
    64: {
        "mono": {"en": [2.8, 2.9, 2.85], "fr": [3.0, 3.1, 3.05], "sw": [3.8, 3.9, 3.85]},
        "joint_pair": {"fr": [3.1, 3.15, 3.1], "sw": [3.8, 3.95, 3.8]},
        "joint_all": {"en": [2.9, 2.95, 2.95], "fr": [3.1, 3.2, 3.1], "sw": [3.9, 3.95, 3.9]},
    },
    128: {
        "mono": {"en": [2.6, 2.7, 2.65], "fr": [2.8, 2.9, 2.85], "sw": [3.6, 3.7, 3.65]},
        "joint_pair": {"fr": [2.8, 2.9, 2.85], "sw": [3.55, 3.6, 3.55]},
        "joint_all": {"en": [2.6, 2.75, 2.6], "fr": [2.75, 2.85, 2.8], "sw": [3.5, 3.55, 3.5]},
    },
}


def test_differences_are_paired_by_seed_with_a_t_interval():
    estimates = interference_by_capacity(RESULTS)
    assert list(estimates) == [32, 64, 128]
    assert set(estimates[32]["joint_pair"]) == {"fr", "sw"}  # no JointPair for the pivot
    estimate = estimates[32]["joint_all"]["sw"]
    differences = np.array([0.4, 0.4, 0.5])
    half = stats.t.ppf(0.975, 2) * stats.sem(differences)
    assert estimate.value == pytest.approx(differences.mean())
    mean = differences.mean()
    assert (estimate.low, estimate.high) == pytest.approx((mean - half, mean + half))
    assert estimate.n == 3 and estimate.method == "t" and estimate.unit == "seeds"
    # identical differences: the interval is the point itself
    fr = estimates[128]["joint_pair"]["fr"]
    assert fr.value == pytest.approx(0.0) and fr.low == pytest.approx(0.0) and fr.includes(0.0)


def test_table_has_a_row_per_language_and_comparison_and_fits_100_columns():
    text = capacity_table(RESULTS, groups=GROUPS)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "| lang  | difference     | d=32         | d=64          | d=128         |" in lines
    en = next(line for line in lines if line.startswith("| en ") and "JointAll-Mono" in line)
    estimate = interference_by_capacity(RESULTS)[32]["joint_all"]["en"]
    assert f"+{estimate.value:.3f}±{(estimate.high - estimate.low) / 2:.3f}" in en
    assert not any(line.startswith("| en ") and "JointPair" in line for line in lines)
    assert any(line.startswith("| sw(L)") for line in lines)
    assert "| +0.000±0.000*" in text  # fr JointPair at 128: CI includes 0, marked
    assert "Positive = the joint model is worse" in text.replace("\n", " ")
    accuracy = capacity_table(RESULTS, metric_name="accuracy", higher_is_better=True)
    assert "Negative = the joint model is worse" in accuracy.replace("\n", " ")


def test_many_widths_split_into_tables_within_100_columns():
    results = {w: RESULTS[32] for w in (8, 16, 32, 64, 128, 256, 512, 1024)}
    text = capacity_table(results, groups=GROUPS)
    assert max(len(line) for line in text.splitlines()) <= 100
    headers = [line for line in text.splitlines() if line.startswith("| lang")]
    assert len(headers) >= 2
    assert sum(line.count("d=") for line in headers) == 8


def test_unpaired_seeds_are_refused_with_the_place():
    broken = {16: {"mono": {"en": [3.0, 3.1]}, "joint_all": {"en": [3.2]}}}
    with pytest.raises(ValueError, match="width 16: joint_all/en"):
        interference_by_capacity(broken)


def test_one_seed_cells_have_no_ci():
    one = {16: {"mono": {"en": [3.0]}, "joint_all": {"en": [3.2]}}}
    assert interference_by_capacity(one)[16]["joint_all"]["en"].low is None
    assert "| +0.200 |" in capacity_table(one) and "one seed without example records has no CI" in capacity_table(one)


def test_plot_is_a_png_written_atomically(tmp_path):
    path = plot_capacity_curve(RESULTS, str(tmp_path / "plots" / "capacity.png"))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "plots") == ["capacity.png"]
    with pytest.raises(ValueError, match="no width"):
        plot_capacity_curve({16: {"mono": {"en": [3.0]}}}, str(tmp_path / "empty.png"))


def _png_width(path):
    with open(path, "rb") as file:
        return int.from_bytes(file.read(24)[16:20], "big")  # the IHDR chunk's width


def test_the_plot_draws_only_the_comparisons_that_were_trained(tmp_path):
    both = plot_capacity_curve(RESULTS, str(tmp_path / "both.png"))
    # Two languages (the synthetic control): JointPair is JointAll and is never trained.
    joint_all_only = {width: {v: rows for v, rows in variants.items() if v != "joint_pair"}
                      for width, variants in RESULTS.items()}
    one = plot_capacity_curve(joint_all_only, str(tmp_path / "one.png"))
    assert _png_width(one) < 0.7 * _png_width(both)


def _ratio_record(losses):
    """A one-seed record of per-example (loss sum, token count) pairs, one token each."""
    return {"kind": "ratio", "value": float(np.mean(losses)), "examples": [[float(v), 1.0] for v in losses]}


def test_one_seed_cells_get_a_bootstrap_interval_from_the_records_with_the_metrics_sign():
    rng = np.random.RandomState(0)
    mono = rng.normal(3.0, 0.3, 400)
    joint_worse = mono + 0.5 + rng.normal(0.0, 0.3, 400)  # clearly worse
    joint_same = mono + rng.normal(0.0, 0.3, 400) - 0.01  # no real difference
    results, records = {}, {}
    for width, joint in ((16, joint_worse), (32, joint_same)):
        results[width] = {"mono": {"en": [float(mono.mean())]}, "joint_all": {"en": [float(joint.mean())]}}
        records[width] = {"mono": {"en": {"0": _ratio_record(mono)}}, "joint_all": {"en": {"0": _ratio_record(joint)}}}
    without = interference_by_capacity(results)
    assert not without[16]["joint_all"]["en"].has_interval  # one seed, no records: no CI
    estimates = interference_by_capacity(results, records=records)
    worse, same = estimates[16]["joint_all"]["en"], estimates[32]["joint_all"]["en"]
    assert worse.method == "bootstrap" and worse.n == 800
    assert worse.value == pytest.approx(joint_worse.mean() - mono.mean())
    assert 0.0 < worse.low < worse.value < worse.high  # positive: the joint model's loss is higher
    assert same.includes(0.0)
    # An accuracy (higher is better) keeps its sign too: joint - Mono, negative when the joint model is worse.
    accuracy = {w: {v: {"en": [-x for x in cells["en"]]} for v, cells in figures.items()} for w, figures in results.items()}
    accuracy_records = {w: {v: {"en": {"0": _ratio_record(-(joint_worse if v == "joint_all" and w == 16 else
                                                              joint_same if v == "joint_all" else mono))}}
                            for v in ("mono", "joint_all")} for w in results}
    flipped = interference_by_capacity(accuracy, records=accuracy_records, higher_is_better=True)[16]["joint_all"]["en"]
    assert flipped.high < 0.0 and flipped.low == pytest.approx(-worse.high, abs=0.02)
    text = capacity_table(results, records=records)
    assert "bootstrap interval over test examples" in text and "*" in text.split("d=32")[1]
