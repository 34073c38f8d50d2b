"""A short smoke job: build a small encoder, run a mixed-language batch, print a summary.

Run with ``python -m tf_metaling.smoke`` (or ``tf-metaling-smoke``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_metaling.models import MultilingualEncoder, MultilingualModel, partition_variables  # noqa: E402


def run(argv=None):
    languages = ["en", "ar", "ru", "tr", "ur", "ml", "ny"]
    encoder = MultilingualEncoder(
        vocabulary_size=1000,
        languages=languages,
        hidden_dim=64,
        num_layers=2,
        num_heads=4,
        max_sequence_length=32,
        language_specific="adapter",
        adapter_dim=16,
    )
    model = MultilingualModel(encoder)
    rng = np.random.RandomState(0)
    batch = {
        "token_ids": tf.constant(rng.randint(5, 1000, size=(len(languages), 16)), tf.int32),
        "padding_mask": tf.ones((len(languages), 16), tf.int32),
        "language_ids": encoder.language_vocabulary.lookup(tf.constant(languages)),
        "mask_positions": tf.constant(np.tile([[1, 5, 9]], (len(languages), 1)), tf.int32),
    }
    outputs = model(batch)
    partition = partition_variables(model)
    print(f"languages: {', '.join(languages)}")
    print(f"shared parameters: {partition.num_shared_parameters:,}")
    print(f"language-specific parameters per language: {partition.num_language_parameters_per_language:,}")
    for name, value in outputs.items():
        print(f"{name:>18}: {tuple(value.shape)}")
    print("one mixed-language batch: each example ran through its own language's adapters.")


if __name__ == "__main__":
    run()
