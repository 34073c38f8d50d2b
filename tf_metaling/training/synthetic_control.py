"""The synthetic control: the paper's comparison where what languages share is known exactly.

Two languages made from one source text (`SyntheticCorpus`): ``en``, the
text itself, and ``lo``, a derived low-resource language. Each *condition*
sets what ``lo`` shares with ``en`` and how much text it gets:

- the shared-vocabulary sweep: ``lo`` keeps a fraction of the ids unchanged
  (`ControlPlan.shares`, e.g. 0, 0.25, 0.5, 1.0) and, once more at share 1.0,
  reverses the word order ("same words, different grammar"); at the sweep's
  resource (`sweep_resource`; the default preset's: 1, equal text);
- the resource sweep: ``lo`` gets 1/1, 1/10, 1/100 of ``en``'s training text
  (`resources`), at the sweep's share (`sweep_share`, 0).

Every condition is one `ComparisonStudy` (the same runner, runs, records,
tables and CIs as the real study) in ``<output_dir>/<condition>``: Mono,
JointAll, JointAll+LS, JointAll+Meta LS (with two languages JointPair *is*
JointAll, so it is not trained twice; claim (c) reads JointAll's figures),
with held-out MLM loss, retrieval (``lo`` -> ``en``: every sentence's
translation is known) and a classification task whose labels come from the
source sentence (trained on ``en``, zero-shot on ``lo``). The summary
(``control.md``) has, per condition, the interference JointAll - Mono per
language with its 95% CI, and the verdict on each of the paper's claims;
`ControlPlan.widths` adds the interference-vs-capacity curve on the base
condition (share `sweep_share`, resource `sweep_resource`), at the
experiment's learning rate or (`width_learning_rate="scaled"`) one halved
whenever the width doubles; ``sweeps=False`` runs the curve alone.

Mono runs are trained once where several conditions would train the same
model, and their figures serve every such condition: a Mono model sees one
language, and which ids that language uses, or whether its words run
backwards, changes nothing a model of it alone can learn. So Mono ``lo`` is
trained once per resource level (in the resource sweep's condition: share
`sweep_share`, natural order), and Mono ``en`` (the same text, vocabulary and
seed in every condition: the runs are bit-identical) once, in the base
condition, per width.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import time
from typing import Optional

from tf_metaling import checkpoints
from tf_metaling.training import study_table
from tf_metaling.training.comparison_study import ComparisonStudy, StudyPlan

CONTROL_VARIANTS = ("mono", "joint_all", "joint_all_ls", "joint_all_meta_ls")
SOURCE, DERIVED = "en", "lo"


@dataclasses.dataclass(frozen=True)
class Condition:
    """What ``lo`` shares with ``en`` (fraction of ids, word order) and its share of the text."""

    share: float
    resource: float
    reverse: bool = False
    width: Optional[int] = None  # hidden size (capacity curve); None: the experiment's

    @property
    def name(self) -> str:
        name = f"share{self.share:g}{'-reversed' if self.reverse else ''}-resource{self.resource:g}"
        return name + (f"-width{self.width}" if self.width else "")

    @property
    def title(self) -> str:
        words = f"share {self.share:g}{', reversed order' if self.reverse else ''}, resource {self.resource:g}"
        return words + (f", width {self.width}" if self.width else "")

    def spec(self) -> list:
        options = [f"share={self.share:g}", f"resource={self.resource:g}"] + (["reverse"] if self.reverse else [])
        return [SOURCE, f"{DERIVED}:{','.join(options)}"]


@dataclasses.dataclass
class ControlPlan:
    experiment: str = "study_control"
    seeds: tuple = (0, 1, 2)
    variants: tuple = CONTROL_VARIANTS
    shares: tuple = (0.0, 0.25, 0.5, 1.0)
    reversed_share: Optional[float] = 1.0  # the share of the reversed-order condition (None: none)
    resources: tuple = (1.0, 0.1, 0.01)
    sweep_resource: float = 0.1  # lo's resource in the share sweep
    sweep_share: float = 0.0  # lo's share in the resource sweep
    widths: tuple = ()  # hidden sizes of the capacity curve (Mono and JointAll only)
    # The capacity curve's learning rate: "same" (the experiment's at every width) or "scaled"
    # (times base width / width: halved when the width doubles; at d=64 the joint runs were
    # unstable at d=32's 5e-3 and matched Mono at 2.5e-3, BUILD.md).
    width_learning_rate: str = "same"
    sweeps: bool = True  # the shared-vocabulary and resource sweeps; False: the capacity curve only
    # Where +LS and +Meta LS run: "base" (the base condition only: share `sweep_share`,
    # resource `sweep_resource`; the sweeps' other conditions run Mono and JointAll) or "all".
    treatments_in: str = "base"
    source: str = "toy"  # "toy", "builtin:en", "directory:DIR:en"
    retrieval_pairs: int = 200
    classification_train: int = 1000
    overrides: Optional[object] = None
    # Runs trained at once, one process each (`comparison_study.run_studies`): the control's
    # models are so small that one thread runs a step as fast as two, so on 2 cores two
    # workers train twice the runs per hour.
    workers: int = 2

    def conditions(self) -> list:
        if self.treatments_in not in ("base", "all"):
            raise ValueError(f"ControlPlan.treatments_in={self.treatments_in!r}: expected 'base' or 'all'.")
        if self.width_learning_rate not in ("same", "scaled"):
            raise ValueError(f"ControlPlan.width_learning_rate={self.width_learning_rate!r}: expected 'same' "
                             "or 'scaled'.")
        chosen = []
        if self.sweeps:
            chosen = [Condition(share, self.sweep_resource) for share in self.shares]
            if self.reversed_share is not None:
                chosen.append(Condition(self.reversed_share, self.sweep_resource, reverse=True))
            chosen += [Condition(self.sweep_share, resource) for resource in self.resources]
        chosen += [Condition(self.sweep_share, self.sweep_resource, width=width) for width in self.widths]
        if not chosen:
            raise ValueError("ControlPlan: no condition to run (sweeps=False and no widths): give the "
                             "capacity curve's widths, or run the sweeps.")
        return list(dict.fromkeys(chosen))  # the base condition appears in both sweeps: once


def _merge(base, extra) -> dict:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SyntheticControl:
    """Runs (or resumes) every condition's study in `output_dir` and writes the summary."""

    def __init__(self, plan: ControlPlan, output_dir: str, log=None):
        from official.modeling import hyperparams

        from tf_metaling import configs

        self.plan = plan
        self.output_dir = os.path.abspath(output_dir)
        self.log = log or sys.stdout
        overrides = plan.overrides or {}
        if isinstance(overrides, str):
            overrides = hyperparams.override_params_dict(
                configs.get_experiment(plan.experiment), overrides, is_strict=True).as_dict()
        self.overrides = overrides
        conditions = plan.conditions()
        # Every Mono source is run, and before the conditions that borrow from it.
        sources = [self.mono_source(c, code) for c in conditions for code in (SOURCE, DERIVED)
                   if "mono" in plan.variants]
        ordered = list(dict.fromkeys(sources + conditions))
        self.studies = {condition: self._study(condition) for condition in ordered}

    def mono_source(self, condition: Condition, code: str) -> Condition:
        """The condition whose Mono run of `code` gives `condition`'s Mono figures of `code`.

        ``lo``: the resource sweep's condition of the same resource; ``en``: the base
        condition (``en`` is the same text whatever ``lo`` is); both at `condition`'s width.
        """
        resource = condition.resource if code == DERIVED else self.plan.sweep_resource
        return Condition(self.plan.sweep_share, resource, width=condition.width)

    def _study(self, condition: Condition) -> ComparisonStudy:
        data = {"corpus": "synthetic", "languages": [SOURCE, DERIVED], "synthetic_languages": condition.spec(),
                "synthetic_source": self.plan.source}
        extra = {"data": data}
        if condition.width:
            extra["model"] = {"hidden_dim": condition.width, "intermediate_dim": 4 * condition.width}
            if self.plan.width_learning_rate == "scaled":
                extra["trainer"] = {"learning_rate": self.learning_rate(condition.width)}
        base = Condition(self.plan.sweep_share, self.plan.sweep_resource)
        untreated = condition.width or (self.plan.treatments_in == "base" and condition != base)
        variants = self.plan.variants if not untreated else tuple(
            v for v in self.plan.variants if v in ("mono", "joint_all"))
        mono_languages = tuple(code for code in (SOURCE, DERIVED) if self.mono_source(condition, code) == condition)
        if not mono_languages:
            variants = tuple(v for v in variants if v != "mono")
        plan = StudyPlan(experiment=self.plan.experiment, variants=variants, seeds=self.plan.seeds,
                         mono_languages=mono_languages,
                         pivot=SOURCE, retrieval_pairs=self.plan.retrieval_pairs,
                         classification_train=self.plan.classification_train,
                         overrides=_merge(self.overrides, extra) if self.overrides else extra)
        return ComparisonStudy(plan, os.path.join(self.output_dir, condition.name), log=self.log)

    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    def run(self) -> dict:
        """Trains every condition's runs (one pool of `plan.workers` processes for all) and collects them."""
        from tf_metaling.training.comparison_study import run_studies

        started = time.perf_counter()
        self._print(f"{len(self.studies)} conditions: " + "; ".join(c.title for c in self.studies))
        results = run_studies(list(self.studies.values()), self.plan.workers, log=self.log)
        collected = dict(zip(self.studies, results))
        for condition in collected:
            for code in (SOURCE, DERIVED):
                source = self.mono_source(condition, code)
                if source != condition and source in collected:
                    _borrow_mono(collected[condition], collected[source], code)
        self._print(f"the control's runs took {time.perf_counter() - started:.0f} s")
        return collected

    # ------------------------------------------------------------------ summary
    def summary(self, collected: dict) -> str:
        """control.md: per condition the interference and the verdicts; the capacity curve."""
        from tf_metaling.training.capacity_curve import capacity_table, interference_by_capacity, plot_capacity_curve
        from tf_metaling.training.verdicts import claim_verdicts

        rule = "Held-out MLM loss, nats per masked token (lower is better)."
        lines = [study_table.wrap(
            f"Synthetic control: {SOURCE} is the source text ({self.plan.source}), {DERIVED} a derived language; "
            f"per condition, what {DERIVED} shares with {SOURCE} and its share of the training text. "
            + (f"{len(self.plan.seeds)} seeds; 95% CIs are t intervals over seeds. " if len(self.plan.seeds) > 1 else
               "One seed: 95% CIs are percentile bootstraps over the test examples, so seed-to-seed variation is "
               "not included. ")
            + "With two languages JointPair is JointAll, so claim (c) reads JointAll's figures.")]
        header = ["condition", f"{SOURCE} JointAll-Mono", f"{DERIVED} JointAll-Mono", "runs converged"]
        rows, verdict_rows, everything = [], [], {}
        capacity, capacity_records = {}, {}
        for condition, results in collected.items():
            values = study_table.cell_values(results, "mlm_loss")
            cells = [condition.title]
            for code in (SOURCE, DERIVED):
                cells.append(self._difference(values, "joint_all", "mono", code,
                                              records=results["records"].get("mlm_loss")))
            runs = results.get("runs", {})
            cells.append(f"{sum(r['convergence']['converged'] for r in runs.values())}/{len(runs)}")
            rows.append(cells)
            if condition.width:
                capacity[condition.width] = {v: dict(rows_) for v, rows_ in values.items()}
                capacity_records[condition.width] = results["records"].get("mlm_loss")
                continue
            if condition == Condition(self.plan.sweep_share, self.plan.sweep_resource):
                capacity.setdefault(self._base_width(), {v: dict(rows_) for v, rows_ in values.items()})
                capacity_records.setdefault(self._base_width(), results["records"].get("mlm_loss"))
            pair_values = {**values, "joint_pair": values.get("joint_all", {})}
            transfer = study_table.cell_values(results, "classification:contains_word")
            verdicts = claim_verdicts(
                pair_values, results["groups"], higher_is_better=False, pivot=SOURCE,
                records=_with_pair(results["records"].get("mlm_loss", {})),
                transfer_values=transfer,
                transfer_records=results["records"].get("classification:contains_word"),
                transfer_metric_name="zero-shot classification accuracy",
            )
            everything[condition.name] = [dataclasses.asdict(v) for v in verdicts]
            verdict_rows.append((condition, verdicts))
        lines += ["", study_table.wrap(f"Interference per condition: JointAll - Mono of the held-out MLM loss "
                                       "(positive = the joint model is worse: negative interference). " + rule)]
        lines += _markdown(header, rows)
        from tf_metaling.training.verdicts import format_verdicts, verdict_tally

        for condition, verdicts in verdict_rows:
            lines += ["", f"### {condition.title}",
                      format_verdicts(verdicts, not_converged=study_table.unconverged_runs(collected[condition]))]
        tally = verdict_tally({condition.name: verdicts for condition, verdicts in verdict_rows},
                              what="conditions")
        if tally:
            lines += ["", tally]
        paths = {}
        if self.plan.widths and capacity:  # without widths there is no curve (the base condition alone)
            rates = ", ".join(f"d={width}: {self.learning_rate(width):g}" for width in sorted(capacity))
            rule = (f"scaled with the width (base width {self._base_width()}, halved when the width doubles): "
                    if self.plan.width_learning_rate == "scaled" else "the same at every width: ")
            count = f"{len(capacity)} width{'s' if len(capacity) != 1 else ''}"
            lines += ["", study_table.wrap(f"Interference against capacity ({count}). Learning rate {rule}{rates}.")]
        if len(capacity) >= 2:
            lines += ["", capacity_table(capacity, metric_name="held-out MLM loss", higher_is_better=False,
                                         records=capacity_records)]
            paths["capacity_png"] = plot_capacity_curve(capacity, os.path.join(self.output_dir, "capacity.png"),
                                                        records=capacity_records,
                                                        metric_name="held-out MLM loss", higher_is_better=False)
            lines += [f"Capacity curve: {paths['capacity_png']}"]
        text = "\n".join(lines) + "\n"
        checkpoints.atomic_write_text(os.path.join(self.output_dir, "control.md"), text)
        checkpoints.atomic_write_text(os.path.join(self.output_dir, "control.json"),
                                      json.dumps({"verdicts": everything}, indent=1))
        return text

    def _base_value(self, section: str, field: str):
        """``section.field`` of the experiment's config, or the plan's override of it."""
        from tf_metaling import configs

        default = getattr(getattr(configs.get_experiment(self.plan.experiment), section), field)
        return (self.overrides.get(section) or {}).get(field, default)

    def _base_width(self) -> int:
        return int(self._base_value("model", "hidden_dim"))

    def learning_rate(self, width: Optional[int] = None) -> float:
        """The learning rate of a run at `width` (None: the experiment's width) under `width_learning_rate`."""
        rate = float(self._base_value("trainer", "learning_rate"))
        if width and self.plan.width_learning_rate == "scaled":
            rate *= self._base_width() / width
        return rate

    @staticmethod
    def _difference(values, variant, baseline, code, records=None) -> str:
        """``variant - baseline`` in `code` with its 95% CI: t over seeds, or with one seed a bootstrap over examples."""
        from tf_metaling.training.verdicts import difference_interval

        a, b = values.get(variant, {}).get(code), values.get(baseline, {}).get(code)
        if not a or not b or len(a) != len(b):
            return "-"
        interval, _ = difference_interval(values, variant, baseline, [code], higher_is_better=False, records=records)
        text = f"{interval.effect:+.3f}"
        if interval.low is not None:
            text += f" [{interval.low:+.3f}, {interval.high:+.3f}]" + ("*" if interval.low <= 0 <= interval.high else "")
        return text

    def report(self, collected: dict) -> dict:
        for condition, study in self.studies.items():
            with open(os.devnull, "w") as quiet:
                study.log = quiet
                study.report(collected[condition])
                study.log = self.log
        text = self.summary(collected)
        self._print(text)
        return {"summary": os.path.join(self.output_dir, "control.md")}


def _borrow_mono(results: dict, source: dict, code: str) -> None:
    """Puts `source`'s Mono figures of `code` (records and runs) into `results` (another condition)."""
    for metric, variants in source["records"].items():
        if code in variants.get("mono", {}) and metric in results["records"]:
            results["records"][metric].setdefault("mono", {})[code] = variants["mono"][code]
            reasons = results.get("reasons", {}).get(metric, {})
            reasons.get("mono", {}).pop(code, None)
            if "mono" in reasons and not reasons["mono"]:
                del reasons["mono"]
    results["variants"] = ["mono"] + [v for v in results["variants"] if v != "mono"]
    results["runs"] = {**{name: run for name, run in source.get("runs", {}).items()
                          if run["variant"] == "mono" and run["language"] == code},
                       **results.get("runs", {})}
    results.setdefault("mono_from", {})[code] = source.get("corpus")


def _with_pair(records: dict) -> dict:
    return {**records, "joint_pair": records.get("joint_all", {})} if records else records


def _markdown(header, rows) -> list:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    return (["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
            + ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
            + ["* the CI includes 0: no interference can be claimed."])
