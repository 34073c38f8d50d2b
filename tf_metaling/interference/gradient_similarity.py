"""Gradient conflict between languages: cosine similarities of their shared-parameter gradients.

For languages l = 1..L with held-out batches, g_l = dL_l/dtheta is the
gradient of language l's loss with respect to the shared parameters theta
(the LS parameters phi are not part of it: they never conflict). Entry (a, b)
of a similarity matrix is cos(g_a, g_b) = <g_a, g_b> / (|g_a| |g_b|): near 1
the languages pull theta the same way, near 0 they are unrelated, below 0 a
step that helps one hurts the other (the paper's negative interference).

One matrix per layer group (see `layer_groups`) and one overall (all shared
parameters as one vector). Computation: one compiled forward/backward per
language (`GroupedGradients`), the gradients flattened per group, then per
group the Gram matrix V V^T of the stacked ``[L, n_g]`` gradients in float64;
the overall Gram matrix is the sum of the groups' (the overall vector is the
concatenation of the group vectors), so nothing is flattened twice.

A language whose gradient on a group is exactly zero has no direction there:
its row and column of that group's matrix are NaN (null in JSON).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tf_metaling.interference.grouped_gradients import GroupedGradients
from tf_metaling.interference.language_batches import resolve_language_batches

OVERALL = "overall"


def _nan_to_none(values):
    array = np.asarray(values, dtype=np.float64)
    return [None if not np.isfinite(v) else float(v) for v in array.ravel()] if array.ndim <= 1 else [
        _nan_to_none(row) for row in array
    ]


def _none_to_nan(values):
    return np.array(
        [[np.nan if v is None else v for v in row] for row in values]
        if values and isinstance(values[0], list)
        else [np.nan if v is None else v for v in values],
        dtype=np.float64,
    )


def cosine_from_gram(gram: np.ndarray) -> np.ndarray:
    """Cosine similarities from a Gram matrix; NaN where a vector is zero."""
    gram = np.asarray(gram, dtype=np.float64)
    norms = np.sqrt(np.clip(np.diagonal(gram, axis1=-2, axis2=-1), 0.0, None))
    denominator = norms[..., :, None] * norms[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(denominator > 0, gram / np.where(denominator > 0, denominator, 1.0), np.nan)
    return np.clip(cosine, -1.0, 1.0)


def mean_off_diagonal(matrix: np.ndarray) -> float:
    """Mean of the entries off the diagonal, ignoring NaN (NaN if there are none)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    off = matrix[~np.eye(matrix.shape[-1], dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else float("nan")


@dataclasses.dataclass(frozen=True)
class GradientSimilarity:
    """Per-language gradient similarities of one model state.

    Attributes:
        languages: language codes, the order of rows and columns.
        groups: names of the layer groups the loss gives gradient to.
        group_sizes: parameters per group.
        by_group: ``[G, L, L]`` cosine similarities per group.
        overall: ``[L, L]`` cosine similarities of the whole shared gradient.
        gradient_norms: ``[G, L]`` gradient norms per group and language.
        overall_norms: ``[L]`` norms of the whole shared gradient.
        losses: ``[L]`` each language's loss on its batches.
        step: the training step, when known.
        seconds: wall time the computation took.
    """

    languages: tuple
    groups: tuple
    group_sizes: tuple
    by_group: np.ndarray
    overall: np.ndarray
    gradient_norms: np.ndarray
    overall_norms: np.ndarray
    losses: np.ndarray
    step: Optional[int] = None
    seconds: Optional[float] = None

    def matrix(self, group: str = OVERALL) -> np.ndarray:
        """The ``[L, L]`` matrix of `group` (``"overall"`` for the whole model)."""
        if group == OVERALL:
            return self.overall
        if group not in self.groups:
            raise KeyError(f"No layer group {group!r}; groups with gradient: {list(self.groups)}.")
        return self.by_group[self.groups.index(group)]

    def pair(self, first: str, second: str, group: str = OVERALL) -> float:
        """cos(g_first, g_second) on `group`."""
        for code in (first, second):
            if code not in self.languages:
                raise KeyError(f"Language {code!r} is not in this similarity matrix {list(self.languages)}.")
        return float(self.matrix(group)[self.languages.index(first), self.languages.index(second)])

    def mean_off_diagonal(self, group: str = OVERALL) -> float:
        return mean_off_diagonal(self.matrix(group))

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "seconds": self.seconds,
            "languages": list(self.languages),
            "groups": list(self.groups),
            "group_sizes": [int(size) for size in self.group_sizes],
            "losses": _nan_to_none(self.losses),
            "overall": _nan_to_none(self.overall),
            "overall_norms": _nan_to_none(self.overall_norms),
            "by_group": {name: _nan_to_none(m) for name, m in zip(self.groups, self.by_group)},
            "gradient_norms": {name: _nan_to_none(n) for name, n in zip(self.groups, self.gradient_norms)},
            "mean_off_diagonal": _nan_to_none(
                [self.mean_off_diagonal()] + [mean_off_diagonal(m) for m in self.by_group]
            ),
        }

    @classmethod
    def from_json(cls, record: dict, where: str = "record") -> "GradientSimilarity":
        try:
            groups = tuple(record["groups"])
            return cls(
                languages=tuple(record["languages"]),
                groups=groups,
                group_sizes=tuple(record["group_sizes"]),
                by_group=np.stack([_none_to_nan(record["by_group"][g]) for g in groups])
                if groups
                else np.zeros((0, len(record["languages"]), len(record["languages"]))),
                overall=_none_to_nan(record["overall"]),
                gradient_norms=np.stack([_none_to_nan(record["gradient_norms"][g]) for g in groups])
                if groups
                else np.zeros((0, len(record["languages"]))),
                overall_norms=_none_to_nan(record["overall_norms"]),
                losses=_none_to_nan(record["losses"]),
                step=record.get("step"),
                seconds=record.get("seconds"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: not a gradient-similarity record ({type(error).__name__}: {error}).") from error


@tf.function(autograph=False, reduce_retracing=True)
def _group_grams(vectors_by_group):
    """``[G, L, L]`` Gram matrices from, per group, a tuple of L flat vectors (float64)."""
    grams = []
    for vectors in vectors_by_group:
        stacked = tf.cast(tf.stack(vectors), tf.float64)
        grams.append(tf.matmul(stacked, stacked, transpose_b=True))
    return tf.stack(grams)


class GradientSimilarityFunction:
    """Reusable, compiled ``batches_by_language -> GradientSimilarity`` for one model.

    Call it as often as needed (the probe calls it every N training steps);
    the forward/backward is traced once per model, configuration and batch shape.

    Args:
        model: a built `MultilingualModel`.
        loss_fn: ``fn(outputs, batch) -> scalar``; default: the masked-LM loss.
        output_names: model outputs to compute (default: what the loss needs).
        training: dropout on during the measurement (default off).

    Call arguments:
        batches_by_language: ``{code or index: batch or [batches]}`` (at least
            two languages). With several batches, a language's gradient is the
            mean of its per-batch gradients.
        step: recorded in the result.
        resolved: batches already checked by `resolve_language_batches`
            (the probe checks its fixed batches once and passes them here);
            `batches_by_language` is then ignored.
    """

    def __init__(self, model, loss_fn: Optional[Callable] = None, output_names=None, training: bool = False):
        self.model = model
        self.gradients = GroupedGradients.of(model, loss_fn=loss_fn, output_names=output_names, training=training)

    def __call__(self, batches_by_language, step: Optional[int] = None, resolved=None) -> GradientSimilarity:
        start = time.perf_counter()
        resolved = resolved or resolve_language_batches(self.model.language_vocabulary, batches_by_language)
        if len(resolved) < 2:
            raise ValueError(
                f"batches_by_language: gradient similarity needs at least two languages, got "
                f"{[entry.code for entry in resolved]}."
            )
        losses, per_language = [], []
        for entry in resolved:
            total_loss, total = 0.0, None
            for batch in entry.batches:
                loss, vectors = self.gradients(batch)
                total_loss += float(loss)
                total = vectors if total is None else tuple(a + b for a, b in zip(total, vectors))
            count = len(entry.batches)
            per_language.append(total if count == 1 else tuple(v / count for v in total))
            losses.append(total_loss / count)
        by_group_vectors = tuple(tuple(vectors[g] for vectors in per_language) for g in range(len(per_language[0])))
        grams = _group_grams(by_group_vectors).numpy()
        overall_gram = grams.sum(axis=0)
        groups = self.gradients.used_group_names
        sizes = tuple(self.gradients.groups.sizes[i] for i in self.gradients.used_groups)
        return GradientSimilarity(
            languages=tuple(entry.code for entry in resolved),
            groups=groups,
            group_sizes=sizes,
            by_group=cosine_from_gram(grams),
            overall=cosine_from_gram(overall_gram),
            gradient_norms=np.sqrt(np.clip(np.diagonal(grams, axis1=1, axis2=2), 0.0, None)),
            overall_norms=np.sqrt(np.clip(np.diagonal(overall_gram), 0.0, None)),
            losses=np.asarray(losses, dtype=np.float64),
            step=None if step is None else int(step),
            seconds=time.perf_counter() - start,
        )


def gradient_similarity(
    model,
    batches_by_language,
    loss_fn: Optional[Callable] = None,
    output_names=None,
    training: bool = False,
    step: Optional[int] = None,
) -> GradientSimilarity:
    """One `GradientSimilarityFunction` call (the compiled gradient is shared per model, see `GroupedGradients.of`)."""
    function = GradientSimilarityFunction(model, loss_fn=loss_fn, output_names=output_names, training=training)
    return function(batches_by_language, step=step)
