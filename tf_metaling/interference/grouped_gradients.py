"""The gradient of the shared parameters on one batch, flattened per layer group.

Both diagnostics need, for a batch of one language, dL/dtheta of every
shared variable theta, as one flat vector per layer group: the gradient
similarity takes dot products between languages' vectors, the sub-network
search scores weights by |theta * dL/dtheta|. `GroupedGradients` compiles
that computation once (a `tf.function` that retraces only on new batch
shapes) and reuses it for every language and every call.

Groups that receive no gradient from the loss (for example a tagging head
under the masked-LM loss) are left out; `used_groups` names the rest after
the first call.

`GroupedGradients.of(model, ...)` returns one shared instance per model and
configuration, so that probes, one-off measurements and the sub-network
search on the same model trace the model once.
"""

from __future__ import annotations

import weakref
from typing import Callable, Optional

import tensorflow as tf

from tf_metaling.models.layer_groups import LayerGroups, layer_groups
from tf_metaling.losses import masked_lm_example_losses
from tf_metaling.meta.fast_weights import call_with_weights
from tf_metaling.models.partition import partition_variables

MASKED_LM_LOGITS = "masked_lm_logits"


def masked_lm_loss(outputs, batch):
    """Mean masked-LM cross-entropy over a batch's predictions (``mask_weights`` honoured).

    The same per-prediction loss the trainers minimise
    (`tf_metaling.losses.masked_lm_example_losses`), averaged over the batch's
    real predictions.
    """
    if "mask_ids" not in batch:
        raise KeyError(f"The masked-LM loss needs 'mask_ids' in the batch (keys: {sorted(batch)}).")
    loss_sums, weights = masked_lm_example_losses(outputs[MASKED_LM_LOGITS], batch)
    return tf.reduce_sum(loss_sums) / tf.maximum(tf.reduce_sum(weights), tf.cast(1.0, weights.dtype))


class GroupedGradients:
    """Compiled ``batch -> (loss, flat gradient of each used layer group)``.

    Args:
        model: a built `MultilingualModel` (or encoder, with a matching `loss_fn`).
        loss_fn: ``fn(outputs, batch) -> scalar``; default `masked_lm_loss`.
        output_names: model outputs to compute (``outputs=`` of the call);
            default ``("masked_lm_logits",)`` with the default loss, else all.
        training: run the model in training mode (dropout on). Off by default:
            diagnostics should not depend on dropout noise.
        partition, groups: reuse an existing partition / grouping.
    """

    def __init__(
        self,
        model,
        loss_fn: Optional[Callable] = None,
        output_names=None,
        training: bool = False,
        partition=None,
        groups: Optional[LayerGroups] = None,
    ):
        # A weak reference: the per-model cache (`of`) must not keep its key alive.
        self._model = weakref.ref(model)
        self.partition = partition or partition_variables(model)
        self.groups = groups or layer_groups(model, self.partition)
        self.loss_fn = loss_fn or masked_lm_loss
        if output_names is None and loss_fn is None and MASKED_LM_LOGITS in getattr(model, "output_names_available", ()):
            output_names = (MASKED_LM_LOGITS,)
        self.output_names = tuple(output_names) if output_names else None
        self.training = bool(training)
        self._used = None
        self._gradients = tf.function(self._gradients_of_batch, autograph=False, reduce_retracing=True)

    @property
    def model(self):
        model = self._model()
        if model is None:
            raise RuntimeError("GroupedGradients: its model no longer exists.")
        return model

    @property
    def used_groups(self) -> tuple:
        """Indices (into ``groups.names``) of the groups the loss gives gradient to."""
        if self._used is None:
            raise RuntimeError("used_groups is known after the first call.")
        return self._used

    @property
    def used_group_names(self) -> tuple:
        return tuple(self.groups.names[i] for i in self.used_groups)

    def _gradients_of_batch(self, batch):
        shared = list(self.partition.shared)
        # Differentiate with respect to the weights' VALUES, run through a stateless call:
        # this works outside and inside a tf.distribute strategy's scope alike (a mirrored
        # variable has no handle to watch in the cross-replica context), and leaves the
        # model's state (dropout seeds) untouched.
        shared_values = [tf.convert_to_tensor(variable.value) for variable in shared]
        kwargs = {"outputs": self.output_names} if self.output_names else {}
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(shared_values)
            outputs = call_with_weights(
                self.model, self.partition, shared_values, None, batch,
                training=self.training, update_state=False, **kwargs,
            )
            loss = self.loss_fn(outputs, batch)
        gradients = tape.gradient(loss, shared_values)
        used, flat = [], []
        for group_index, members in enumerate(self.groups.members):
            if all(gradients[i] is None for i in members):
                continue
            used.append(group_index)
            parts = []
            for i in members:
                gradient = gradients[i]
                if gradient is None:
                    parts.append(tf.zeros([tf.size(shared[i])], shared[i].dtype))
                else:
                    # Embedding gathers give IndexedSlices; a dense vector is what dot products need.
                    parts.append(tf.reshape(tf.convert_to_tensor(gradient), [-1]))
            flat.append(tf.concat(parts, axis=0))
        if not used:
            raise ValueError(f"The loss gives no gradient to any shared variable of {self.model.name!r}.")
        self._used = tuple(used)
        return loss, tuple(flat)

    @classmethod
    def of(cls, model, loss_fn: Optional[Callable] = None, output_names=None, training: bool = False):
        """The shared instance for `model` and this configuration (created on first use)."""
        key = (loss_fn, tuple(output_names) if output_names else None, bool(training))
        per_model = _INSTANCES.setdefault(model, {})
        if key not in per_model:
            per_model[key] = cls(model, loss_fn=loss_fn, output_names=output_names, training=training)
        return per_model[key]

    def __call__(self, batch):
        """``(loss, (flat gradient of used group 0, ...))`` for one batch."""
        return self._gradients(batch)

    def flat_weights(self) -> tuple:
        """The current shared weights, flattened per used group (same layout as the gradients)."""
        shared = self.partition.shared
        return tuple(
            tf.concat([tf.reshape(tf.convert_to_tensor(shared[i].value), [-1]) for i in self.groups.members[g]], 0)
            for g in self.used_groups
        )


# Weak keys: a cached instance lives only as long as its model.
_INSTANCES = weakref.WeakKeyDictionary()
