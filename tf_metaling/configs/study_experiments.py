"""The registered studies (``python -m trainers.experiments --experiment=NAME``).

Each factory returns a `StudyConfig`: the configuration of its runs (``run``)
and the variants, seeds and evaluation it runs them with. The docstring's first
paragraph is what ``--list_experiments`` prints; the rest says why the sizes
are what they are. ``expected_time`` is a measured wall time on 2 CPU cores
(install and downloads excluded; the measurements are in docs/results.md).
``trainers.pretrain --experiment=study_X`` trains one run of study X's
configuration.
"""

from __future__ import annotations

from tf_metaling.configs.experiment_config import (
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    MetaConfig,
    ModelConfig,
    TrainerConfig,
)
from tf_metaling.configs.registry import register
from tf_metaling.configs.run_experiments import paper, tiny
from tf_metaling.configs.study_config import ControlConfig, EvaluationConfig, StudyConfig, TransferConfig


def _small_run() -> ExperimentConfig:
    """One run of the `study_small` study.

    Sized so that the whole study (7 languages; Mono x 7, JointPair x 6, JointAll,
    +LS, +Meta LS; 3 seeds: 48 runs) fits in about half an hour on 2 CPU cores with
    two workers. The steps are a Mono run's: under the study's per-language budget a
    run over n languages trains n x 300 steps (JointAll: 2100).
    """
    return ExperimentConfig(
        model=ModelConfig(hidden_dim=64, num_layers=2, num_heads=2, intermediate_dim=256,
                          max_sequence_length=64, adapter_dim=16, dropout=0.1, attention_dropout=0.1),
        data=DataConfig(vocab_size=3000, sequence_length=64, batch_size=32, max_predictions=10,
                        eval_batches_per_language=3, eval_batch_size=64, meta_examples_per_language=4),
        # Held-out loss every 60 steps (5 points of the learning curve); stop after 3 evaluations
        # without improvement.
        trainer=TrainerConfig(train_steps=300, learning_rate=1e-3, warmup_steps=30, steps_per_loop=50,
                              checkpoint_interval=300, eval_interval=60, summary_interval=50,
                              probe_interval=75, plateau_patience=3),
        meta=MetaConfig(learning_rate=1e-3),
    )


@register("study_tiny", expected_time="about 1 min")
def study_tiny() -> StudyConfig:
    """A study in seconds per run: en and ar of the built-in corpus, a 2-layer d=32 encoder, one seed.

    For tests and for checking a corpus directory (``--corpus=DIR``) end to end.
    """
    run = tiny()
    run.data.corpus = "builtin"
    run.data.languages = ["en", "ar"]
    run.data.vocab_size = 300
    run.trainer.train_steps = 10
    run.trainer.probe_interval = 0
    return StudyConfig(run=run, seeds=[0], evaluation=EvaluationConfig(retrieval_pairs=30, classification_train=60,
                                                                       tagging_steps=20))


@register("study_demo", expected_time="not measured")
def study_demo() -> StudyConfig:
    """The demo's comparison (`make demo`, first part): Mono, JointAll, +LS, +Meta LS on en and ur(L); one seed.

    The models are trained from scratch for minutes: too little for cross-lingual
    transfer between scripts (X -> en retrieval and zero-shot classification sit at
    chance there), so the demo's tasks are in-language; transfer is the second
    part's (`study_pretrained_demo`), on a pretrained encoder. To fit both parts in
    the demo's time on 2 cores, it has one high-resource and one low-resource
    language (claims (a) and (b) both testable), leaves out JointPair and makes a
    meta update every second step; `study_small` keeps all of it.
    """
    run = _small_run()
    run.data.languages = ["en", "ur"]
    run.trainer.checkpoint_interval = 300
    run.trainer.probe_interval = 100
    run.meta.every_n_steps = 2  # the demo's time budget on 2 cores; `study_small` updates every step
    return StudyConfig(
        run=run, seeds=[0], variants=["mono", "joint_all", "joint_all_ls", "joint_all_meta_ls"],
        evaluation=EvaluationConfig(retrieval=False, classification_protocol="in_language",
                                    classification_train=1000, tagging_steps=150),
    )


@register("study_small", expected_time="31 min with --workers=2")
def study_small() -> StudyConfig:
    """The paper's comparison on 2 CPU cores: 7 languages of the built-in corpus, all five variants, 3 seeds.

    48 runs (Mono x 7, JointPair x 6, JointAll, +LS, +Meta LS per seed) of a d=64
    2-layer encoder, with X -> en retrieval, zero-shot classification and Turkish
    POS. At this budget few runs converge (the convergence table says which).
    """
    return StudyConfig(run=_small_run(), seeds=[0, 1, 2])


@register("study_paper", expected_time="not measured (GPU/TPU sizes)")
def study_paper() -> StudyConfig:
    """The comparison at the reference sizes (d=512, 4 layers, 32 x 256 tokens), for GPU/TPU.

    Every run is `paper`'s configuration; 3 seeds, larger evaluation sets.
    """
    return StudyConfig(run=paper(), seeds=[0, 1, 2],
                       evaluation=EvaluationConfig(retrieval_pairs=1000, classification_train=5000))


def _finetune_run() -> ExperimentConfig:
    """One run of the fine-tuning comparison on the built-in pretrained encoder (few-shot: see below).

    ``finetune.init_preset="builtin"`` is the 4-bit multilingual-e5-small of
    `tf_metaling.models.builtin_encoder` (12 layers x 384). Adapters (r=64, top two
    blocks) and the classification head train, on English Meccan/Medinan verses, 48
    tokens, batch 16; the encoder's own weights stay as pretrained. Adapters in the
    top two of the 12 blocks: backward (and the meta step's second-order pass) stop
    there.
    """
    return ExperimentConfig(
        task="sentence_classification",
        model=ModelConfig(language_specific="adapter", language_specific_layers=[10, 11], adapter_dim=64,
                          dropout=0.1, attention_dropout=0.1),
        data=DataConfig(languages=["en", "ar", "tr", "ur"], sequence_length=48, batch_size=16,
                        eval_batch_size=64, meta_examples_per_language=4),
        trainer=TrainerConfig(train_steps=150, learning_rate=1e-3, warmup_steps=15, steps_per_loop=50,
                              checkpoint_interval=150, eval_interval=150, summary_interval=50, probe_interval=0),
        meta=MetaConfig(learning_rate=1e-3, every_n_steps=2),
        finetune=FinetuneConfig(init_preset="builtin", train_weights="language_specific_and_heads",
                                dataset="revelation_period", train_language="en"),
    )


@register("study_pretrained_finetune", expected_time="5 min")
def study_pretrained_finetune() -> StudyConfig:
    """Few-shot, not zero-shot: the built-in encoder fine-tuned on English as +LS and +Meta LS, +Meta LS's meta batches labelled.

    +Meta LS's meta loss reads labelled validation examples of every language
    (never the test split), so its target-language figures are few-shot. The
    zero-shot protocol of the paper is `study_pretrained_demo` / `study_pretrained`.
    """
    return StudyConfig(run=_finetune_run(), seeds=[0], variants=["joint_all_ls", "joint_all_meta_ls"],
                       evaluation=EvaluationConfig(retrieval_pairs=200))


def _transfer_run() -> ExperimentConfig:
    """One stage-1 run of the transfer protocol on the built-in pretrained encoder.

    ``finetune.init_preset="builtin"`` is the 4-bit multilingual-e5-small of
    `tf_metaling.models.builtin_encoder` (12 layers x 384). Adapters (r=64) in the
    top two of its 12 blocks: backward (and the meta step's second-order pass)
    stops there. MLM on single verses of 64 tokens (the stage-1 text need not be
    whole: 64 pieces hold the median verse of every language), batches of 16 of
    one language; held-out loss every 25 steps, early stop after 3 evaluations
    without a 1% improvement, best weights kept. Measured on 2 CPU cores: a plain
    step 0.4 s, a meta step about 3 times that.
    """
    return ExperimentConfig(
        task="mlm",
        model=ModelConfig(language_specific="adapter", language_specific_layers=[10, 11], adapter_dim=64,
                          dropout=0.1, attention_dropout=0.1),
        data=DataConfig(languages=["en", "ar", "tr", "ur"], sequence_length=64, packing="sentence",
                        batching="one_language", batch_size=16, max_predictions=10, eval_batch_size=32,
                        eval_batches_per_language=2, meta_examples_per_language=4, shuffle_buffer=2000),
        trainer=TrainerConfig(train_steps=200, learning_rate=1e-3, warmup_steps=20, steps_per_loop=25,
                              checkpoint_interval=200, eval_interval=25, summary_interval=25, probe_interval=0,
                              plateau_patience=3, plateau_min_delta=0.01, restore_best=True),
        meta=MetaConfig(learning_rate=1e-3),
        finetune=FinetuneConfig(init_preset="builtin", train_weights="language_specific_and_heads"),
    )


@register("study_pretrained_demo", expected_time="not measured")
def study_pretrained_demo() -> StudyConfig:
    """The demo's second part: transfer on the built-in pretrained encoder, en -> ar, tr, ur, the paper's way; 3 seeds.

    LS layers learned per language by MLM (+LS, +Meta LS) on the frozen encoder,
    an English class-balanced head, zero-shot with each language's own LS layers,
    beside the majority class, the frozen-encoder probe and the no-swap control.
    Sized for the demo's time on 2 cores: 20 stage-1 steps with a meta update every
    second step (too few to converge: its verdict says so), 300 English examples, 100
    test examples per language, no retrieval and no JointAll (a full fine-tune), which
    `study_pretrained` runs.
    ``--init_preset=DIR`` runs your keras-hub preset or Hugging Face directory.
    """
    run = _transfer_run()
    run.data.sequence_length = 48
    run.trainer.train_steps = 20
    run.trainer.warmup_steps = 2
    run.trainer.eval_interval = 5
    run.trainer.steps_per_loop = 5
    run.trainer.summary_interval = 5
    run.trainer.checkpoint_interval = 20
    run.trainer.restore_best = False
    run.meta.every_n_steps = 2  # as in the demo's first part: its time on 2 cores
    return StudyConfig(run=run, seeds=[0, 1, 2], variants=["joint_all_ls", "joint_all_meta_ls"],
                       evaluation=EvaluationConfig(retrieval=False),
                       transfer=TransferConfig(enabled=True, head_steps=30, classification_train=300,
                                               test_per_class=50))


@register("study_pretrained", expected_time="not measured")
def study_pretrained() -> StudyConfig:
    """The transfer protocol at full size: `study_small`'s 7 languages; JointAll beside +LS and +Meta LS; Turkish POS; 3 seeds.

    Stage 1: up to 80 steps per LS run (early stop at a plateau), the head 80 steps
    first; 600 English examples, 150 test examples per class and language, X -> en
    retrieval on 200 pairs; JointAll fine-tuned for up to 120 steps (English
    validation every 30); Turkish POS taggers 100 steps each.
    """
    run = _transfer_run()
    run.data.languages = list(_small_run().data.languages)
    run.trainer.train_steps = 80
    run.trainer.eval_interval = 20
    run.trainer.steps_per_loop = 20
    run.trainer.summary_interval = 20
    run.trainer.checkpoint_interval = 80
    return StudyConfig(run=run, seeds=[0, 1, 2], variants=["joint_all", "joint_all_ls", "joint_all_meta_ls"],
                       evaluation=EvaluationConfig(retrieval_pairs=200),
                       transfer=TransferConfig(enabled=True, head_steps=80, classification_train=600,
                                               test_per_class=150, finetune_steps=120, finetune_eval_interval=30,
                                               finetune_learning_rates=[3e-5], tagging_steps=100))


def _control_run() -> ExperimentConfig:
    """One run of the synthetic control.

    Two languages made from one text: ``en`` (the source) and ``lo`` (a low-resource
    derived language; the control's conditions set its share of ids, word order and
    resource). A small encoder (d=32, 2 layers) on single sentences (14 tokens, batches
    of 256): measured on 2 CPU cores, a Mono run on the toy text leaves the unigram
    plateau within 200 steps and flattens near a held-out loss of 1.42-1.45 by 1000-1400
    steps (stream packing or smaller batches stayed on the unigram plateau for 1000+
    steps). A two-language JointAll run at share 0 needs more: at 2400 steps (the earlier
    budget of 1200 per language) it still improved 2-3% over its last 20%, and a 6000-step
    run flattened only after 3200-3800 steps (best 1.434 at 3200, 1.427 at 4800). So the
    budget is 2000 steps per language (JointAll: 4000), with an early stop after 3
    evaluations (every 100 steps per language) without a 1% improvement, where the
    study's convergence rule agrees; the run ends with the weights of its best
    evaluation. Sequences of 14: the toy text's longest sentence is 12 pieces (none of
    12000 longer), so nothing is cut, and a step costs about 12% less than at 16 (the
    rows are padding beyond each sentence).
    """
    return ExperimentConfig(
        model=ModelConfig(hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=128,
                          max_sequence_length=14, adapter_dim=8, dropout=0.0, attention_dropout=0.0),
        data=DataConfig(corpus="synthetic", languages=["en", "lo"], synthetic_languages=["en", "lo:resource=0.1"],
                        synthetic_source="toy", synthetic_train_sentences=4000, vocab_size=300,
                        sequence_length=14, packing="sentence", batch_size=256, max_predictions=3,
                        meta_examples_per_language=4, eval_batches_per_language=8, eval_batch_size=64,
                        shuffle_buffer=1000),
        trainer=TrainerConfig(train_steps=2000, learning_rate=5e-3, warmup_steps=100, steps_per_loop=50,
                              checkpoint_interval=2000, eval_interval=100, summary_interval=100, probe_interval=0,
                              plateau_patience=3, plateau_min_delta=0.01, restore_best=True),
        meta=MetaConfig(learning_rate=5e-3, every_n_steps=2),
    )


@register("study_control", expected_time="21-36 min with 2 workers (machine-dependent)")
def study_control() -> StudyConfig:
    """The synthetic control: en and a derived lo with exact ground truth; shared-vocabulary and resource sweeps, 3 seeds.

    Shares 0, 0.5, 1.0 and 1.0 with reversed order at resource 1; resources 1, 0.1,
    0.01 at share 0; Mono and JointAll everywhere, +LS and +Meta LS in the base
    condition (share 0, resource 1: two languages with equal text and no shared
    ids, the case LS layers are meant for). Sized to finish within 30 minutes on
    2 CPU cores with two worker processes on one machine (21m15s); another took
    34-36 minutes.
    """
    return StudyConfig(
        run=_control_run(), seeds=[0, 1, 2], variants=["mono", "joint_all", "joint_all_ls", "joint_all_meta_ls"],
        evaluation=EvaluationConfig(retrieval_pairs=200, classification_train=1000),
        control=ControlConfig(enabled=True, shares=[0.0, 0.5, 1.0], sweep_resource=1.0, treatments_in="base"),
        workers=2,
    )


@register("study_control_surgery", expected_time="about 45 min with 2 workers (48 runs)")
def study_control_surgery() -> StudyConfig:
    """Gradient surgery where the control finds interference most clearly: resource 1/100, 6 treatments, 6 seeds.

    Mono, JointAll, +LS, and JointAll on mixed batches (the baseline of the surgery
    treatments, which need them) with +PCGrad, +GradVac and +LS+GradVac, where `lo` has
    1/100 of `en`'s text (`en`'s Mono runs come from the base condition, as in
    `study_control`). The base condition and half the ids shared are one override away:
    `--params_override="control.shares=[0.0,0.5]"`. +Meta LS, whose runs
    cost about three plain ones, is left to `study_control` (its 6-seed figures at 1/100
    are in docs/results.md); add it with `--variants`.
    """
    config = study_control()
    config.run.trainer.probe_interval = 100  # the languages' gradient cosine over training (a run's language's steps)
    config.seeds = [0, 1, 2, 3, 4, 5]
    config.variants = ["mono", "joint_all", "joint_all_ls", "joint_all_mixed",
                       "joint_all_pcgrad", "joint_all_gradvac", "joint_all_ls_gradvac"]
    config.control = ControlConfig(enabled=True, shares=[], reversed_share=None, resources=[0.01],
                                   sweep_resource=1.0, sweep_share=0.0, treatments_in="all")
    return config


@register("study_control_quick", expected_time="about 1 min")
def study_control_quick() -> StudyConfig:
    """The synthetic control in seconds per run (tests): shares 0 and 1, one seed, a 1-layer d=16 encoder."""
    config = study_control()
    run = config.run
    run.model.hidden_dim, run.model.num_layers, run.model.intermediate_dim, run.model.adapter_dim = 16, 1, 32, 4
    run.data.synthetic_train_sentences, run.data.batch_size = 200, 8
    run.data.eval_batches_per_language, run.data.eval_batch_size = 1, 16
    run.trainer.train_steps, run.trainer.eval_interval, run.trainer.warmup_steps = 6, 2, 0
    run.trainer.steps_per_loop, run.trainer.checkpoint_interval = 2, 6
    config.seeds = [0]
    config.workers = 1
    config.evaluation.retrieval_pairs, config.evaluation.classification_train = 20, 100
    config.control = ControlConfig(enabled=True, shares=[0.0, 1.0], reversed_share=None, resources=[],
                                   sweep_resource=0.1, treatments_in="all")
    return config
