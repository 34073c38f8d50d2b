"""Gradient surgery between languages: PCGrad and GradVac (PAPER.md section 6).

Each language i has its own gradient g_i on the shared parameters (its share
of the global batch's gradient, so that the g_i sum to the ordinary gradient).
Surgery changes each g_i by multiples of the other languages' ORIGINAL
gradients, visited in a random order, and returns the sum of the new g_i':

- PCGrad (Yu et al., 2020): when g_i' . g_j < 0, g_i' <- g_i' - (g_i' . g_j / |g_j|^2) g_j.
- GradVac (Wang et al., 2021): per ordered pair (i, j) a target t_ij, an
  exponential moving average of the observed cosine phi_ij = cos(g_i', g_j) (rate beta,
  starting at 0); when phi_ij < t_ij,
  g_i' <- g_i' + g_j |g_i'| (t_ij sqrt(1 - phi_ij^2) - phi_ij sqrt(1 - t_ij^2)) / (|g_j| sqrt(1 - t_ij^2)),
  which makes cos(g_i', g_j) exactly t_ij; then t_ij <- (1 - beta) t_ij + beta phi_ij
  (the cosine observed before the change, as in the paper's algorithm).

Every g_i' stays a linear combination of the original gradients,
g_i' = sum_m C[i, m] g_m, and each quantity the rules need is a function of
the L x L Gram matrix of the g_m: g_i' . g_j = (C G)[i, j] and
|g_i'|^2 = (C G C^T)[i, i]. So the surgery runs on Gram matrices
(`pcgrad_coefficients`, `gradvac_coefficients`, batched over layer groups),
and the update touches the large gradients twice: once for the Gram matrix,
once for the weighted sum sum_m w_m g_m with w_m = sum_i C[i, m]. Both rules
are invariant to rescaling all gradients together, so they may be given
unnormalised loss sums. A language with a zero gradient (absent from the
batch) is left alone and changes no one.

`GradientSurgery` applies a method to a model's shared parameters, whole
(granularity ``"model"``) or per layer group (``"layer_group"``, the groups of
`tf_metaling.models.layer_groups`, the ones the interference probe measures);
task heads are left out (they take their ordinary gradient), as are the
language-specific parameters. It owns GradVac's targets, ``[groups, L, L]``,
a training state to checkpoint with the model.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from tf_metaling.models.layer_groups import HEAD_ATTRIBUTES, layer_groups
from tf_metaling.models.partition import language_count, partition_variables

METHODS = ("none", "pcgrad", "gradvac")
GRANULARITIES = ("model", "layer_group")
MODEL_GROUP = "shared"  # the one group of granularity "model"
# GradVac divides by sqrt(1 - t^2): targets are kept this far below 1.
_MAX_TARGET = 1.0 - 1e-6


@dataclasses.dataclass(frozen=True)
class SurgeryOptions:
    """How the languages' gradients are combined (see `tf_metaling.configs.SurgeryConfig`).

    Attributes:
        method: ``"none"``, ``"pcgrad"`` or ``"gradvac"``.
        granularity: ``"model"`` (all shared parameters as one vector) or
            ``"layer_group"`` (each layer group on its own).
        beta: GradVac's EMA rate of the targets.
        seed: the seed of the visiting orders (drawn per step from ``(seed, step)``).
    """

    method: str = "none"
    granularity: str = "layer_group"
    beta: float = 1e-2
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"SurgeryOptions.method={self.method!r}: expected one of {METHODS}.")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"SurgeryOptions.granularity={self.granularity!r}: expected one of {GRANULARITIES}.")
        if not 0.0 < self.beta <= 1.0:
            raise ValueError(f"SurgeryOptions.beta={self.beta}: expected a rate in (0, 1].")


def visiting_orders(num_languages: int, seed, step) -> tf.Tensor:
    """``[L, L - 1]`` int32: row i is a random order of the languages other than i.

    A function of ``(seed, step)`` only (stateless random numbers), so every
    replica draws the same orders and a resumed run redraws the ones it had.
    """
    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    keys = tf.random.stateless_uniform([num_languages, num_languages], seed=seed_pair)
    own = tf.eye(num_languages, dtype=tf.bool)
    keys = tf.where(own, tf.constant(2.0, keys.dtype), keys)  # i itself sorts last
    return tf.argsort(keys, axis=-1, stable=True)[:, : num_languages - 1]


def _visit(coefficients, gram, orders, position):
    """For every i (and group): j_i, g_i'.g_j, |g_i'| and |g_j| at step `position` of the orders."""
    num_languages = gram.shape[-1]
    partner = orders[:, position]  # [L]
    partner_one_hot = tf.one_hot(partner, num_languages, dtype=gram.dtype)  # [L, L]
    projections = tf.matmul(coefficients, gram)  # [.., L, L]: (i, m) -> g_i' . g_m
    dot = tf.reduce_sum(projections * partner_one_hot, axis=-1)  # g_i' . g_j
    norm = tf.sqrt(tf.maximum(tf.reduce_sum(coefficients * projections, axis=-1), 0.0))  # |g_i'|
    squared_norms = tf.linalg.diag_part(gram)[..., None, :]
    partner_norm = tf.sqrt(tf.maximum(tf.reduce_sum(squared_norms * partner_one_hot, axis=-1), 0.0))
    return partner_one_hot, dot, norm, partner_norm


def _as_float64(gram):
    gram = tf.cast(gram, tf.float64)
    return gram, tf.eye(gram.shape[-1], batch_shape=gram.shape[:-2].as_list(), dtype=tf.float64)


def pcgrad_coefficients(gram, orders):
    """PCGrad in coefficient space: ``C [.., L, L]`` with g_i' = sum_m C[i, m] g_m.

    Args:
        gram: ``[.., L, L]`` Gram matrices G[a, b] = g_a . g_b (a leading axis per group).
        orders: ``[L, L - 1]`` visiting orders (`visiting_orders`).
    """
    gram, coefficients = _as_float64(gram)
    for position in range(gram.shape[-1] - 1):
        partner, dot, _, partner_norm = _visit(coefficients, gram, orders, position)
        conflict = tf.logical_and(dot < 0.0, partner_norm > 0.0)
        factor = tf.where(conflict, -dot / tf.where(conflict, tf.square(partner_norm), 1.0), 0.0)
        coefficients += factor[..., None] * partner
    return coefficients


def gradvac_coefficients(gram, targets, beta, orders):
    """GradVac in coefficient space.

    Args:
        gram: ``[.., L, L]`` Gram matrices.
        targets: ``[.., L, L]`` the targets t_ij before this step.
        beta: the EMA rate.
        orders: ``[L, L - 1]`` visiting orders.

    Returns: ``(C, new targets, observed)``: C as in `pcgrad_coefficients`; the
    targets after the EMA update (unchanged where a cosine is undefined); the
    cosines phi_ij observed (NaN where undefined, and on the diagonal).
    """
    gram, coefficients = _as_float64(gram)
    targets = tf.cast(targets, tf.float64)
    new_targets = targets
    observed = tf.fill(tf.shape(gram), tf.constant(math.nan, tf.float64))
    for position in range(gram.shape[-1] - 1):
        partner, dot, norm, partner_norm = _visit(coefficients, gram, orders, position)
        defined = tf.logical_and(norm > 0.0, partner_norm > 0.0)
        phi = tf.clip_by_value(dot / tf.where(defined, norm * partner_norm, 1.0), -1.0, 1.0)
        target = tf.minimum(tf.reduce_sum(targets * partner, axis=-1), _MAX_TARGET)
        below = tf.logical_and(defined, phi < target)
        root_target = tf.sqrt(1.0 - tf.square(target))
        factor = norm * (target * tf.sqrt(1.0 - tf.square(phi)) - phi * root_target) / (
            tf.where(below, partner_norm, 1.0) * root_target
        )
        coefficients += tf.where(below, factor, 0.0)[..., None] * partner
        visited = tf.logical_and(defined[..., None], partner > 0)
        moved = (1.0 - beta) * targets + beta * phi[..., None]
        new_targets = tf.where(visited, moved, new_targets)
        observed = tf.where(visited, tf.broadcast_to(phi[..., None], tf.shape(observed)), observed)
    return coefficients, new_targets, observed


def language_weights(coefficients):
    """``w [.., L]``: the combined gradient sum_i g_i' is sum_m w_m g_m."""
    return tf.reduce_sum(coefficients, axis=-2)


def gram_matrix(stacked):
    """``[L, L]`` Gram matrix of per-language gradients stacked ``[L, ...]``."""
    flat = tf.reshape(stacked, [stacked.shape[0], -1])
    return tf.matmul(flat, flat, transpose_b=True)


def cosine_matrix(gram):
    """Cosines from Gram matrices ``[.., L, L]``; NaN where a gradient is zero."""
    gram = tf.cast(gram, tf.float64)
    norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
    denominator = norms[..., :, None] * norms[..., None, :]
    defined = denominator > 0
    cosine = tf.clip_by_value(gram / tf.where(defined, denominator, 1.0), -1.0, 1.0)
    return tf.where(defined, cosine, tf.constant(math.nan, tf.float64))


def pcgrad(gradients, orders):
    """PCGrad of per-language gradient vectors ``[L, n]``: the combined ``[n]``."""
    weights = language_weights(pcgrad_coefficients(gram_matrix(gradients), orders))
    return tf.tensordot(tf.cast(weights, gradients.dtype), gradients, axes=1)


def gradvac(gradients, targets, beta, orders):
    """GradVac of per-language gradient vectors ``[L, n]``: ``(combined [n], new targets [L, L])``."""
    coefficients, new_targets, _ = gradvac_coefficients(gram_matrix(gradients), targets, beta, orders)
    weights = tf.cast(language_weights(coefficients), gradients.dtype)
    return tf.tensordot(weights, gradients, axes=1), new_targets


class GradientSurgery(tf.Module):
    """PCGrad or GradVac on a model's shared parameters (not its heads), whole or per layer group.

    Create it under the training strategy's scope (GradVac's targets are a
    variable) and checkpoint it with the model.

    Args:
        model: the built `MultilingualModel`.
        options: `SurgeryOptions` (method not ``"none"``).
        partition / groups: the model's `partition_variables` / `layer_groups`, if made.

    Attributes:
        group_names: the surgery's groups (``("shared",)`` for granularity "model").
        group_members: for each group, indices into ``partition.shared``.
        operated: every index of ``partition.shared`` the surgery changes, sorted.
        targets: GradVac's ``[groups, L, L]`` float32 targets (None for PCGrad).
    """

    def __init__(self, model, options: SurgeryOptions, partition=None, groups=None):
        super().__init__(name="gradient_surgery")
        if options.method == "none":
            raise ValueError("GradientSurgery: options.method is 'none'; use no surgery instead.")
        self.options = options
        partition = partition or partition_variables(model)
        groups = groups or layer_groups(model, partition)
        self.num_languages = language_count(model, partition)
        if self.num_languages < 2:
            raise ValueError(f"GradientSurgery: {options.method} needs at least two languages; "
                             f"{model.name!r} has {self.num_languages}.")
        body = [(name, members) for name, members in zip(groups.names, groups.members)
                if name not in HEAD_ATTRIBUTES]
        if not body:
            raise ValueError(f"GradientSurgery: {model.name!r} has no shared parameters outside its heads.")
        if options.granularity == "model":
            body = [(MODEL_GROUP, tuple(sorted(i for _, members in body for i in members)))]
        self.group_names = tuple(name for name, _ in body)
        self.group_members = tuple(members for _, members in body)
        self.operated = tuple(sorted(i for members in self.group_members for i in members))
        self.targets = None
        if options.method == "gradvac":
            # Every replica computes the same targets; the first replica's are kept.
            self.targets = tf.Variable(
                tf.zeros([len(self.group_names), self.num_languages, self.num_languages]),
                trainable=False, name="gradvac_targets",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )

    def combine(self, stacked: dict, step):
        """Combines per-language gradients of the operated variables.

        Args:
            stacked: ``{index into partition.shared: [L, ...] dense per-language gradients}``
                for every index of `operated`, already summed across replicas.
            step: the training step (seeds the visiting orders).

        Returns: ``(combined {index: gradient}, cosines [groups, L, L], overall cosines [L, L])``:
        the combined gradient of each operated variable, and the cosines of the
        original gradients per group and over all operated parameters.
        """
        grams = tf.stack([tf.add_n([gram_matrix(stacked[i]) for i in members])
                          for members in self.group_members])
        orders = visiting_orders(self.num_languages, self.options.seed, step)
        if self.options.method == "pcgrad":
            coefficients = pcgrad_coefficients(grams, orders)
        else:
            coefficients, new_targets, _ = gradvac_coefficients(
                grams, self.targets, self.options.beta, orders)
            self.targets.assign(tf.cast(new_targets, self.targets.dtype))
        weights = language_weights(coefficients)  # [groups, L]
        combined = {}
        for group, members in enumerate(self.group_members):
            for i in members:
                combined[i] = tf.tensordot(tf.cast(weights[group], stacked[i].dtype), stacked[i], axes=1)
        overall = cosine_matrix(tf.reduce_sum(tf.cast(grams, tf.float64), axis=0))
        return combined, cosine_matrix(grams), overall
