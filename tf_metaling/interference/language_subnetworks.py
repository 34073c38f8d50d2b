"""Language-specific parameters inside the shared model: per-language sub-networks.

The paper's second finding is that a "fully shared" model still holds
parameters that matter to one language only. To find them, every shared
weight w gets an importance score for language l,

    s_l(w) = sum over l's held-out batches b of |w * dL_l(b)/dw|,

the first-order estimate of how much l's loss changes when w is removed
(as in connection-sensitivity pruning). Language l's sub-network keeps, in
every layer group, the top `keep_fraction` of that group's weights by s_l
(per group rather than over the whole model, so that large groups such as the
embeddings cannot take the whole budget and every layer has a sub-network).
Weights with zero score (embedding rows of tokens l never uses) are never
kept, so a mask may hold fewer weights than the budget; ties at the threshold
are broken by position.

For each group, and for the whole shared model, the result gives the pairwise
Jaccard overlap |M_a & M_b| / |M_a | M_b| of the languages' masks, the
overlap that random masks of the same sizes would have (the chance level),
and the share of kept weights that only one language keeps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tf_metaling.atomic_files import atomic_path
from tf_metaling.interference.grouped_gradients import GroupedGradients
from tf_metaling.interference.language_batches import resolve_language_batches

OVERALL = "overall"
DEFAULT_KEEP_FRACTION = 0.1


def _jaccard(intersections: np.ndarray, kept: np.ndarray) -> np.ndarray:
    unions = kept[:, None] + kept[None, :] - intersections
    with np.errstate(invalid="ignore", divide="ignore"):
        # Two empty masks are the same set: overlap 1.
        return np.where(unions > 0, intersections / np.where(unions > 0, unions, 1), 1.0)


@dataclasses.dataclass(frozen=True)
class LanguageSubnetworks:
    """Per-language masks of the shared weights and their overlaps.

    Attributes:
        languages: language codes (rows and columns of the matrices).
        groups: layer-group names.
        group_sizes: parameters per group.
        keep_fraction: the budget per group (0 < p <= 1).
        intersections: ``[G, L, L]`` int counts |M_a & M_b| (diagonal: |M_a|).
        kept_by_one: ``[G, L]`` weights kept by language l and by no other language.
        kept_by_any: ``[G]`` weights kept by at least one language.
        masks: per group a bool ``[L, n_g]`` array (None when read from JSON).
        variable_paths / variable_shapes: per group, its variables, in mask order.
    """

    languages: tuple
    groups: tuple
    group_sizes: tuple
    keep_fraction: float
    intersections: np.ndarray
    kept_by_one: np.ndarray
    kept_by_any: np.ndarray
    masks: Optional[tuple] = None
    variable_paths: Optional[tuple] = None
    variable_shapes: Optional[tuple] = None
    seconds: Optional[float] = None

    def _counts(self, group: str):
        if group == OVERALL:
            return self.intersections.sum(axis=0), self.kept_by_one.sum(axis=0), int(self.kept_by_any.sum())
        if group not in self.groups:
            raise KeyError(f"No layer group {group!r}; groups: {list(self.groups)}.")
        g = self.groups.index(group)
        return self.intersections[g], self.kept_by_one[g], int(self.kept_by_any[g])

    def kept(self, group: str = OVERALL) -> np.ndarray:
        """``[L]`` weights each language keeps in `group`."""
        return np.diagonal(self._counts(group)[0]).copy()

    def overlap(self, group: str = OVERALL) -> np.ndarray:
        """``[L, L]`` Jaccard overlap of the languages' masks in `group` (1 on the diagonal)."""
        intersections, _, _ = self._counts(group)
        return _jaccard(intersections.astype(np.float64), np.diagonal(intersections).astype(np.float64))

    def chance_overlap(self, group: str = OVERALL) -> np.ndarray:
        """``[L, L]`` expected Jaccard overlap of random masks of the same sizes (1 on the diagonal)."""
        if group == OVERALL:
            kept = np.diagonal(self.intersections, axis1=1, axis2=2).astype(np.float64)  # [G, L]
            sizes = np.asarray(self.group_sizes, np.float64)[:, None, None]
            expected = kept[:, :, None] * kept[:, None, :] / sizes
            unions = kept[:, :, None] + kept[:, None, :] - expected
            expected, unions = expected.sum(axis=0), unions.sum(axis=0)
        else:
            g = self.groups.index(group)
            kept = np.diagonal(self.intersections[g]).astype(np.float64)
            expected = kept[:, None] * kept[None, :] / float(self.group_sizes[g])
            unions = kept[:, None] + kept[None, :] - expected
        with np.errstate(invalid="ignore", divide="ignore"):
            chance = np.where(unions > 0, expected / np.where(unions > 0, unions, 1), 1.0)
        np.fill_diagonal(chance, 1.0)  # a mask always equals itself
        return chance

    def unique_share(self, group: str = OVERALL) -> float:
        """Of the weights some language keeps in `group`, the share that exactly one language keeps."""
        _, by_one, by_any = self._counts(group)
        return float(by_one.sum() / by_any) if by_any else float("nan")

    def unique_share_by_language(self, group: str = OVERALL) -> np.ndarray:
        """``[L]``: the share of language l's kept weights that no other language keeps."""
        intersections, by_one, _ = self._counts(group)
        kept = np.diagonal(intersections).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(kept > 0, by_one / np.where(kept > 0, kept, 1), np.nan)

    def variable_masks(self, language: str) -> dict:
        """``{variable path: bool array of the variable's shape}`` of `language`'s sub-network."""
        if self.masks is None:
            raise ValueError("These sub-networks were read from JSON and carry no masks.")
        if language not in self.languages:
            raise KeyError(f"Language {language!r} is not among {list(self.languages)}.")
        row = self.languages.index(language)
        result = {}
        for mask, paths, shapes in zip(self.masks, self.variable_paths, self.variable_shapes):
            offset = 0
            for path, shape in zip(paths, shapes):
                size = int(np.prod(shape, dtype=np.int64))
                result[path] = mask[row, offset:offset + size].reshape(shape)
                offset += size
        return result

    def save_masks(self, path: str) -> str:
        """Writes every language's masks to a ``.npz`` (keys ``<language>/<variable path>``), atomically."""
        arrays = {
            f"{code}/{name}": mask for code in self.languages for name, mask in self.variable_masks(code).items()
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(file, **arrays)
        return path

    def to_json(self) -> dict:
        def nan_free(values):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(values)]

        summary = {}
        for group in (OVERALL,) + tuple(self.groups):
            share_by_language = self.unique_share_by_language(group)
            share = self.unique_share(group)
            summary[group] = {
                "overlap": nan_free(self.overlap(group)),
                "chance_overlap": nan_free(self.chance_overlap(group)),
                "kept": [int(k) for k in self.kept(group)],
                "unique_share": None if math.isnan(share) else share,
                "unique_share_by_language": [None if np.isnan(v) else float(v) for v in share_by_language],
            }
        return {
            "languages": list(self.languages),
            "groups": list(self.groups),
            "group_sizes": [int(size) for size in self.group_sizes],
            "keep_fraction": self.keep_fraction,
            "seconds": self.seconds,
            "intersections": {g: self.intersections[i].astype(int).tolist() for i, g in enumerate(self.groups)},
            "kept_by_one": {g: self.kept_by_one[i].astype(int).tolist() for i, g in enumerate(self.groups)},
            "kept_by_any": {g: int(self.kept_by_any[i]) for i, g in enumerate(self.groups)},
            "summary": summary,
        }

    @classmethod
    def from_json(cls, record: dict, where: str = "record") -> "LanguageSubnetworks":
        try:
            groups = tuple(record["groups"])
            return cls(
                languages=tuple(record["languages"]),
                groups=groups,
                group_sizes=tuple(record["group_sizes"]),
                keep_fraction=float(record["keep_fraction"]),
                intersections=np.asarray([record["intersections"][g] for g in groups], np.int64),
                kept_by_one=np.asarray([record["kept_by_one"][g] for g in groups], np.int64),
                kept_by_any=np.asarray([record["kept_by_any"][g] for g in groups], np.int64),
                seconds=record.get("seconds"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: not a sub-network record ({type(error).__name__}: {error}).") from error


def top_fraction_mask(scores: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Bool mask of the ``ceil(keep_fraction * n)`` highest positive scores (ties: lower position first)."""
    scores = np.asarray(scores)
    count = min(scores.size, max(1, math.ceil(keep_fraction * scores.size)))
    # A stable sort on -score keeps equal scores in position order: deterministic ties.
    order = np.argsort(-scores, kind="stable")[:count]
    mask = np.zeros(scores.size, dtype=bool)
    mask[order] = True
    return mask & (scores > 0)


def importance_scores(gradients: GroupedGradients, resolved) -> list:
    """Per language, per used group: the accumulated |w * dL/dw| as a numpy vector."""
    weights = None
    scores = []
    for entry in resolved:
        total = None
        for batch in entry.batches:
            _, vectors = gradients(batch)
            if weights is None:
                weights = gradients.flat_weights()
            batch_scores = tuple(tf.abs(w * g) for w, g in zip(weights, vectors))
            total = batch_scores if total is None else tuple(a + b for a, b in zip(total, batch_scores))
        scores.append([vector.numpy() for vector in total])
    return scores


def language_subnetworks(
    model,
    batches_by_language,
    keep_fraction: float = DEFAULT_KEEP_FRACTION,
    loss_fn: Optional[Callable] = None,
    output_names=None,
    training: bool = False,
    gradients: Optional[GroupedGradients] = None,
) -> LanguageSubnetworks:
    """Finds each language's sub-network of the shared weights and measures their overlap.

    Args:
        model: a built `MultilingualModel`.
        batches_by_language: ``{code or index: batch or [batches]}`` held-out
            batches; importance accumulates over all of a language's batches.
        keep_fraction: share of each layer group's weights a sub-network keeps.
        loss_fn, output_names, training: as for `GradientSimilarityFunction`.
        gradients: an existing `GroupedGradients` of `model` to reuse.

    Returns: `LanguageSubnetworks` with masks.
    """
    if not 0.0 < float(keep_fraction) <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}.")
    start = time.perf_counter()
    resolved = resolve_language_batches(model.language_vocabulary, batches_by_language)
    gradients = gradients or GroupedGradients.of(model, loss_fn=loss_fn, output_names=output_names, training=training)
    scores = importance_scores(gradients, resolved)
    used = gradients.used_groups
    groups = gradients.groups
    masks, intersections, kept_by_one, kept_by_any = [], [], [], []
    for position in range(len(used)):
        mask = np.stack([top_fraction_mask(per_language[position], keep_fraction) for per_language in scores])
        as_float = mask.astype(np.float64)
        keepers = mask.sum(axis=0)
        masks.append(mask)
        intersections.append(np.rint(as_float @ as_float.T).astype(np.int64))
        kept_by_one.append((mask & (keepers == 1)[None, :]).sum(axis=1))
        kept_by_any.append(int((keepers >= 1).sum()))
    partition = gradients.partition
    return LanguageSubnetworks(
        languages=tuple(entry.code for entry in resolved),
        groups=gradients.used_group_names,
        group_sizes=tuple(groups.sizes[i] for i in used),
        keep_fraction=float(keep_fraction),
        intersections=np.stack(intersections),
        kept_by_one=np.stack(kept_by_one).astype(np.int64),
        kept_by_any=np.asarray(kept_by_any, np.int64),
        masks=tuple(masks),
        variable_paths=tuple(groups.variable_paths[i] for i in used),
        variable_shapes=tuple(
            tuple(tuple(int(d) for d in partition.shared[v].shape) for v in groups.members[i]) for i in used
        ),
        seconds=time.perf_counter() - start,
    )
