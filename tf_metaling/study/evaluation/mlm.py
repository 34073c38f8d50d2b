"""Masked-LM figures of a run, per held-out sequence.

Per sequence: the summed cross-entropy of its masked tokens and how many of
them are predicted correctly, over its masked-token count; the accuracy's
baseline is always predicting the language's most frequent masked token in
training batches (`MlmInputs.accuracy_baselines`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_metaling.estimates import ratio_record
from tf_metaling.models.multilingual_model import MASKED_LM_LOGITS


def mlm_records(model, eval_batches: dict, baselines: dict) -> dict:
    """``{code: {"mlm_loss": record, "mlm_accuracy": record}}`` over held-out sequences.

    `baselines`: ``{code: accuracy of the most frequent masked token}``, the
    accuracy record's baseline. Languages the model does not know are skipped.
    """

    @tf.function(autograph=False, reduce_retracing=True)
    def score(batch):
        logits = model(batch, training=False, outputs=(MASKED_LM_LOGITS,))[MASKED_LM_LOGITS]
        weights = tf.cast(batch["mask_weights"], tf.float32)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["mask_ids"],
                                                                       logits=tf.cast(logits, tf.float32))
        predicted = tf.argmax(logits, axis=-1, output_type=batch["mask_ids"].dtype)
        correct = tf.cast(tf.equal(predicted, batch["mask_ids"]), tf.float32) * weights
        return (tf.reduce_sum(cross_entropy * weights, axis=1), tf.reduce_sum(correct, axis=1),
                tf.reduce_sum(weights, axis=1))

    records = {}
    for code, batches in eval_batches.items():
        if code not in model.language_vocabulary or not batches:
            continue
        losses, correct, weights = [], [], []
        for batch in batches:
            loss, right, weight = (t.numpy() for t in score(batch))
            losses.append(loss)
            correct.append(right)
            weights.append(weight)
        weights = np.concatenate(weights)
        records[code] = {
            "mlm_loss": ratio_record(np.concatenate(losses), weights),
            "mlm_accuracy": ratio_record(np.concatenate(correct), weights, baseline=baselines.get(code)),
        }
    return records
