"""Gradient plumbing shared by the ordinary and the meta step.

Order matters for exactness under `tf.distribute`: gradients are first summed
across replicas, then clipped by their global norm, then applied. Keras's
optimizers clip per replica before their own all-reduce, which under several
replicas is not the single-device result; `apply_reduced` therefore hands
Keras already-reduced gradients divided by the replica count (its all-reduce
sums them back).

Sparse gradients (`tf.IndexedSlices`, from embedding and language-routing
gathers) are first combined so that each row appears once: the global norm of
the combined slices is the norm of the dense gradient, which a plain
`tf.clip_by_global_norm` over repeated rows would get wrong.
"""

from __future__ import annotations

import tensorflow as tf


def combine_rows(gradient):
    """`tf.IndexedSlices` with each index once (values of repeated indices summed)."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, positions = tf.unique(tf.cast(gradient.indices, tf.int32))
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


def num_replicas() -> int:
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def all_reduce_sum(gradients):
    """Sums gradients (dense or IndexedSlices; None kept) across replicas."""
    if num_replicas() == 1:
        return list(gradients)
    present = [g for g in gradients if g is not None]
    reduced = iter(tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(reduced) for g in gradients]


def clip_by_global_norm(gradients, clip_norm):
    """Combines repeated rows, then clips by the global norm. Returns (gradients, norm)."""
    gradients = [None if g is None else combine_rows(g) for g in gradients]
    present = [g for g in gradients if g is not None]
    if not present:
        return gradients, tf.constant(0.0)
    if clip_norm and clip_norm > 0:
        clipped, norm = tf.clip_by_global_norm(present, clip_norm)
    else:
        clipped, norm = present, tf.linalg.global_norm(present)
    clipped = iter(clipped)
    return [None if g is None else next(clipped) for g in gradients], norm


def apply_reduced(optimizer, gradients, variables):
    """Applies gradients that are already summed across replicas (see module docstring)."""
    replicas = num_replicas()
    pairs = []
    for gradient, variable in zip(gradients, variables):
        if gradient is None:
            continue
        if replicas > 1:
            if isinstance(gradient, tf.IndexedSlices):
                gradient = tf.IndexedSlices(gradient.values / replicas, gradient.indices, gradient.dense_shape)
            else:
                gradient = gradient / replicas
        pairs.append((gradient, variable))
    optimizer.apply_gradients(pairs)
