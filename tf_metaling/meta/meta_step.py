"""The ordinary step and the meta step (PAPER.md section 4), as replica functions.

Let theta be the shared parameters and phi_l language l's LS parameters (rows
l of the stacked LS variables). For a one-language train batch of language k:

1. Ordinary step: L_k(theta, phi) on the batch; Adam (the shared optimizer)
   on theta and, by default, phi (only row k receives gradient).
2. Look-ahead: g = grad_theta L_k(theta, phi) on a fresh batch of k, keeping
   the graph; theta' = theta - alpha * g (plain SGD, alpha = the shared
   optimizer's current learning rate unless set).
3. Meta loss: M = mean over languages l of L_l(theta', phi_l) on a held-out
   MIXED batch holding examples of every language, in ONE forward pass (each
   example routed to its own language's LS layers); optionally without l = k.
4. Meta update: grad_{phi_k} M, differentiating through g (second order),
   taken structurally as row k of the LS gradients, summed across replicas,
   THEN clipped; applied to row k only by the meta optimizer (a
   `RowSparseAdam`). theta is never changed by the meta loss.

First-order mode treats g as a constant, which drops the term
-alpha * (d^2 L_k / d phi_k d theta)^T grad_theta' M; what is left depends on
language k's held-out rows only, so only those are differentiated. `reuse_ordinary_gradient`
is a different, cheaper estimator: the look-ahead uses the ordinary step's own
gradient (taken at theta before its update) instead of a fresh batch's.

With a `GradientSurgery` (PCGrad or GradVac, `tf_metaling.meta.gradient_surgery`)
the ordinary step takes a mixed batch, computes each language's gradient on
its rows, sums them per language across replicas, and lets the surgery combine
the shared parameters' ones; the LS parameters and heads take their ordinary
gradient.

Both steps run inside `strategy.run`; all cross-replica sums happen here, so
several replicas give the single-device result on the same global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from tf_metaling.losses import mean_loss, per_language_mean_loss, per_language_sums
from tf_metaling.meta.fast_weights import call_with_weights
from tf_metaling.meta.gradient_surgery import GradientSurgery
from tf_metaling.meta.gradients import all_reduce_sum, apply_reduced, clip_by_global_norm
from tf_metaling.models.partition import language_count, language_slice, partition_variables


@dataclasses.dataclass(frozen=True)
class MetaOptions:
    """Options of the meta step (see `tf_metaling.configs.MetaConfig`)."""

    first_order: bool = False
    exclude_current_language: bool = False
    inner_learning_rate: Optional[float] = None  # None: the shared optimizer's current rate
    reuse_ordinary_gradient: bool = False
    clip_norm: float = 5.0
    ordinary_step_updates_language: bool = True
    # Train and look-ahead batches hold one language (the paper's setting): the model
    # then slices that language's LS weights once instead of gathering them per example.
    one_language_batches: bool = False


def _dense(gradient):
    return None if gradient is None else tf.convert_to_tensor(gradient)


def _sum_over_languages(gradients):
    """The sum of per-language gradients of one variable (row-sparse stays row-sparse; None if none)."""
    present = [g for g in gradients if g is not None]
    if not present:
        return None
    if all(isinstance(g, tf.IndexedSlices) for g in present):
        return tf.IndexedSlices(
            tf.concat([g.values for g in present], 0), tf.concat([g.indices for g in present], 0),
            present[0].dense_shape,
        )
    return tf.add_n([tf.convert_to_tensor(g) for g in present])


def _scaled(gradient, scale):
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * tf.cast(scale, gradient.values.dtype), gradient.indices,
                                gradient.dense_shape)
    return gradient * tf.cast(scale, gradient.dtype)


class MetaStep:
    """Ordinary and meta updates of a model with language-specific layers.

    Args:
        model: a built `MultilingualModel` (or any Keras model whose outputs
            `example_losses` understands).
        example_losses: ``fn(outputs, batch) -> (loss_sum [B], weight [B])``,
            e.g. `tf_metaling.losses.masked_lm_example_losses` on the
            ``masked_lm_logits`` output.
        shared_optimizer: the optimizer of the ordinary step.
        meta_optimizer: the LS parameters' optimizer for meta updates (must
            update only the rows it is given: `RowSparseAdam`); None disables
            meta updates.
        options: `MetaOptions`.
        clip_norm: global-norm clip of the ordinary step's gradient.
        output_names: the model outputs to compute (passed as ``outputs=``).
        surgery: a `GradientSurgery` (PCGrad or GradVac): the ordinary step then
            combines the languages' gradients on the shared parameters with it
            (mixed batches; not with meta updates).
    """

    def __init__(
        self,
        model,
        example_losses: Callable,
        shared_optimizer,
        meta_optimizer=None,
        options: MetaOptions = MetaOptions(),
        clip_norm: float = 5.0,
        output_names=None,
        surgery: Optional[GradientSurgery] = None,
    ):
        self.model = model
        self.partition = partition_variables(model)
        self.example_losses = example_losses
        self.shared_optimizer = shared_optimizer
        self.meta_optimizer = meta_optimizer
        self.options = options
        self.clip_norm = clip_norm
        self.output_names = output_names
        self.num_languages = language_count(model, self.partition)
        if meta_optimizer is not None and not self.partition.language:
            raise ValueError("The meta step trains language-specific parameters; this model has none.")
        self.surgery = surgery
        if surgery is not None and (meta_optimizer is not None or options.one_language_batches):
            raise ValueError("Gradient surgery combines the languages of a mixed batch: it runs without "
                             "meta updates and without one_language_batches.")

    # ------------------------------------------------------------------ pieces
    def _call_kwargs(self):
        return {} if self.output_names is None else {"outputs": self.output_names}

    def _losses(self, batch, shared_values=None, language_values=None, training=True, one_language=False):
        inputs = batch
        if one_language:
            language_ids = batch["language_ids"]
            check = tf.debugging.assert_equal(
                language_ids, language_ids[0], message="one_language_batches: a batch mixes languages"
            )
            with tf.control_dependencies([check]):
                inputs = {**batch, "language_ids": tf.identity(language_ids[0])}
        if shared_values is None and language_values is None:
            outputs = self.model(inputs, training=training, **self._call_kwargs())
        else:
            outputs = call_with_weights(
                self.model, self.partition, shared_values, language_values, inputs,
                training=training, **self._call_kwargs(),
            )
        return self.example_losses(outputs, batch)

    def _ordinary_variables(self):
        variables = list(self.partition.shared)
        if self.options.ordinary_step_updates_language:
            variables += list(self.partition.language)
        return variables

    def inner_learning_rate(self):
        if self.options.inner_learning_rate is not None:
            return tf.constant(self.options.inner_learning_rate, tf.float64)
        return tf.cast(self.shared_optimizer.learning_rate, tf.float32)

    # ------------------------------------------------------------------ steps
    def _statistics(self, loss, loss_sums, weights, batch):
        """The global loss and per-language ``(loss sum [L], weight [L])`` for logging."""
        language_loss, language_weight = per_language_sums(
            tf.stop_gradient(loss_sums), weights, batch["language_ids"], self.num_languages
        )
        loss, language_loss, language_weight = all_reduce_sum([tf.stop_gradient(loss), language_loss, language_weight])
        return {"loss": loss, "language_loss_sums": language_loss, "language_weights": language_weight}

    def ordinary_step(self, batch):
        """One optimizer step on `batch`; returns the global loss and per-language sums."""
        if self.surgery is not None:
            return self._ordinary_step_with_surgery(batch)
        variables = self._ordinary_variables()
        with tf.GradientTape() as tape:
            loss_sums, weights = self._losses(batch, one_language=self.options.one_language_batches)
            loss = mean_loss(loss_sums, weights)
        gradients = all_reduce_sum(tape.gradient(loss, variables))
        gradients, _ = clip_by_global_norm(gradients, self.clip_norm)
        apply_reduced(self.shared_optimizer, gradients, variables)
        return self._statistics(loss, loss_sums, weights, batch)

    def per_language_gradients(self, batch, variables):
        """Each language's gradient on `variables` from its rows of a mixed `batch` (this replica).

        Language l's rows run as their own forward and backward pass, with l
        given to the model as one id (its one-language path): the L passes
        together cover the batch once, as the ordinary step does, instead of L
        backward passes over all of it. Examples do not interact in the model,
        so these are exactly the per-language parts of the batch's gradient.
        The gradients are of the SUM of l's example losses (not yet divided
        by the global weight).

        Returns: ``(gradients, loss_sums [L], weights [L])``: ``gradients[l]``
        lists language l's gradient of each variable (None where it has none).
        """
        language_ids = tf.cast(batch["language_ids"], tf.int32)
        gradients, loss_sums, weights = [], [], []
        for language in range(self.num_languages):
            rows = tf.equal(language_ids, language)
            language_batch = {key: tf.boolean_mask(value, rows) for key, value in batch.items()}
            inputs = {**language_batch, "language_ids": tf.constant(language, tf.int32)}
            with tf.GradientTape() as tape:
                outputs = self.model(inputs, training=True, **self._call_kwargs())
                example_loss_sums, example_weights = self.example_losses(outputs, language_batch)
                loss_sum = tf.reduce_sum(example_loss_sums)
            gradients.append(tape.gradient(loss_sum, variables))
            loss_sums.append(tf.stop_gradient(loss_sum))
            weights.append(tf.reduce_sum(example_weights))
        return gradients, tf.stack(loss_sums), tf.stack(weights)

    def _ordinary_step_with_surgery(self, batch):
        """The ordinary step with the shared parameters' per-language gradients combined by surgery.

        Per-language gradients are summed across replicas BEFORE the surgery,
        so the update does not depend on the number of replicas. Variables the
        surgery does not operate on (LS parameters, heads) take the sum over
        languages: their ordinary gradient.
        """
        variables = self._ordinary_variables()
        per_language, loss_sums, weights = self.per_language_gradients(batch, variables)
        operated = self.surgery.operated  # indices into partition.shared = the first entries of `variables`
        stacked = [
            tf.stack([tf.zeros(variables[i].shape, variables[i].dtype) if g[i] is None
                      else tf.convert_to_tensor(g[i]) for g in per_language])
            for i in operated
        ]
        others = [v for v in range(len(variables)) if v not in set(operated)]
        summed = [_sum_over_languages([g[v] for g in per_language]) for v in others]
        reduced = all_reduce_sum(stacked + summed + [loss_sums, weights])
        stacked, summed = reduced[: len(stacked)], reduced[len(stacked): -2]
        loss_sums, weights = reduced[-2:]
        combined, cosines, overall_cosines = self.surgery.combine(
            dict(zip(operated, stacked)), step=self.shared_optimizer.iterations
        )
        combined.update(zip(others, summed))
        # The rules are scale-invariant: dividing by the global weight afterwards gives the
        # gradient of the mean loss, as in the ordinary step.
        total_weight = tf.maximum(tf.reduce_sum(weights), 1.0)
        gradients = [_scaled(combined[v], 1.0 / total_weight) for v in range(len(variables))]
        gradients, _ = clip_by_global_norm(gradients, self.clip_norm)
        apply_reduced(self.shared_optimizer, gradients, variables)
        return {
            "loss": tf.reduce_sum(loss_sums) / total_weight,
            "language_loss_sums": loss_sums,
            "language_weights": weights,
            "gradient_cosines": cosines,
            "overall_gradient_cosines": overall_cosines,
        }

    def meta_step(self, train_batch, lookahead_batch, meta_batch, language):
        """Ordinary step on `train_batch`, then the meta update of language `language`.

        Returns the `ordinary_step` statistics plus ``meta_loss`` (global).
        """
        if self.options.reuse_ordinary_gradient:
            return self._meta_step_reusing_gradient(train_batch, meta_batch, language)
        statistics = self.ordinary_step(train_batch)
        statistics["meta_loss"] = self.meta_update(lookahead_batch, meta_batch, language)
        return statistics

    def meta_update(self, lookahead_batch, meta_batch, language):
        """Steps 2-4: look-ahead on `lookahead_batch`, meta loss on `meta_batch`, update phi_k."""
        meta_loss, rows = self.meta_gradient(lookahead_batch, meta_batch, language)
        self._apply_meta_gradient(rows, language)
        return meta_loss

    def meta_gradient(self, lookahead_batch, meta_batch, language, shared=None, phi=None):
        """The meta loss and grad_{phi_k} M (one tensor per LS variable, row k), summed across replicas.

        `shared`/`phi` default to the variables' current values.
        """
        shared = [tf.convert_to_tensor(v) for v in (shared if shared is not None else self.partition.shared)]
        phi = [tf.convert_to_tensor(v) for v in (phi if phi is not None else self.partition.language)]
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(phi)
            # First order: g is a constant, so the look-ahead stays off the outer tape.
            first_order = self.options.first_order
            off_outer = outer.stop_recording if first_order else contextlib.nullcontext
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(shared)
                with off_outer():
                    lookahead = mean_loss(*self._losses(
                        lookahead_batch, shared, phi, one_language=self.options.one_language_batches
                    ))
            with off_outer():
                step = [_dense(g) for g in inner.gradient(lookahead, shared)]
            step = all_reduce_sum(step)
            looked_ahead = self._look_ahead(shared, step)
            meta_loss = self._meta_loss(
                meta_batch, looked_ahead, phi, language, own_rows_tape=outer if first_order else None
            )
        rows = self._select_language(outer.gradient(meta_loss, phi), language)
        return all_reduce_sum([meta_loss])[0], rows

    def meta_objective(self, lookahead_batch, meta_batch, language, shared, phi):
        """M(theta, phi) itself: the meta loss after a look-ahead from `shared` (for checks)."""
        shared = [tf.convert_to_tensor(v) for v in shared]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(shared)
            lookahead = mean_loss(
                *self._losses(lookahead_batch, shared, phi, one_language=self.options.one_language_batches)
            )
        step = all_reduce_sum([_dense(g) for g in tape.gradient(lookahead, shared)])
        return self._meta_loss(meta_batch, self._look_ahead(shared, step), phi, language)

    def _look_ahead(self, shared, step):
        """theta' = theta - alpha * g (plain SGD, differentiable in g)."""
        alpha = self.inner_learning_rate()
        return [theta if g is None else theta - tf.cast(alpha, theta.dtype) * g for theta, g in zip(shared, step)]

    def _meta_loss(self, meta_batch, shared_values, language_values, language, own_rows_tape=None):
        """M: the mean over languages of each language's loss on the mixed held-out batch.

        With `own_rows_tape` (first order) only language k's rows are recorded
        on that tape: with g held constant, theta' does not depend on phi_k, and
        the other languages' rows run through their own LS weights, so their
        losses do not depend on phi_k at all. The batch then runs as two batched
        passes, k's rows on the tape and the rest off it, and the backward pass
        covers k's rows only (a sixth of the batch with six languages) instead
        of differentiating zeros through every row. The value of M is the same.
        Every entry of the batch must be per example (leading batch axis), as
        the pipelines' batches are.
        """
        language_ids = meta_batch["language_ids"]
        if own_rows_tape is None:
            loss_sums, weights = self._losses(meta_batch, shared_values, language_values)
        else:
            own = tf.equal(tf.cast(language_ids, tf.int32), tf.cast(language, tf.int32))
            own_rows = {key: tf.boolean_mask(value, own) for key, value in meta_batch.items()}
            other_rows = {key: tf.boolean_mask(value, tf.logical_not(own)) for key, value in meta_batch.items()}
            own_losses, own_weights = self._losses(own_rows, shared_values, language_values)
            with own_rows_tape.stop_recording():
                other_losses, other_weights = self._losses(other_rows, shared_values, language_values)
            loss_sums = tf.concat([own_losses, other_losses], 0)
            weights = tf.concat([own_weights, other_weights], 0)
            language_ids = tf.concat([own_rows["language_ids"], other_rows["language_ids"]], 0)
        exclude = language if self.options.exclude_current_language else None
        return per_language_mean_loss(
            loss_sums, weights, language_ids, self.num_languages, exclude_language=exclude
        )

    def _select_language(self, gradients, language):
        """Row k of every LS gradient (phi_k, selected structurally), summed across replicas."""
        return all_reduce_sum(
            [tf.zeros(v.shape[1:], v.dtype) if g is None else language_slice(g, language)
             for g, v in zip(gradients, self.partition.language)]
        )

    def _apply_meta_gradient(self, rows, language):
        # Clip phi_k's own gradient (the reference clipped before selecting it).
        rows, _ = clip_by_global_norm(rows, self.options.clip_norm)
        index = tf.reshape(tf.cast(language, tf.int32), [1])
        sparse = [
            tf.IndexedSlices(row[None], index, tf.constant(v.shape.as_list(), tf.int32))
            for row, v in zip(rows, self.partition.language)
        ]
        apply_reduced(self.meta_optimizer, sparse, self.partition.language)

    def _meta_step_reusing_gradient(self, train_batch, meta_batch, language):
        """The cheaper estimator: theta' = theta_updated - alpha * g(theta_old) with g from the ordinary step."""
        shared = [tf.convert_to_tensor(v) for v in self.partition.shared]
        phi = [tf.convert_to_tensor(v) for v in self.partition.language]
        ordinary_variables = self._ordinary_variables()
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(phi)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(shared + phi)
                loss_sums, weights = self._losses(
                    train_batch, shared, phi, one_language=self.options.one_language_batches
                )
                loss = mean_loss(loss_sums, weights)
            gradients = inner.gradient(loss, shared + phi)
            if self.options.first_order:
                step = [tf.stop_gradient(_dense(g)) for g in gradients[: len(shared)]]
            else:
                step = [_dense(g) for g in gradients[: len(shared)]]
            step = all_reduce_sum(step)
            with outer.stop_recording():
                # The ordinary update, from the same gradients.
                ordinary = gradients if self.options.ordinary_step_updates_language else gradients[: len(shared)]
                reduced, _ = clip_by_global_norm(all_reduce_sum(ordinary), self.clip_norm)
                apply_reduced(self.shared_optimizer, reduced, ordinary_variables)
            updated = [tf.stop_gradient(tf.convert_to_tensor(v)) for v in self.partition.shared]
            meta_loss = self._meta_loss(meta_batch, self._look_ahead(updated, step), phi, language)
        self._apply_meta_gradient(self._select_language(outer.gradient(meta_loss, phi), language), language)
        statistics = self._statistics(loss, loss_sums, weights, train_batch)
        statistics["meta_loss"] = all_reduce_sum([meta_loss])[0]
        return statistics
