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


def global_norm(tensors):
    """`tf.linalg.global_norm` (dense tensors and `tf.IndexedSlices`), without its colocation.

    TensorFlow's puts each tensor's square sum under `colocate_with(tensor)`; while a
    function is traced, every op made there looks up its inputs' colocation attribute,
    and each missing attribute raises and catches an error. Measured on the tiny model
    (cProfile, one 2-step run): 19 of 40 s went to those errors, for a placement
    hint that a single-device step does not need and `tf.distribute` replicas set anyway.
    """
    squares = [tf.reduce_sum(tf.square(t.values if isinstance(t, tf.IndexedSlices) else t)) for t in tensors]
    return tf.sqrt(tf.add_n(squares))


def _scaled(gradient, scale):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * tf.cast(scale, gradient.dtype), gradient.indices,
                                gradient.dense_shape)
    return gradient * tf.cast(scale, gradient.dtype)


def clip_by_global_norm(gradients, clip_norm):
    """Combines repeated rows, then clips by the global norm. Returns (gradients, norm).

    The scale is `tf.clip_by_global_norm`'s: ``clip_norm / max(norm, clip_norm)``, NaN for
    every gradient when the norm is not finite.
    """
    gradients = [None if g is None else combine_rows(g) for g in gradients]
    present = [g for g in gradients if g is not None]
    if not present:
        return gradients, tf.constant(0.0)
    norm = global_norm(present)
    clipped = present
    if clip_norm and clip_norm > 0:
        limit = tf.constant(clip_norm, norm.dtype)
        scale = limit * tf.minimum(1.0 / norm, 1.0 / limit)
        scale += norm - norm  # NaN when the norm is infinite or NaN, as in TensorFlow's
        clipped = [_scaled(g, scale) for g in present]
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
