"""The registered single-run experiments (``trainers.pretrain --experiment=NAME``).

``tiny`` (tests: seconds), ``demo`` (the built-in corpus on a 2-core CPU in
minutes), ``small`` (2-core CPU; also the size the step-time benchmarks use),
``paper`` (the reference sizes, for GPU/TPU), and the runs of the studies.
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

@register("tiny")
def tiny() -> ExperimentConfig:
    """Seconds on a CPU: synthetic languages, a 2-layer d=32 encoder. For tests."""
    return ExperimentConfig(
        model=ModelConfig(hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64,
                          max_sequence_length=32, adapter_dim=8, dropout=0.0, attention_dropout=0.0),
        data=DataConfig(corpus="synthetic", languages=["en", "xx", "yy"], vocab_size=200, sequence_length=32,
                        batch_size=8, max_predictions=5, meta_examples_per_language=2,
                        eval_batches_per_language=2, eval_batch_size=8, shuffle_buffer=100),
        trainer=TrainerConfig(train_steps=20, learning_rate=1e-3, steps_per_loop=5, checkpoint_interval=10,
                              eval_interval=10, summary_interval=5),
        meta=MetaConfig(learning_rate=1e-3),
    )


@register("demo")
def demo() -> ExperimentConfig:
    """The built-in corpus on a 2-core CPU in a few minutes per variant."""
    return ExperimentConfig(
        model=ModelConfig(hidden_dim=128, num_layers=2, num_heads=4, intermediate_dim=512,
                          max_sequence_length=64, adapter_dim=32),
        data=DataConfig(vocab_size=4000, sequence_length=64, batch_size=32, max_predictions=10,
                        eval_batches_per_language=4),
        trainer=TrainerConfig(train_steps=300, learning_rate=5e-4, warmup_steps=30, steps_per_loop=50,
                              checkpoint_interval=100, eval_interval=300),
        meta=MetaConfig(learning_rate=5e-4),
    )


@register("small")
def small() -> ExperimentConfig:
    """A small encoder (d=256, 4 layers, seq 128, batch 32) for a 2-core CPU."""
    return ExperimentConfig(
        trainer=TrainerConfig(train_steps=2000, learning_rate=3e-4, warmup_steps=100),
        meta=MetaConfig(learning_rate=3e-4),
    )


@register("paper")
def paper() -> ExperimentConfig:
    """The reference sizes (d=512, 4 layers, 8 heads, 32 x 256 tokens, Adam 1e-4, clip 5)."""
    return ExperimentConfig(
        model=ModelConfig(hidden_dim=512, num_layers=4, num_heads=8, intermediate_dim=2048,
                          max_sequence_length=256, adapter_dim=128),
        data=DataConfig(vocab_size=30000, sequence_length=256, batch_size=32, max_predictions=40),
        trainer=TrainerConfig(train_steps=200000, learning_rate=1e-4, warmup_steps=4000,
                              steps_per_loop=500, checkpoint_interval=5000, eval_interval=5000,
                              summary_interval=500),
        meta=MetaConfig(learning_rate=1e-4),
    )


@register("zero_shot_classification")
def zero_shot_classification() -> ExperimentConfig:
    """Fine-tune a pretrained model_dir on English Meccan/Medinan verse classes; test all languages.

    Set ``finetune.init_model_dir`` to the pretrained run (e.g. one of `demo`).
    """
    config = demo()
    config.task = "sentence_classification"
    config.finetune = FinetuneConfig(dataset="revelation_period", train_language="en")
    config.trainer = TrainerConfig(train_steps=200, learning_rate=1e-4, steps_per_loop=50,
                                   checkpoint_interval=100, eval_interval=200, summary_interval=50)
    return config
