"""The configuration of one training run: `ExperimentConfig`, in the manner of TF Model Garden.

A config is an `official.modeling.hyperparams.Config` dataclass tree. The
trainers resolve it as Model Garden does: a registered experiment
(``--experiment``, `tf_metaling.configs.registry`) -> ``--config_file`` (YAML)
-> ``--params_override`` (YAML string or ``a.b=1,c=x``) -> flag shorthands
(``--languages``, ``--seed``); then `validate`, lock, and write it into
``model_dir/config.yaml``.

The paper's variants are configurations of this one class, not code paths
(`tf_metaling.configs.variants`); a study (`study_config.StudyConfig`) holds
one `ExperimentConfig` and the variants, seeds and languages it runs it with.
"""

from __future__ import annotations

import dataclasses
from typing import List

from official.modeling import hyperparams

from tf_metaling.data.corpora import CORPUS_KINDS as CORPORA  # the registered data.corpus kinds
from tf_metaling.layers.transformer_block import normalize_ls_slots
from tf_metaling.meta.gradient_surgery import GRANULARITIES, METHODS
from tf_metaling.models.partition import TRAIN_WEIGHTS

TASKS = ("mlm", "token_classification", "sentence_classification")
STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16")  # mixed_float16 would need loss scaling
# The paper's languages mapped onto the built-in corpus (see tf_metaling.data.corpora).
DEFAULT_LANGUAGES = ("en", "ar", "ru", "tr", "ur", "ml", "ny")


@dataclasses.dataclass
class ModelConfig(hyperparams.Config):
    """The `MultilingualEncoder` (languages come from `DataConfig.languages`)."""

    hidden_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_dim: int = 1024
    max_sequence_length: int = 128
    # "none", a kind ("adapter", "ffn", "attention", "layer_norm") or a comma list of kinds/slots.
    language_specific: str = "adapter"
    # Blocks that get LS layers; empty = all.
    language_specific_layers: List[int] = dataclasses.field(default_factory=list)
    adapter_dim: int = 64
    adapter_activation: str = "relu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    normalize_first: bool = False
    language_embedding: bool = False


@dataclasses.dataclass
class DataConfig(hyperparams.Config):
    """Where text comes from and how batches are made."""

    # "builtin" (pip-only corpus), "directory" (the user's corpus_dir), "synthetic", or "files"
    corpus: str = "builtin"
    corpus_dir: str = ""  # corpus=directory: DIR/text/<code>.txt, DIR/pos, ner, nli, parallel (README)
    languages: List[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_LANGUAGES))
    # corpus="files": "en=/path/en.txt,sw=/path/sw.txt.gz" (train) and the same for valid.
    train_files: str = ""
    valid_files: str = ""
    cache_dir: str = ""  # built-in corpus cache (default: the user cache directory)
    low_resource_size: int = 1000  # training sentences kept for a low-resource language
    # corpus="synthetic" (data/corpora/synthetic_corpus.py): language specs, the first being the
    # source text, e.g. ["en", "lo:share=0.25,resource=0.1", "hi:reverse"] (default: the
    # languages, odd ones reversed); the source ("toy", "builtin:en", "directory:DIR:en"); and a
    # full-resource language's training sentences.
    synthetic_languages: List[str] = dataclasses.field(default_factory=list)
    synthetic_source: str = "toy"
    synthetic_train_sentences: int = 400
    vocab_file: str = ""  # an existing WordPiece vocabulary; empty = learn one
    vocab_size: int = 8000
    sequence_length: int = 128
    batch_size: int = 32  # global, per step
    max_predictions: int = 20
    batching: str = "one_language"  # "one_language" (as in the paper) or "mixed"
    sampling_alpha: float = 0.5  # q_l proportional to n_l ** alpha; 0 = uniform
    packing: str = "stream"
    shuffle_buffer: int = 10000
    meta_examples_per_language: int = 4  # held-out examples per language in a meta batch
    eval_batches_per_language: int = 4
    eval_batch_size: int = 32
    # Under tf.distribute: every worker computes the same global batches and keeps its
    # rows (identical training whatever the worker count) instead of reading its own shard.
    split_global_batch: bool = False


@dataclasses.dataclass
class MetaConfig(hyperparams.Config):
    """The meta step (PAPER.md section 4) and its options."""

    enabled: bool = False
    first_order: bool = False  # drop the Hessian-vector term
    every_n_steps: int = 1  # meta update on every n-th step
    exclude_current_language: bool = False  # meta loss over languages other than k
    inner_learning_rate: float = 0.0  # alpha; 0 = the shared optimizer's current rate
    # A different estimator: look ahead with the ordinary step's gradient instead of a
    # fresh batch's (saves one forward/backward).
    reuse_ordinary_gradient: bool = False
    learning_rate: float = 1e-4  # the LS parameters' meta optimizer (Adam)
    clip_norm: float = 5.0  # applied to phi_k's meta-gradient after selecting it
    ordinary_step_updates_language: bool = True  # False: the ordinary step moves theta only


@dataclasses.dataclass
class SurgeryConfig(hyperparams.Config):
    """Gradient surgery between the languages of a mixed batch (PAPER.md section 6).

    The ordinary step computes each language's gradient on the shared
    parameters (heads excepted) and combines them with PCGrad or GradVac
    (`tf_metaling.meta.gradient_surgery`); needs ``data.batching=mixed``.
    """

    method: str = "none"  # "none", "pcgrad" or "gradvac"
    # "model": all shared parameters as one vector; "layer_group": each layer group on its own
    # (the groups the interference probe measures).
    granularity: str = "layer_group"
    beta: float = 1e-2  # GradVac: EMA rate of the target cosines
    seed: int = 0  # the order in which each language visits the others (drawn per step)


@dataclasses.dataclass
class TrainerConfig(hyperparams.Config):
    train_steps: int = 1000
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    decay_to_zero: bool = False  # linear decay after warmup
    clip_norm: float = 5.0
    steps_per_loop: int = 50
    checkpoint_interval: int = 200
    max_to_keep: int = 3
    eval_interval: int = 200
    summary_interval: int = 50
    # Interference probe (gradient similarities on held-out batches) every n steps;
    # 0 disables it. At 100 it cost 6.5-8% of training time with 7 languages (benchmarks/interference_probe.py).
    probe_interval: int = 100
    # Early stopping (train_and_eval): stop when the mean held-out loss has not improved (by more
    # than plateau_min_delta, relative) for this many evaluations in a row; 0 trains to train_steps.
    plateau_patience: int = 0
    plateau_min_delta: float = 0.0
    # train_and_eval: keep the weights of the best evaluation (model_dir/best/) and end the run
    # with them (its final checkpoint and metrics), as early stopping should when the held-out
    # loss rises after its best (overfitting a small language).
    restore_best: bool = False


@dataclasses.dataclass
class FinetuneConfig(hyperparams.Config):
    """Downstream tasks: a pretrained model_dir, the task data, zero-shot transfer."""

    # Pretrained model_dir whose encoder weights start the run (with init_preset and task mlm: the
    # stage-1 run whose head and LS layers start this one, training/language_pretraining.py).
    init_model_dir: str = ""
    from_scratch: bool = False  # the architecture and tokenizer of the start, random weights (baseline)
    # Or a keras-hub preset or Hugging Face directory (BERT / XLM-R; tf_metaling.models.pretrained): the
    # encoder's sizes, weights and tokenizer come from it; model.language_specific,
    # language_specific_layers, adapter_dim, adapter_activation, dropout, attention_dropout and
    # data.languages still apply. Set one of init_model_dir / init_preset.
    init_preset: str = ""  # or "builtin": the built-in 4-bit multilingual-e5-small (models/builtin_encoder.py)
    # Language-layer files (tf_metaling.models.language_modules.save_language_module) loaded after
    # the encoder holds its start weights: each file's languages replace the model's (they must be
    # among the model's languages) and its base model must be the start's (checked, else refused).
    language_layers: List[str] = dataclasses.field(default_factory=list)
    # Which weights train: "all", "language_specific_and_heads" (e.g. adapters + head) or "heads".
    train_weights: str = "all"
    # meta.enabled: the meta step's held-out batches are labelled examples of every language:
    # the built-in task's validation split, or "de=/path,sw=/path" files read like train_file.
    meta_files: str = ""
    dataset: str = ""  # built-in task name, or "files"
    train_language: str = "en"  # zero-shot: train on this language, evaluate on all
    train_file: str = ""
    eval_files: str = ""  # "en=/path,sw=/path"
    label_names: List[str] = dataclasses.field(default_factory=list)
    # Sentence classification: weight each training example by N / (classes x its class's count), so
    # every class carries the same total weight in the loss (a 74% majority class does not win by default).
    class_balanced: bool = False


@dataclasses.dataclass
class RuntimeConfig(hyperparams.Config):
    distribution_strategy: str = "one_device"
    tpu: str = ""
    num_gpus: int = 0
    mixed_precision_dtype: str = "float32"
    seed: int = 0


@dataclasses.dataclass
class ExperimentConfig(hyperparams.Config):
    task: str = "mlm"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    meta: MetaConfig = dataclasses.field(default_factory=MetaConfig)
    surgery: SurgeryConfig = dataclasses.field(default_factory=SurgeryConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


def validate(config: ExperimentConfig, languages_from_corpus: bool = False) -> ExperimentConfig:
    """Checks cross-field constraints; raises ValueError naming the field.

    `languages_from_corpus`: empty ``data.languages`` means every language of the
    corpus (a study on a corpus directory, before it is read): not an error.
    """
    unresolved = languages_from_corpus and not config.data.languages

    def check(condition, field, message):
        if not condition:
            raise ValueError(f"config field {field}: {message}")

    check(config.task in TASKS, "task", f"{config.task!r} is not one of {TASKS}")
    check(config.data.corpus in CORPORA, "data.corpus", f"{config.data.corpus!r} is not one of {CORPORA}")
    check(unresolved or len(config.data.languages) >= 1, "data.languages", "needs at least one language")
    check(
        len(set(config.data.languages)) == len(config.data.languages),
        "data.languages",
        f"duplicate codes in {list(config.data.languages)}",
    )
    check(config.data.batching in ("mixed", "one_language"), "data.batching", "must be mixed or one_language")
    check(config.data.batch_size > 0, "data.batch_size", "must be positive")
    try:
        slots = normalize_ls_slots(config.model.language_specific)
    except ValueError as error:
        raise ValueError(f"config field model.language_specific: {error}") from None
    check(config.model.hidden_dim % config.model.num_heads == 0, "model.num_heads", "must divide hidden_dim")
    check(
        config.data.sequence_length <= config.model.max_sequence_length,
        "data.sequence_length",
        f"{config.data.sequence_length} exceeds model.max_sequence_length {config.model.max_sequence_length}",
    )
    # A preset brings its own depth: fine-tuning checks the layers against it (training/finetuning.py).
    for layer in config.model.language_specific_layers if not config.finetune.init_preset else ():
        check(0 <= layer < config.model.num_layers, "model.language_specific_layers", f"{layer} out of range")
    surgery = config.surgery
    check(surgery.method in METHODS, "surgery.method", f"{surgery.method!r} is not one of {METHODS}")
    check(surgery.granularity in GRANULARITIES, "surgery.granularity",
          f"{surgery.granularity!r} is not one of {GRANULARITIES}")
    check(0.0 < surgery.beta <= 1.0, "surgery.beta", f"{surgery.beta} is not a rate in (0, 1]")
    if surgery.method != "none":
        named = f"surgery.method={surgery.method}"
        check(config.task == "mlm", "surgery.method",
              f"{named} is for masked-LM pretraining on several languages (task=mlm), not task={config.task}")
        check(len(config.data.languages) >= 2, "surgery.method",
              f"{named} combines the gradients of several languages; "
              f"data.languages has {list(config.data.languages)}")
        check(not config.meta.enabled, "surgery.method",
              f"{named} and meta.enabled do not combine: the meta step needs one-language batches, "
              "surgery mixed ones")
        check(config.data.batching == "mixed", "data.batching",
              f"{named} needs several languages in every step: set data.batching=mixed "
              f"(got {config.data.batching!r})")
    if config.meta.enabled:
        check(bool(slots), "meta.enabled", "the meta step trains LS layers: set model.language_specific")
        check(
            config.data.batching == "one_language",
            "data.batching",
            "the meta step needs one-language batches (the language k of each ordinary step)",
        )
        check(config.meta.every_n_steps >= 1, "meta.every_n_steps", "must be >= 1")
        check(
            unresolved or not (config.meta.exclude_current_language and len(config.data.languages) < 2),
            "meta.exclude_current_language",
            "needs at least two languages",
        )
    check(
        config.runtime.distribution_strategy in STRATEGIES,
        "runtime.distribution_strategy",
        f"{config.runtime.distribution_strategy!r} is not one of {STRATEGIES}",
    )
    check(
        config.runtime.mixed_precision_dtype in PRECISIONS,
        "runtime.mixed_precision_dtype",
        f"{config.runtime.mixed_precision_dtype!r} is not one of {PRECISIONS}",
    )
    check(config.trainer.train_steps >= 0, "trainer.train_steps", "must be >= 0")
    check(config.trainer.plateau_patience >= 0, "trainer.plateau_patience", "must be >= 0 (0: no early stop)")
    check(0.0 <= config.trainer.plateau_min_delta < 1.0, "trainer.plateau_min_delta", "must be a fraction in [0, 1)")
    check(config.trainer.steps_per_loop >= 1, "trainer.steps_per_loop", "must be >= 1")
    check(
        config.trainer.summary_interval % config.trainer.steps_per_loop == 0,
        "trainer.summary_interval",
        f"{config.trainer.summary_interval} must be a multiple of trainer.steps_per_loop "
        f"({config.trainer.steps_per_loop})",
    )
    check(
        config.finetune.train_weights in TRAIN_WEIGHTS,
        "finetune.train_weights",
        f"{config.finetune.train_weights!r} is not one of {TRAIN_WEIGHTS}",
    )
    check(
        not (config.meta.enabled and config.finetune.train_weights == "heads"),
        "finetune.train_weights",
        "heads only leaves no language-specific weights for the meta step to train",
    )
    check(
        not (config.finetune.init_model_dir and config.finetune.init_preset) or config.task == "mlm",
        "finetune.init_preset",
        "set either finetune.init_model_dir or finetune.init_preset, not both (both: a stage-1 MLM run on the "
        "preset continuing another's, training.language_pretraining)",
    )
    return config
