"""The convergence rule, the plateau stopper and the curve plot, on curves with known answers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tf_metaling.training.convergence import (
    TOO_FEW,
    ConvergenceRule,
    LearningCurve,
    PlateauStopper,
    plot_learning_curves,
    verdicts_of,
)

STEPS = list(range(100, 1100, 100))  # 10 evaluations, last at step 1000: the window is (800, 1000]


def test_a_flat_tail_is_converged():
    losses = [6.0, 5.0, 4.5, 4.2, 4.1, 4.05, 4.02, 4.01, 4.005, 4.001]
    verdict = ConvergenceRule().check(LearningCurve(STEPS, losses))
    assert verdict.converged and verdict.label == "converged"
    assert verdict.window_start_step == 800
    # best at or before step 800 is 4.01; best after it 4.001
    assert verdict.improvement == pytest.approx((4.01 - 4.001) / 4.01)


def test_a_still_falling_curve_is_not_converged():
    losses = list(np.linspace(6.0, 3.0, len(STEPS)))
    verdict = ConvergenceRule().check(LearningCurve(STEPS, losses))
    assert not verdict.converged
    expected = (losses[7] - losses[9]) / losses[7]
    assert verdict.improvement == pytest.approx(expected)
    assert verdict.label == f"not converged (best held-out loss still fell {expected:.1%} in the last 20%)"


def test_threshold_and_window_are_the_stated_rule():
    losses = [5.0, 4.0, 3.0, 2.0, 1.97]  # 1.5% in the last 20%, 34% in the last 50%
    curve = LearningCurve([1, 2, 3, 4, 5], losses)
    assert not ConvergenceRule(threshold=0.01).check(curve).converged
    assert ConvergenceRule(threshold=0.02).check(curve).converged
    assert not ConvergenceRule(threshold=0.02, window=0.5).check(curve).converged
    assert "less than 2% over the last 50%" in ConvergenceRule(threshold=0.02, window=0.5).describe()
    expected = {"threshold": 0.02, "window": 0.5, "min_evaluations": 3}
    assert ConvergenceRule(0.02, 0.5, 3).get_config() == expected


def test_a_rising_tail_counts_as_converged():
    verdict = ConvergenceRule().check(LearningCurve(STEPS, [5, 4, 3, 2.5, 2.4, 2.38, 2.37, 2.37, 2.5, 2.6]))
    assert verdict.converged and verdict.improvement == 0.0


def test_too_short_curves_are_not_converged_for_that_reason():
    rule = ConvergenceRule()
    for curve in (LearningCurve(), LearningCurve([10, 20, 30], [3.0, 3.0, 3.0])):
        verdict = rule.check(curve)
        assert not verdict.converged and verdict.improvement is None
        assert verdict.label == f"not converged ({TOO_FEW})"
    # enough evaluations, but none at or before the window's start
    late = LearningCurve([900, 950, 980, 1000], [3.0, 3.0, 3.0, 3.0])
    assert rule.check(late).label == f"not converged ({TOO_FEW})"


def test_bad_curves_and_rules_are_refused():
    with pytest.raises(ValueError, match="step 10 after step 20"):
        LearningCurve([20, 10], [1.0, 1.0])
    with pytest.raises(ValueError, match="not finite"):
        LearningCurve([1, 2], [1.0, float("nan")])
    with pytest.raises(ValueError, match="2 steps but 1 losses"):
        LearningCurve([1, 2], [1.0])
    with pytest.raises(ValueError, match="threshold"):
        ConvergenceRule(threshold=1.5)
    with pytest.raises(ValueError, match="window"):
        ConvergenceRule(window=0.0)
    with pytest.raises(ValueError, match="patience"):
        PlateauStopper(patience=0)


def _first_stop(stopper, steps, losses, above_baseline=None):
    """The step at which a training loop asking `stopper` after every evaluation stops (None: never)."""
    for i, step in enumerate(steps):
        if stopper.should_stop(LearningCurve(steps[: i + 1], losses[: i + 1]), above_baseline):
            return step
    return None


def test_patience_stops_at_the_expected_evaluation():
    losses = [5.0, 4.0, 3.0, 3.1, 2.99, 3.2, 3.0, 3.05, 2.5]
    steps = list(range(10, 100, 10))
    stopper = PlateauStopper(patience=3)
    # best 2.99 at step 50; steps 60, 70, 80 do not improve: stop at the 8th evaluation (step 80)
    assert _first_stop(stopper, steps, losses) == 80
    assert stopper.plateau(LearningCurve(steps[:8], losses[:8])) == (50, 2.99, 3)


def test_min_delta_ignores_tiny_improvements_and_the_decision_is_the_curves():
    losses = [3.0, 2.999, 2.998, 2.997]
    curve = LearningCurve([1, 2, 3], losses[:3])
    assert PlateauStopper(patience=2, min_delta=0.01).should_stop(curve)
    assert PlateauStopper(patience=2, min_delta=0.01).plateau(curve) == (1, 3.0, 2)
    assert PlateauStopper(patience=2, min_delta=0.0).plateau(curve) == (3, 2.998, 0)
    # No state: asked again, or by a new stopper (a resumed run), the answer is the same.
    stopper = PlateauStopper(patience=3, min_delta=0.01)
    assert not stopper.should_stop(curve)
    assert stopper.should_stop(LearningCurve([1, 2, 3, 4], losses))
    assert not stopper.should_stop(curve)


def test_with_the_rule_a_run_stops_only_where_the_rule_calls_it_converged():
    # A JointAll run of the synthetic control (seed 1, share 0): a 3.1% drop at step 2800, then
    # three evaluations within 1% of it. Patience alone stopped it at 3400, where the rule's window
    # (the last 20%: steps after 2720) still holds the drop: "not converged".
    steps = list(range(200, 4001, 200))
    losses = [2.837, 1.93, 1.776, 1.617, 1.587, 1.554, 1.564, 1.53, 1.51, 1.509, 1.474, 1.466, 1.471,
              1.42, 1.429, 1.434, 1.418, 1.425, 1.421, 1.43]
    rule = ConvergenceRule()
    assert _first_stop(PlateauStopper(patience=3, min_delta=0.01), steps, losses) == 3400
    assert not rule.check(LearningCurve(steps[:17], losses[:17])).converged
    # With the rule the run trains on; at 3600 the window (after 2880) starts past the drop.
    with_rule = PlateauStopper(patience=3, min_delta=0.01, rule=rule)
    assert _first_stop(with_rule, steps, losses) == 3600
    assert rule.check(LearningCurve(steps[:18], losses[:18])).converged
    assert with_rule.get_config()["rule"] == rule.get_config()


def test_a_run_on_the_unigram_plateau_does_not_stop_early():
    # Flat from the start (the unigram plateau): patience and the loss rule both say stop, but
    # with a language whose accuracy is not above the most frequent token's the rule says
    # "not converged (unigram plateau)", and so does the stopper.
    steps = list(range(100, 1100, 100))
    losses = [3.45, 3.42, 3.41, 3.41, 3.40, 3.41, 3.40, 3.41, 3.40, 3.41]
    stopper = PlateauStopper(patience=3, min_delta=0.01, rule=ConvergenceRule())
    # The last 1% gain is 3.45 -> 3.41 at step 300; three evaluations later (600) the run stops...
    assert _first_stop(stopper, steps, losses) == 600
    assert _first_stop(stopper, steps, losses, {"en": True, "lo": True}) == 600
    # ...unless a language is on the unigram plateau.
    assert _first_stop(stopper, steps, losses, {"en": True, "lo": False}) is None
    # Given as a function (costly to know), it is asked only where patience and the loss rule say
    # stop: at the evaluations from step 600 on, five of ten.
    asked = []
    assert _first_stop(stopper, steps, losses, lambda: asked.append(1) or {"lo": False}) is None
    assert len(asked) == 5
    # Without a rule, patience alone decides.
    assert _first_stop(PlateauStopper(patience=3, min_delta=0.01), steps, losses, {"lo": False}) == 600


def test_curve_round_trip_and_plot(tmp_path):
    curves = {
        "mono/en": LearningCurve(STEPS, [6.0, 5.0, 4.5, 4.2, 4.1, 4.05, 4.02, 4.01, 4.005, 4.001]),
        "joint_all/en": LearningCurve.from_dict({"steps": STEPS, "losses": list(np.linspace(6.0, 3.0, 10))}),
    }
    assert LearningCurve.from_dict(curves["mono/en"].as_dict()).losses == curves["mono/en"].losses
    converged = {label: verdict.converged for label, verdict in verdicts_of(curves).items()}
    assert converged == {"mono/en": True, "joint_all/en": False}
    path = plot_learning_curves(curves, str(tmp_path / "curves" / "learning_curves.png"))
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "curves") == ["learning_curves.png"]  # no temporary left behind
    with pytest.raises(ValueError, match="no curves"):
        plot_learning_curves({}, str(tmp_path / "empty.png"))


# ----------------------------------------------------------------------------- in training runs
def _tiny(overrides):
    from official.modeling import hyperparams

    from tf_metaling import configs

    return hyperparams.override_params_dict(configs.get_experiment("tiny"), overrides, is_strict=True)


def _curve_file(model_dir):
    import json
    import os

    from tf_metaling.training.experiment import LEARNING_CURVE_FILE

    with open(os.path.join(model_dir, LEARNING_CURVE_FILE)) as file:
        return json.load(file)


def test_a_run_keeps_its_learning_curve_and_trains_to_the_budget_without_patience(tmp_path):
    from tf_metaling.training.experiment import run_pretraining

    model_dir = str(tmp_path / "run")
    config = _tiny({"trainer": {"train_steps": 6, "eval_interval": 2, "checkpoint_interval": 2}})
    metrics = run_pretraining(config, model_dir, "train_and_eval")
    saved = _curve_file(model_dir)
    assert saved["steps"] == [2, 4, 6] and saved["stopped_early"] is False
    # The curve holds the evaluations' held-out loss of the training mixture.
    assert saved["metric"] == "loss/mixture"
    assert saved["losses"][-1] == pytest.approx(metrics["loss/mixture"])


def test_the_mixture_loss_weighs_languages_as_they_are_trained_on():
    import numpy as np

    from tf_metaling.languages import LanguageVocabulary
    from tf_metaling.training.multilingual_trainer import per_language_metrics

    languages = LanguageVocabulary(["en", "lo", "xx"])
    # Summed losses and weights per language: en 2.0, lo 4.0 per token; xx not evaluated.
    sums = (np.array([20.0, 8.0, 0.0]), np.array([10.0, 2.0, 0.0]), np.array([5.0, 1.0, 0.0]),
            np.array([10.0, 2.0, 0.0]))
    metrics = per_language_metrics(sums, languages, ["en", "lo"], mixture={"en": 0.6, "lo": 0.2, "xx": 0.2})
    assert metrics["loss/mean"] == pytest.approx(3.0)
    # Renormalised over the evaluated languages: 0.75 x 2.0 + 0.25 x 4.0.
    assert metrics["loss/mixture"] == pytest.approx(2.5)
    assert "loss/mixture" not in per_language_metrics(sums, languages, ["en", "lo"])


# Learning rate 0: the held-out loss is flat. Patience 2 alone would stop at the third evaluation;
# the convergence rule also wants 4 evaluations, so a run above the unigram plateau stops at the fourth (step 8).
_FLAT = {"trainer": {"train_steps": 20, "eval_interval": 2, "checkpoint_interval": 2,
                     "learning_rate": 0.0, "plateau_patience": 2, "plateau_min_delta": 0.01}}


def test_a_run_stops_at_a_plateau_and_a_rerun_does_not_train_on(tmp_path, monkeypatch):
    from tf_metaling import checkpoints
    from tf_metaling.training.experiment import run_pretraining
    from tf_metaling.training.mlm_inputs import MlmInputs

    config = _tiny(_FLAT)
    # A most-frequent-token baseline every model beats: the run is above the unigram plateau.
    monkeypatch.setattr(MlmInputs, "accuracy_baselines", lambda self, batches: {c: -1.0 for c in batches})
    model_dir = str(tmp_path / "run")
    metrics = run_pretraining(config, model_dir, "train_and_eval")
    saved = _curve_file(model_dir)
    assert saved["steps"] == [2, 4, 6, 8] and saved["stopped_early"] is True
    assert saved["plateau"]["rule"]["min_evaluations"] == 4
    assert metrics["step"] == 8 and checkpoints.latest_checkpoint(model_dir).endswith("ckpt-8")
    again = run_pretraining(config, model_dir, "train_and_eval")
    assert again["step"] == 8 and _curve_file(model_dir)["steps"] == [2, 4, 6, 8]


def test_a_flat_run_on_the_unigram_plateau_trains_to_its_budget(tmp_path):
    from tf_metaling.training.experiment import run_pretraining

    # The same flat run with the real baselines: the untrained model's accuracy is not above the
    # most frequent token's in some language, so it sits on the unigram plateau and trains on.
    model_dir = str(tmp_path / "plateau")
    metrics = run_pretraining(_tiny(_FLAT), model_dir, "train_and_eval")
    saved = _curve_file(model_dir)
    assert saved["steps"] == list(range(2, 21, 2)) and saved["stopped_early"] is False
    assert metrics["step"] == 20


def test_restore_best_ends_the_run_with_its_best_evaluations_weights(tmp_path):
    import os

    from tf_metaling import checkpoints
    from tf_metaling.training.experiment import BEST_DIR, run_pretraining

    model_dir = str(tmp_path / "run")
    # A learning rate far too high: the held-out loss jumps about, so the best evaluation is not the last.
    config = _tiny({"trainer": {"train_steps": 12, "eval_interval": 2, "checkpoint_interval": 2,
                                "learning_rate": 3.0, "warmup_steps": 0, "restore_best": True}})
    metrics = run_pretraining(config, model_dir, "train_and_eval")
    saved = _curve_file(model_dir)
    best_index = min(range(len(saved["losses"])), key=lambda i: saved["losses"][i])
    best_step = saved["steps"][best_index]
    assert saved["steps"] == [2, 4, 6, 8, 10, 12] and best_step != 12, saved
    assert saved["restored_best_step"] == best_step
    # The run ends at its budget, with the best weights in its final checkpoint and metrics.
    assert metrics["step"] == 12 and checkpoints.latest_checkpoint(model_dir).endswith("ckpt-12")
    assert abs(metrics["loss/mixture"] - saved["losses"][best_index]) < 1e-5
    assert os.listdir(os.path.join(model_dir, BEST_DIR)) and all(
        name.startswith(f"ckpt-{best_step}.") for name in os.listdir(os.path.join(model_dir, BEST_DIR)))
    # Whoever reads the model_dir later sees the best model; a rerun trains nothing and keeps it.
    evaluated = run_pretraining(config, model_dir, "eval")
    assert abs(evaluated["loss/mixture"] - saved["losses"][best_index]) < 1e-5
    again = run_pretraining(config, model_dir, "train_and_eval")
    assert again["step"] == 12 and abs(again["loss/mixture"] - saved["losses"][best_index]) < 1e-5


def test_a_flat_curve_on_the_unigram_plateau_is_not_converged():
    from tf_metaling.training.convergence import ConvergenceRule, LearningCurve

    flat = LearningCurve([60, 120, 180, 240, 300], [6.17, 6.05, 6.06, 6.03, 5.99])  # a Mono run of the demo
    rule = ConvergenceRule()
    assert rule.check(flat).converged  # the curve alone passes
    stuck = rule.check(flat, {"en": True, "ur": False, "ar": False})
    assert not stuck.converged and stuck.label == (
        "not converged (unigram plateau: masked-token accuracy of ar, ur not above the most frequent token's)")
    assert stuck.improvement == rule.check(flat).improvement
    assert rule.check(flat, {"en": True}).converged
    # A curve still falling keeps its own reason.
    falling = LearningCurve([100, 200, 300, 400, 500], [5.0, 4.0, 3.5, 3.2, 2.9])
    assert rule.check(falling, {"en": False}).reason.startswith("best held-out loss still fell")


def test_the_study_reads_the_plateau_from_the_accuracy_records(tmp_path):
    import json

    import numpy as np

    from tf_metaling.estimates import ratio_record
    from tf_metaling.study.evaluation.evaluate_run import run_convergence
    from tf_metaling.training.experiment import LEARNING_CURVE_FILE

    (tmp_path / LEARNING_CURVE_FILE).write_text(json.dumps(
        {"steps": [60, 120, 180, 240, 300], "losses": [6.17, 6.05, 6.06, 6.03, 5.99]}))
    rng = np.random.RandomState(0)
    weights = np.full(500, 10.0)
    at_baseline = ratio_record(rng.binomial(10, 0.03, 500), weights, baseline=0.03)
    above = ratio_record(rng.binomial(10, 0.12, 500), weights, baseline=0.03)
    assert run_convergence(str(tmp_path))["convergence"]["converged"]
    verdict = run_convergence(str(tmp_path), {"en": above, "ur": at_baseline})["convergence"]
    assert not verdict["converged"] and "accuracy of ur not above" in verdict["reason"]
    assert run_convergence(str(tmp_path), {"en": above})["convergence"]["converged"]
