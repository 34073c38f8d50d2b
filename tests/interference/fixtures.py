"""Per-language batches and hand-computed gradients for the interference tests."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.helpers import LANGUAGES, mlm_loss, random_batch
from tf_metaling.models import partition_variables


def language_batch(index, seed, batch=4):
    """A batch whose examples are all of language `index` (per-example ``[B]`` ids)."""
    return random_batch(batch=batch, language_ids=[index] * batch, seed=seed)


def batches_by_language(languages=LANGUAGES, seed=10):
    return {code: language_batch(i, seed + i) for i, code in enumerate(languages)}


def hand_gradient(model, batches):
    """The mean over `batches` of dL/dtheta (numpy, one array per shared variable), eager tape."""
    shared = list(partition_variables(model).shared)
    total = None
    for batch in batches:
        with tf.GradientTape() as tape:
            loss = mlm_loss(model(batch, training=False), batch)
        gradients = [
            np.zeros(v.shape) if g is None else np.asarray(tf.convert_to_tensor(g), np.float64)
            for v, g in zip(shared, tape.gradient(loss, shared))
        ]
        total = gradients if total is None else [a + b for a, b in zip(total, gradients)]
    return [g / len(batches) for g in total]


def hand_cosine(first, second):
    a = np.concatenate([g.ravel() for g in first])
    b = np.concatenate([g.ravel() for g in second])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
