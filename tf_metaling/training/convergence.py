"""Learning curves on held-out loss, one stated convergence rule, and early stopping at a plateau.

A run evaluates its held-out loss on a schedule and keeps the curve
(`LearningCurve`: steps and losses). Two separate questions are asked of it:

- **Did the run converge?** `ConvergenceRule` (default: "converged when the
  best held-out loss improved by less than 1% over the last 20% of the
  steps") gives a `ConvergenceVerdict` with the measured improvement, or
  "not converged (too few evaluations)" when the curve cannot say.
- **Should training stop now?** `PlateauStopper` is patience on the
  held-out loss (and, with a rule, that rule's verdict), asked of the
  run's curve after each evaluation.

`plot_learning_curves` draws curves into one PNG (matplotlib's object API on
the Agg canvas, written atomically), each labelled with its verdict.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from typing import Mapping, Optional

import matplotlib
from matplotlib.figure import Figure

from tf_metaling.atomic_files import atomic_path

TOO_FEW = "too few evaluations"


@dataclasses.dataclass
class LearningCurve:
    """Held-out losses of one run at increasing training steps.

    Args:
        steps: training steps of the evaluations, strictly increasing, >= 0.
        losses: the held-out loss at each step (finite).
    """

    steps: list = dataclasses.field(default_factory=list)
    losses: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        steps, losses = list(self.steps), list(self.losses)
        if len(steps) != len(losses):
            raise ValueError(f"LearningCurve: {len(steps)} steps but {len(losses)} losses.")
        self.steps, self.losses = [], []
        for step, loss in zip(steps, losses):
            self.add(step, loss)

    def add(self, step: int, loss: float) -> None:
        """Appends one evaluation; steps must increase and losses be finite."""
        step, loss = int(step), float(loss)
        if step < 0 or (self.steps and step <= self.steps[-1]):
            previous = self.steps[-1] if self.steps else None
            raise ValueError(f"LearningCurve: step {step} after step {previous}; steps must increase from 0.")
        if not math.isfinite(loss):
            raise ValueError(f"LearningCurve: held-out loss {loss} at step {step} is not finite.")
        self.steps.append(step)
        self.losses.append(loss)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def best_loss(self) -> Optional[float]:
        return min(self.losses) if self.losses else None

    def as_dict(self) -> dict:
        return {"steps": list(self.steps), "losses": list(self.losses)}

    @classmethod
    def from_dict(cls, data: Mapping) -> LearningCurve:
        return cls(data["steps"], data["losses"])


@dataclasses.dataclass(frozen=True)
class ConvergenceVerdict:
    """What `ConvergenceRule.check` says of one curve.

    ``improvement`` is the relative drop of the best held-out loss over the
    window (0.004 = 0.4%); None when the curve is too short to measure it.
    """

    converged: bool
    improvement: Optional[float]
    window_start_step: Optional[int]
    reason: str

    @property
    def label(self) -> str:
        """``converged`` or ``not converged (<why>)``, for tables."""
        return "converged" if self.converged else f"not converged ({self.reason})"

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "label": self.label}


class ConvergenceRule:
    """Converged when the best held-out loss improved by less than `threshold` over the last `window`.

    The window is the last ``window`` fraction of the training steps,
    ``[(1 - window) * S, S]`` with S the last evaluated step. The reference is
    the best loss of the evaluations at or before the window's start; the
    improvement is ``(reference - best loss in the window) / reference``. A
    loss that rose in the window (over-fitting) counts as no improvement:
    the run has passed its best held-out loss, so more steps would not help.

    Args:
        threshold: relative improvement below which the run counts as
            converged (0.01 = 1%).
        window: the fraction of the steps at the end of the run that is
            examined, in (0, 1).
        min_evaluations: fewer evaluations than this are "not converged
            (too few evaluations)"; the window must also hold at least one
            evaluation and have one at or before its start.

    Example:
    >>> rule = ConvergenceRule()
    >>> rule.check(LearningCurve([100, 200, 300, 400, 500], [5.0, 4.0, 3.5, 3.49, 3.48])).label
    'converged'
    """

    def __init__(self, threshold: float = 0.01, window: float = 0.2, min_evaluations: int = 4):
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"ConvergenceRule: threshold={threshold}, expected a fraction in (0, 1).")
        if not 0.0 < float(window) < 1.0:
            raise ValueError(f"ConvergenceRule: window={window}, expected a fraction in (0, 1).")
        if int(min_evaluations) < 2:
            raise ValueError(f"ConvergenceRule: min_evaluations={min_evaluations}, expected >= 2.")
        self.threshold = float(threshold)
        self.window = float(window)
        self.min_evaluations = int(min_evaluations)

    def get_config(self) -> dict:
        return {"threshold": self.threshold, "window": self.window, "min_evaluations": self.min_evaluations}

    def describe(self) -> str:
        """The rule in one sentence, for table captions and reports."""
        return (
            f"A run is converged when its best held-out loss improved by less than "
            f"{self.threshold:.0%} over the last {self.window:.0%} of its steps "
            f"(at least {self.min_evaluations} evaluations) and, where its masked-token accuracy is "
            f"known, that accuracy's 95% CI is above the most frequent token's in every language "
            f"(a flat curve on the unigram plateau is not convergence)."
        )

    def check(self, curve: LearningCurve, above_baseline: Optional[Mapping[str, bool]] = None) -> ConvergenceVerdict:
        """The verdict on `curve`.

        `above_baseline`: optional ``{language: whether the run's masked-token accuracy
        is above the most frequent token's (95% CI)}``. A flat curve with a language at
        or below that baseline is "not converged (unigram plateau ...)": the loss stopped
        falling because the model predicts token frequencies, not because it learned
        what it can.
        """
        verdict = self._check_curve(curve)
        stuck = sorted(code for code, above in (above_baseline or {}).items() if not above)
        if verdict.converged and stuck:
            return ConvergenceVerdict(False, verdict.improvement, verdict.window_start_step,
                                      f"unigram plateau: masked-token accuracy of {', '.join(stuck)} not "
                                      "above the most frequent token's")
        return verdict

    def _check_curve(self, curve: LearningCurve) -> ConvergenceVerdict:
        if len(curve) < self.min_evaluations:
            return ConvergenceVerdict(False, None, None, TOO_FEW)
        start = (1.0 - self.window) * curve.steps[-1]
        before = [loss for step, loss in zip(curve.steps, curve.losses) if step <= start]
        inside = [loss for step, loss in zip(curve.steps, curve.losses) if step > start]
        if not before or not inside:
            return ConvergenceVerdict(False, None, int(math.ceil(start)), TOO_FEW)
        reference = min(before)
        improvement = (reference - min(inside)) / abs(reference) if reference else 0.0
        improvement = max(improvement, 0.0)
        converged = improvement < self.threshold
        reason = "" if converged else (
            f"best held-out loss still fell {improvement:.1%} in the last {self.window:.0%}"
        )
        return ConvergenceVerdict(converged, float(improvement), int(math.ceil(start)), reason)


class PlateauStopper:
    """Early stopping at a plateau of the held-out loss, counted in evaluations.

    Asked after every evaluation with the run's learning curve (`should_stop`),
    it says stop once the loss has not improved on its best by more than
    `min_delta` (relative) for `patience` evaluations in a row and, with a
    `rule`, the curve so far is converged by that rule, including the rule's
    unigram-plateau clause when the caller knows which languages' masked-token
    accuracy is above the most frequent token's (so a run never stops early
    where the study would then call it "not converged": a drop of 3% followed
    by three flat evaluations is still inside the rule's window, and the run
    trains on until the window is flat). The stopper keeps no state: the
    decision is a function of the curve, so a resumed run, whose curve is read
    back from its model_dir, stops where an uninterrupted run would.

    Args:
        patience: evaluations without improvement before stopping (>= 1).
        min_delta: relative improvement that counts (0.0: any decrease).
        rule: a `ConvergenceRule` the curve must also satisfy (None: patience only).

    Example:
    >>> stopper = PlateauStopper(patience=2)
    >>> stopper.should_stop(LearningCurve([1, 2, 3], [3.0, 2.0, 2.5]))
    False
    >>> stopper.should_stop(LearningCurve([1, 2, 3, 4], [3.0, 2.0, 2.5, 2.1]))
    True
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0, rule: Optional[ConvergenceRule] = None):
        if int(patience) < 1:
            raise ValueError(f"PlateauStopper: patience={patience}, expected >= 1 evaluation.")
        if not 0.0 <= float(min_delta) < 1.0:
            raise ValueError(f"PlateauStopper: min_delta={min_delta}, expected a fraction in [0, 1).")
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.rule = rule

    def get_config(self) -> dict:
        config = {"patience": self.patience, "min_delta": self.min_delta}
        if self.rule is not None:
            config["rule"] = self.rule.get_config()
        return config

    def plateau(self, curve: LearningCurve) -> tuple:
        """``(best step, best loss, evaluations since it)``; a loss counts as better only by `min_delta`."""
        best_step = best_loss = None
        since = 0
        for step, loss in zip(curve.steps, curve.losses):
            if best_loss is None or loss < best_loss - self.min_delta * abs(best_loss):
                best_step, best_loss, since = step, loss, 0
            else:
                since += 1
        return best_step, best_loss, since

    def should_stop(self, curve: LearningCurve, above_baseline: Optional[Mapping[str, bool]] = None) -> bool:
        """True when training should stop after the last evaluation of `curve`.

        `above_baseline`: as in `ConvergenceRule.check` (``{language: masked-token
        accuracy above the most frequent token's}``), or a function returning it,
        called only when patience and the loss rule would stop the run; a language
        at or below its baseline keeps the run training, as the rule would call it
        "not converged".
        """
        if self.plateau(curve)[2] < self.patience:
            return False
        if self.rule is None:
            return True
        if not self.rule.check(curve).converged:
            return False
        if callable(above_baseline):  # costly to know: asked only when everything else says stop
            above_baseline = above_baseline()
        return self.rule.check(curve, above_baseline).converged


def plot_learning_curves(
    curves: Mapping[str, LearningCurve],
    path: str,
    rule: Optional[ConvergenceRule] = None,
    title: str = "Held-out loss over training",
    ylabel: str = "held-out MLM loss (nats per masked token)",
) -> str:
    """Draws ``{label: curve}`` into one PNG at `path` (written atomically); returns `path`.

    Each legend entry carries the curve's convergence label under `rule`
    (default `ConvergenceRule()`); the rule itself is written under the plot.
    """
    if not curves:
        raise ValueError(f"plot_learning_curves: no curves to draw into {path}.")
    rule = rule or ConvergenceRule()
    figure = Figure(figsize=(11.0, 4.6), layout="constrained")
    axes = figure.add_subplot()
    # 20 distinct colours: a study has up to 36 runs, and the default cycle repeats after 10.
    axes.set_prop_cycle(color=[matplotlib.colormaps["tab20"](i) for i in range(20)])
    for label, curve in curves.items():
        if not len(curve):
            raise ValueError(f"plot_learning_curves: curve {label!r} has no evaluations.")
        verdict = rule.check(curve)
        axes.plot(curve.steps, curve.losses, marker="o", markersize=3, linewidth=1.2,
                  linestyle="-" if verdict.converged else "--", label=f"{label}: {verdict.label}")
    axes.set_xlabel("training step")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    # Outside the axes: with a study's 15-36 runs an inner legend hides the curves' tails.
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    caption = textwrap.fill(rule.describe() + " Dashed: not converged.", width=120)
    figure.text(0.01, -0.02, caption, fontsize=7, ha="left", va="top")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    return path


def verdicts_of(curves: Mapping[str, LearningCurve], rule: Optional[ConvergenceRule] = None) -> dict:
    """``{label: ConvergenceVerdict}`` under `rule` (default `ConvergenceRule()`)."""
    rule = rule or ConvergenceRule()
    return {label: rule.check(curve) for label, curve in curves.items()}

