"""Which runs a study trains, and the configuration of each; the synthetic control's conditions.

A study's runs are ``(variant, language, seed)``: per seed, a Mono run per
language, a JointPair run per language other than the pivot (pivot + X), and
one run of every other variant over all languages. `run_config` turns one of
them into the run's `ExperimentConfig`: the variant's overrides
(`tf_metaling.configs.variants`), the seed, the study's shared vocabulary and
the training budget. With ``budget="per_language"`` a run over n languages
trains n times the study's steps (its warmup, checkpoint, evaluation and probe
intervals scale with it), so every language gets about as many training
batches in a joint model as in its Mono run: a joint model doing worse is then
interference, not a smaller share of the same budget. ``"total"`` gives every
run the same steps. A fine-tuning study trains on the pivot only, so its
budget is never scaled.

The synthetic control (``control.enabled``) is one study per `Condition`
(`control_conditions`): what the derived language ``lo`` shares with ``en``
and how much text it has; `condition_study` makes each condition's
`StudyConfig`, and `mono_source` says which condition's Mono run serves another
(a Mono model of one language is the same model in every condition that
leaves that language as it is).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Optional, Sequence

from official.modeling import hyperparams

from tf_metaling.configs import StudyConfig, validate, variant_overrides

# The synthetic control's two languages: the source text, and the language derived from it.
SOURCE, DERIVED = "en", "lo"
# Trainer fields that scale with a run's steps under the per-language budget.
SCALED_TRAINER_FIELDS = ("train_steps", "warmup_steps", "checkpoint_interval", "eval_interval", "probe_interval")


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its variant, its language (Mono, JointPair) and its seed."""

    variant: str
    language: Optional[str]
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.variant, self.language, self.seed)


def run_name(variant, language, seed) -> str:
    """The run's directory below ``<study>/runs``: ``<variant>[-<language>]/seed<k>``."""
    return f"{variant}-{language}/seed{seed}" if language else f"{variant}/seed{seed}"


def planned_runs(study: StudyConfig, languages: Sequence[str],
                 mono_languages: Optional[Sequence[str]] = None) -> list[PlannedRun]:
    """The study's runs in the order they are trained.

    `mono_languages`: the languages whose Mono runs this study trains (None:
    every language; the synthetic control trains a Mono run once where several
    conditions would train the same one).
    """
    runs = []
    for seed in study.seeds:
        for variant in study.variants:
            if variant == "mono":
                runs += [PlannedRun(variant, code, seed) for code in languages
                         if mono_languages is None or code in mono_languages]
            elif variant == "joint_pair":
                runs += [PlannedRun(variant, code, seed) for code in languages if code != study.pivot]
            else:
                runs.append(PlannedRun(variant, None, seed))
    return runs


def run_config(study: StudyConfig, languages: Sequence[str], run: PlannedRun, vocab_file: str):
    """The `ExperimentConfig` of one run: the study's ``run`` with the variant, seed, vocabulary and budget."""
    overrides = variant_overrides(run.variant, list(languages), run.language, study.pivot, study.ls_kind)
    overrides["runtime"] = {"seed": int(run.seed)}
    overrides["data"]["vocab_file"] = vocab_file
    if study.budget == "per_language" and not study.finetuning:
        scale = len(overrides["data"]["languages"])
        overrides["trainer"] = {name: getattr(study.run.trainer, name) * scale for name in SCALED_TRAINER_FIELDS}
    # override_params_dict changes its argument in place: every run starts from a copy.
    config = copy.deepcopy(study.run)
    return validate(hyperparams.override_params_dict(config, overrides, is_strict=True))


def run_cost(study: StudyConfig, config) -> int:
    """A run's cost in Mono-run units: its languages under the per-language budget; a meta step costs ~2."""
    languages = len(config.data.languages) if study.budget == "per_language" and not study.finetuning else 1
    return languages * (2 if config.meta.enabled else 1)


@dataclasses.dataclass(frozen=True)
class Condition:
    """What ``lo`` shares with ``en`` (fraction of ids, word order) and its share of the text."""

    share: float
    resource: float
    reverse: bool = False
    width: Optional[int] = None  # hidden size (capacity curve); None: the run config's

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


def control_conditions(config: StudyConfig) -> list:
    """The conditions of a control study, in order, each once."""
    control = config.control
    chosen = []
    if control.sweeps:
        chosen = [Condition(share, control.sweep_resource) for share in control.shares]
        if control.reversed_share is not None:
            chosen.append(Condition(control.reversed_share, control.sweep_resource, reverse=True))
        chosen += [Condition(control.sweep_share, resource) for resource in control.resources]
    chosen += [Condition(control.sweep_share, control.sweep_resource, width=width) for width in control.widths]
    return list(dict.fromkeys(chosen))  # the base condition appears in both sweeps: once


def base_condition(config: StudyConfig) -> Condition:
    return Condition(config.control.sweep_share, config.control.sweep_resource)


def mono_source(config: StudyConfig, condition: Condition, code: str) -> Condition:
    """The condition whose Mono run of `code` gives `condition`'s Mono figures of `code`.

    ``lo``: the resource sweep's condition of the same resource; ``en``: the base
    condition (``en`` is the same text whatever ``lo`` is); both at `condition`'s width.
    """
    resource = condition.resource if code == DERIVED else config.control.sweep_resource
    return Condition(config.control.sweep_share, resource, width=condition.width)


def learning_rate(config: StudyConfig, width: Optional[int] = None) -> float:
    """The learning rate of a run at `width` (None: the run config's) under ``control.width_learning_rate``."""
    rate = float(config.run.trainer.learning_rate)
    if width and config.control.width_learning_rate == "scaled":
        rate *= config.run.model.hidden_dim / width
    return rate


def condition_study(config: StudyConfig, condition: Condition) -> tuple:
    """``(StudyConfig, mono languages)`` of one condition: the control's study with ``lo`` as the condition says."""
    study = copy.deepcopy(config)
    study.name = f"{config.name}/{condition.name}" if config.name else condition.name
    study.control.enabled = False
    study.pivot = SOURCE
    data = study.run.data
    data.corpus, data.languages = "synthetic", [SOURCE, DERIVED]
    data.synthetic_languages, data.synthetic_source = condition.spec(), config.control.source
    if condition.width:
        study.run.model.hidden_dim, study.run.model.intermediate_dim = condition.width, 4 * condition.width
        study.run.trainer.learning_rate = learning_rate(config, condition.width)
    untreated = condition.width or (config.control.treatments_in == "base" and condition != base_condition(config))
    variants = [v for v in config.variants if not untreated or v in ("mono", "joint_all")]
    mono_languages = tuple(code for code in (SOURCE, DERIVED) if mono_source(config, condition, code) == condition)
    study.variants = [v for v in variants if v != "mono" or mono_languages]
    return study, mono_languages


def control_plan(config: StudyConfig) -> list:
    """``[(condition, its StudyConfig, its Mono languages)]``: every condition to run, Mono sources first.

    A condition that is only another's Mono source (e.g. the base condition, whose ``en``
    Mono runs serve every condition, when the sweeps leave it out) trains just those Mono runs.
    """
    conditions = control_conditions(config)
    sources = [mono_source(config, c, code) for c in conditions for code in (SOURCE, DERIVED)
               if "mono" in config.variants]
    plan = []
    for condition in dict.fromkeys(sources + conditions):
        study, mono_languages = condition_study(config, condition)
        if condition not in conditions:
            mono_languages = tuple(code for code in (SOURCE, DERIVED)
                                   if any(mono_source(config, c, code) == condition for c in conditions))
            study.variants = ["mono"]
        plan.append((condition, study, mono_languages))
    return plan


def count_runs(config: StudyConfig) -> Optional[int]:
    """How many runs `config` trains (None when its languages come from a corpus directory)."""
    if config.control.enabled:
        return sum(len(planned_runs(study, study.run.data.languages, mono)) for _, study, mono in control_plan(config))
    if config.transfer.enabled:  # the reference, then per seed each LS run, JointAll per rate (one task), taggers
        seeds, transfer = len(config.seeds), config.transfer
        stage1 = 1 + seeds * sum(v in ("joint_all_ls", "joint_all_meta_ls") for v in config.variants)
        joint_all = seeds * len(transfer.finetune_learning_rates) if "joint_all" in config.variants else 0
        tagging = 2 * seeds if transfer.tagging_steps and "tr" in config.run.data.languages else 0
        return stage1 + joint_all + tagging
    languages = list(config.run.data.languages)
    return len(planned_runs(config, languages)) if languages else None
