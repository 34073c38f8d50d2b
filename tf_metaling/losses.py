"""Per-example losses of the tasks, and their replica-aware normalisation.

Every task gives, per example, a loss sum and a weight (the number of
predictions it holds: masked tokens, tagged words, or 1 for a sentence). The
training loss is ``sum(loss) / sum(weight)`` over the GLOBAL batch: under
`tf.distribute` each replica divides its own sum by the all-reduced weight,
so the all-reduced gradients equal a single device's on the same global batch.

`per_language_mean_loss` gives the meta loss: the mean over languages of each
language's own mean loss, M = (1/|L|) sum_l L_l, optionally without language
k, computed from ONE mixed-language batch with segment sums.
"""

from __future__ import annotations

import tensorflow as tf


def _cross_replica_sum(value):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _full_precision(logits):
    """Losses in float32 under mixed precision; float64 stays float64 (derivative checks)."""
    return tf.cast(logits, tf.float32) if logits.dtype in (tf.float16, tf.bfloat16) else logits


def masked_lm_example_losses(logits, batch):
    """``(loss_sum [B], weight [B])`` of the masked-LM cross-entropy at masked positions."""
    logits = _full_precision(logits)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["mask_ids"], logits=logits)
    weights = batch.get("mask_weights")
    weights = tf.ones_like(cross_entropy) if weights is None else tf.cast(weights, cross_entropy.dtype)
    return tf.reduce_sum(cross_entropy * weights, axis=1), tf.reduce_sum(weights, axis=1)


def token_classification_example_losses(logits, batch):
    """Tagging: cross-entropy on labelled subwords (``label_weights`` 1 on a word's first subword)."""
    logits = _full_precision(logits)
    labels = tf.maximum(tf.cast(batch["labels"], tf.int32), 0)  # ignored positions may hold -100
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    weights = tf.cast(batch["label_weights"], cross_entropy.dtype)
    return tf.reduce_sum(cross_entropy * weights, axis=1), tf.reduce_sum(weights, axis=1)


def sentence_classification_example_losses(logits, batch):
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(batch["labels"], tf.int32), logits=_full_precision(logits)
    )
    return cross_entropy, tf.ones_like(cross_entropy)


def mean_loss(loss_sums, weights):
    """``sum(loss_sums) / sum(weights)`` over the global batch (this replica's share)."""
    total_weight = tf.stop_gradient(_cross_replica_sum(tf.reduce_sum(weights)))
    return tf.reduce_sum(loss_sums) / tf.maximum(total_weight, tf.cast(1.0, total_weight.dtype))


def per_language_sums(loss_sums, weights, language_ids, num_languages):
    """``(loss [L], weight [L])`` sums per language over this replica's examples."""
    language_ids = tf.cast(language_ids, tf.int32)
    return (
        tf.math.unsorted_segment_sum(loss_sums, language_ids, num_languages),
        tf.math.unsorted_segment_sum(weights, language_ids, num_languages),
    )


def per_language_mean_loss(loss_sums, weights, language_ids, num_languages, exclude_language=None):
    """Mean over languages of each language's mean loss (the meta loss), this replica's share.

    Languages with no predictions in the global batch, and `exclude_language`
    if given, do not count.
    """
    language_loss, language_weight = per_language_sums(loss_sums, weights, language_ids, num_languages)
    total_weight = tf.stop_gradient(_cross_replica_sum(language_weight))
    present = total_weight > 0
    if exclude_language is not None:
        present = tf.logical_and(present, tf.not_equal(tf.range(num_languages), tf.cast(exclude_language, tf.int32)))
    present = tf.cast(present, language_loss.dtype)
    one = tf.cast(1.0, language_loss.dtype)
    per_language = language_loss / tf.maximum(total_weight, one)
    return tf.reduce_sum(per_language * present) / tf.maximum(tf.reduce_sum(present), one)
