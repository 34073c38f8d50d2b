"""The configuration of a study: `StudyConfig`, one `ExperimentConfig` run many times.

A study trains the paper's variants (Mono, JointPair, JointAll, +LS, +Meta LS)
of one run configuration (``run``, an `ExperimentConfig`) for several seeds,
evaluates every run on the corpus's tasks, and reports tables and verdicts
(`tf_metaling.study`). Everything that decides its figures is here, so the
configuration written into a study's directory (``study.yaml``) reproduces it:

- ``run``: every run's configuration before its variant and seed are applied;
  its ``data.languages`` are the study's languages (empty with a corpus
  directory: every language the directory has);
- ``variants``, ``seeds``, ``pivot``, ``ls_kind``, ``budget``: which runs;
- ``evaluation``: the sizes and protocols of the downstream evaluation;
- ``control``: with ``control.enabled``, the synthetic control's sweeps (two
  languages made from one text; `tf_metaling.study.synthetic_control`);
- ``workers``: runs trained at once (does not change a figure).

A study is registered by name in the same registry as single runs
(`tf_metaling.configs.registry`) and resolved the same way: registered ->
``--config_file`` -> ``--params_override`` -> flags.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from official.modeling import hyperparams

from tf_metaling.configs.experiment_config import ExperimentConfig, validate
from tf_metaling.configs.variants import PAPER_VARIANTS, SURGERY_VARIANTS, VARIANTS

BUDGETS = ("per_language", "total")
CLASSIFICATION_PROTOCOLS = ("zero_shot", "in_language")
TREATMENTS_IN = ("base", "all")
WIDTH_LEARNING_RATES = ("same", "scaled")
# Variants a pretrained encoder is fine-tuned as (one model of all languages).
FINETUNING_VARIANTS = ("joint_all", "joint_all_ls", "joint_all_meta_ls")
# The synthetic control's variants (with two languages JointPair is JointAll).
CONTROL_VARIANTS = ("mono", "joint_all", "joint_all_ls", "joint_all_meta_ls") + SURGERY_VARIANTS


@dataclasses.dataclass
class EvaluationConfig(hyperparams.Config):
    """How every run of a study is evaluated, beyond its held-out MLM loss."""

    retrieval: bool = True  # X -> pivot retrieval, where the corpus has aligned text
    retrieval_pairs: int = 300
    # "zero_shot": the probe is trained on the pivot and tested on every language;
    # "in_language": a probe per language, trained and tested in it.
    classification_protocol: str = "zero_shot"
    classification_train: int = 1500
    # Tagging tasks: fine-tuning steps, learning rate and batch size of every tagger (and of Scratch).
    tagging_steps: int = 300
    tagging_learning_rate: float = 1e-3
    tagging_batch_size: int = 32
    # Fine-tuning studies (run.finetune.init_preset): the classification task fine-tuned on
    # (empty: the corpus's first).
    finetune_task: str = ""


@dataclasses.dataclass
class ControlConfig(hyperparams.Config):
    """The synthetic control's conditions: what ``lo`` shares with ``en``, and how much text it has.

    The shared-vocabulary sweep gives ``lo`` a fraction of ``en``'s ids
    (`shares`) at `sweep_resource`, plus the reversed word order at
    `reversed_share` (None: no such condition); the resource sweep gives it
    `resources` of ``en``'s text at `sweep_share`. `widths` adds the
    interference-vs-capacity curve on the base condition (share `sweep_share`,
    resource `sweep_resource`), at the run's learning rate (`width_learning_rate`
    "same") or one halved whenever the width doubles ("scaled"); ``sweeps=False``
    runs the curve alone. +LS and +Meta LS run in the base condition only
    (`treatments_in` "base") or in every condition ("all").
    """

    enabled: bool = False
    shares: List[float] = dataclasses.field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0])
    reversed_share: Optional[float] = 1.0
    resources: List[float] = dataclasses.field(default_factory=lambda: [1.0, 0.1, 0.01])
    sweep_resource: float = 0.1
    sweep_share: float = 0.0
    widths: List[int] = dataclasses.field(default_factory=list)
    width_learning_rate: str = "same"
    sweeps: bool = True
    treatments_in: str = "base"
    # The source text: "toy", "builtin:en", or "directory:DIR:CODE" (a corpus directory's language).
    source: str = "toy"


@dataclasses.dataclass
class TransferConfig(hyperparams.Config):
    """Cross-lingual transfer on a pretrained encoder, the paper's way (`tf_metaling.study.transfer_study`).

    Stage 1 (`run.finetune.init_preset`'s encoder frozen): the masked-LM head
    alone for `head_steps` (the reference: untrained LS layers), then from it
    the LS layers and head by MLM on every language's text, as +LS and as +Meta
    LS, for ``run.trainer.train_steps`` each at ``run.data`` (sequence length,
    batch, languages). Stage 2, strictly zero-shot: a class-balanced
    logistic-regression head on the mean-pooled output, trained on
    `classification_train` English examples, its L2 strength chosen among
    `probe_cs` by `probe_folds`-fold cross-validation on them; each target
    language tested through its own LS layers (and, as a row, through
    English's). The frozen-encoder probe is the same head on the encoder
    alone. JointAll (variant ``joint_all``) fine-tunes every weight on the same
    English examples (class-balanced) for up to `finetune_steps`, at each of
    `finetune_learning_rates`; the steps and the rate are chosen on the English
    validation split.
    """

    enabled: bool = False
    head_steps: int = 300
    task_sequence_length: int = 128  # the task's texts (stage 2 and every evaluation)
    classification_train: int = 2000
    test_per_class: int = 0  # test examples per class and language (balanced); 0: as many as balance allows
    # Every row's features centred per language (each language's mean over the sentences evaluated
    # subtracted; unlabelled text only, as everywhere in the toolkit: study/evaluation/embeddings.py).
    center_languages: bool = True
    probe_cs: List[float] = dataclasses.field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])
    probe_folds: int = 5
    finetune_steps: int = 300
    finetune_learning_rates: List[float] = dataclasses.field(default_factory=lambda: [3e-5])
    finetune_batch_size: int = 16
    finetune_eval_interval: int = 50
    # Tagging tasks of the corpus (Turkish POS), in-language: the pretrained encoder (frozen, a token
    # head trained) beside the same architecture trained from scratch, each for this many steps at
    # evaluation.tagging_learning_rate; 0 leaves them out.
    tagging_steps: int = 0
    tagging_scratch_learning_rate: float = 1e-4


@dataclasses.dataclass
class StudyConfig(hyperparams.Config):
    """A study: the runs (variants x languages x seeds) of one run configuration, and their evaluation."""

    name: str = ""  # the registered name it was made from (set by the registry)
    run: ExperimentConfig = dataclasses.field(default_factory=ExperimentConfig)
    variants: List[str] = dataclasses.field(default_factory=lambda: list(PAPER_VARIANTS))
    seeds: List[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    pivot: str = "en"  # JointPair partner, retrieval target, classification training language
    ls_kind: str = "adapter"  # the LS kind of +LS and +Meta LS
    # "per_language": a run over n languages trains n x run.trainer.train_steps (each language
    # gets about its Mono run's batches); "total": every run trains run.trainer.train_steps.
    budget: str = "per_language"
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    control: ControlConfig = dataclasses.field(default_factory=ControlConfig)
    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
    # Runs trained at once, each in its own process with cpu_count / workers threads; on small
    # models one thread steps as fast as two, so 2 workers on 2 cores finish about twice the
    # runs per hour. The figures do not depend on it.
    workers: int = 1

    @property
    def finetuning(self) -> bool:
        """A pretrained encoder fine-tuned on the pivot's task (run.finetune.init_preset), not pretraining."""
        return bool(self.run.finetune.init_preset)


# Fields that do not change any figure of a study: a rerun may change them freely.
RESULT_NEUTRAL_FIELDS = ("workers",)


def validate_study(config: StudyConfig) -> StudyConfig:
    """Checks a study's fields (and its run's, `validate`); raises ValueError naming the field."""

    def check(condition, field, message):
        if not condition:
            raise ValueError(f"study {config.name or '(unnamed)'}: field {field}: {message}")

    check(len(config.variants) >= 1, "variants", "needs at least one variant")
    unknown = [v for v in config.variants if v not in VARIANTS]
    check(not unknown, "variants", f"unknown {unknown}; choose from {list(VARIANTS)}")
    check(len(set(config.variants)) == len(config.variants), "variants", f"duplicates in {list(config.variants)}")
    check(len(config.seeds) >= 1, "seeds", "needs at least one seed")
    check(len(set(config.seeds)) == len(config.seeds), "seeds", f"duplicates in {list(config.seeds)}")
    check(config.budget in BUDGETS, "budget", f"{config.budget!r} is not one of {BUDGETS}")
    check(config.workers >= 1, "workers", "must be >= 1")
    check(config.evaluation.classification_protocol in CLASSIFICATION_PROTOCOLS,
          "evaluation.classification_protocol",
          f"{config.evaluation.classification_protocol!r} is not one of {CLASSIFICATION_PROTOCOLS}")
    if config.finetuning and config.transfer.enabled:
        check(config.run.task == "mlm", "run.task", f"the transfer protocol's runs are stage-1 MLM runs (task mlm), "
                                                    f"not {config.run.task!r}")
    elif config.finetuning:
        check(config.run.task == "sentence_classification", "run.task",
              f"fine-tuning a pretrained encoder (run.finetune.init_preset) needs task sentence_classification, "
              f"not {config.run.task!r}")
        wrong = [v for v in config.variants if v not in FINETUNING_VARIANTS]
        check(not wrong, "variants", f"{wrong}: a pretrained encoder is fine-tuned as one model of all "
                                     f"languages; choose from {list(FINETUNING_VARIANTS)}")
    transfer = config.transfer
    if transfer.enabled:
        check(config.finetuning, "run.finetune.init_preset", "the transfer protocol starts from a pretrained "
                                                              "encoder (builtin, a keras-hub preset or a Hugging Face directory)")
        check(not config.control.enabled, "control.enabled", "a study is the transfer protocol or the control, not both")
        check(transfer.tagging_steps >= 0, "transfer.tagging_steps", "must be >= 0 (0: no tagging)")
        check(transfer.head_steps >= 1 and transfer.finetune_steps >= 1, "transfer.head_steps",
              "head_steps and finetune_steps must be >= 1")
        check(transfer.probe_folds >= 2, "transfer.probe_folds", "needs >= 2 folds")
        check(bool(transfer.probe_cs) and all(c > 0 for c in transfer.probe_cs), "transfer.probe_cs",
              f"{list(transfer.probe_cs)}: needs positive inverse L2 strengths")
        check(bool(transfer.finetune_learning_rates), "transfer.finetune_learning_rates", "needs at least one")
        check(transfer.classification_train >= 2 * transfer.probe_folds, "transfer.classification_train",
              "too few examples for the cross-validation")
    control = config.control
    if control.enabled:
        wrong = [v for v in config.variants if v not in CONTROL_VARIANTS]
        check(not wrong, "variants", f"{wrong}: the synthetic control runs {list(CONTROL_VARIANTS)} (with two "
                                     "languages JointPair is JointAll)")
        check(control.treatments_in in TREATMENTS_IN, "control.treatments_in",
              f"{control.treatments_in!r} is not one of {TREATMENTS_IN}")
        check(control.width_learning_rate in WIDTH_LEARNING_RATES, "control.width_learning_rate",
              f"{control.width_learning_rate!r} is not one of {WIDTH_LEARNING_RATES}")
        check(control.sweeps or bool(control.widths), "control.sweeps",
              "no condition to run (sweeps false and no widths): give the capacity curve's widths, or run the "
              "sweeps")
        check(all(w > 0 for w in control.widths), "control.widths", f"{list(control.widths)}: widths must be > 0")
        check(not config.finetuning, "run.finetune.init_preset", "the synthetic control pretrains its models")
        check(config.run.data.corpus == "synthetic", "run.data.corpus",
              "the synthetic control's runs read synthetic languages (data.corpus=synthetic)")
    validate(config.run, languages_from_corpus=config.run.data.corpus == "directory")
    return config
