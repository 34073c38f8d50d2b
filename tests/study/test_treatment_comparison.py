"""Treatments judged against Mono and against their own baseline, from fixed per-seed figures; the cosine plot."""

import os

import numpy as np
import pytest

from tf_metaling.interference.gradient_similarity import GradientSimilarity
from tf_metaling.interference.similarity_log import LOG_FILE_NAME, SimilarityLog
from tf_metaling.study.treatment_comparison import (
    NEITHER,
    NOTHING_TO_REMOVE,
    REDUCES,
    REMOVES,
    gradient_cosines,
    plot_gradient_cosines,
    treatment_table,
    treatment_verdicts,
)

SEEDS = [0, 1, 2]


def _values(baseline_cost, treatment_costs):
    """Per-seed en losses: Mono 1.40; the baseline and treatments that much worse (seed-to-seed noise small)."""
    noise = [0.0, 0.004, -0.004]
    values = {"mono": {"en": [1.40] * 3}, "joint_all_mixed": {"en": [1.40 + baseline_cost + n for n in noise]}}
    for variant, cost in treatment_costs.items():
        values[variant] = {"en": [1.40 + cost + n for n in noise[::-1]]}
    return values


def _status(verdicts, variant):
    return next(v.status for v in verdicts if v.variant == variant)


def test_each_verdict_follows_its_intervals():
    values = _values(0.05, {"joint_all_pcgrad": 0.0, "joint_all_gradvac": 0.03, "joint_all_ls_gradvac": 0.05})
    verdicts = treatment_verdicts(values, None, ["en"], SEEDS)
    assert _status(verdicts, "joint_all_pcgrad") == REMOVES  # its CI against Mono includes 0
    assert _status(verdicts, "joint_all_gradvac") == REDUCES  # still worse than Mono, better than the baseline
    assert _status(verdicts, "joint_all_ls_gradvac") == NEITHER
    pcgrad = next(v for v in verdicts if v.variant == "joint_all_pcgrad")
    assert pcgrad.versus_baseline.value == pytest.approx(-0.05) and pcgrad.versus_mono.value == pytest.approx(0.0)
    # Where the baseline is not worse than Mono there is nothing to remove, whatever the treatment does.
    calm = treatment_verdicts(_values(0.0, {"joint_all_pcgrad": -0.02}), None, ["en"], SEEDS)
    assert _status(calm, "joint_all_pcgrad") == NOTHING_TO_REMOVE
    # A verdict only from converged runs.
    convergence = {f"{v}/seed{s}": True for v in ("joint_all_mixed", "joint_all_pcgrad") for s in SEEDS}
    convergence.update({f"mono-en/seed{s}": s != 1 for s in SEEDS})
    withheld = treatment_verdicts(_values(0.05, {"joint_all_pcgrad": 0.0}), None, ["en"], SEEDS, convergence)
    assert _status(withheld, "joint_all_pcgrad") == "no verdict: 1 of 9 runs did not converge"
    table = treatment_table({"share 0.5, resource 1": verdicts})
    assert "share 0.5, resource 1:" in table
    assert "| +PCGrad     | en   | +0.050±.010 | +0.000±.010 | -0.050±.010 | removes the interference |" in table
    assert all(len(line) <= 100 for line in table.splitlines())


def _write_log(run_dir, cosines):
    log = SimilarityLog(os.path.join(run_dir, "interference", LOG_FILE_NAME))
    for step, cosine in cosines.items():
        matrix = np.array([[1.0, cosine], [cosine, 1.0]])
        log.append(GradientSimilarity(("en", "lo"), ("all",), (10,), matrix[None], matrix, np.ones((1, 2)),
                                      np.ones(2), np.ones(2), step=step))


def test_the_cosine_curve_is_the_mean_over_seeds_and_is_drawn(tmp_path):
    runs = {}
    for variant, base in (("joint_all_mixed", -0.2), ("joint_all_gradvac", 0.1)):
        runs[variant] = []
        for seed in SEEDS:
            run_dir = str(tmp_path / variant / f"seed{seed}")
            _write_log(run_dir, {100: base + 0.01 * seed, 200: base + 0.1 + 0.01 * seed})
            runs[variant].append(run_dir)
    steps, cosines = gradient_cosines(runs["joint_all_mixed"], ("en", "lo"))
    assert steps == [100, 200] and cosines == pytest.approx([-0.19, -0.09])
    assert gradient_cosines([str(tmp_path / "none")], ("en", "lo")) is None
    path = plot_gradient_cosines({"share 0.5, resource 1": runs}, ("en", "lo"), str(tmp_path / "cosines.png"))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no run has an interference probe log"):
        plot_gradient_cosines({"x": {"joint_all": [str(tmp_path / "none")]}}, ("en", "lo"), str(tmp_path / "n.png"))
