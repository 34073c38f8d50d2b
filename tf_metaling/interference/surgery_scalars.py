"""TensorBoard scalars of gradient surgery, named beside the interference probe's.

A run with gradient surgery (`tf_metaling.meta.gradient_surgery`) measures,
at every step, the cosines between the languages' gradients on its TRAINING
batch (before surgery), and with GradVac keeps target cosines. Per training
loop the trainer logs (under ``interference/``, where the probe's held-out
similarities are):

- ``interference/training_cosine/mean_off_diagonal`` and ``.../<a>-<b>``:
  the loop's mean cosine over all operated shared parameters, overall and for
  the probe's pairs (`default_pairs`); ``.../mean_off_diagonal/<group>`` per
  surgery group when there are several;
- GradVac: ``interference/gradvac_target/<a>-<b>`` (the mean of t_ab and t_ba
  over groups) and ``interference/gradvac_target/mean_off_diagonal/<group>``.

A language absent from a step's batch has no cosine there; means skip it, and
a scalar with no value at all in the loop is not logged.
"""

from __future__ import annotations

import warnings

import numpy as np

from tf_metaling.interference.gradient_probe import default_pairs
from tf_metaling.interference.gradient_similarity import mean_off_diagonal


def _nanmean(values, axis=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN slices: absent languages
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=axis)


def surgery_scalars(languages, group_names, cosines, overall_cosines, targets=None) -> dict:
    """``{tag: value}`` for one training loop.

    Args:
        languages: the language codes, in the model's order.
        group_names: the surgery's groups.
        cosines: ``[steps, groups, L, L]`` per-step cosines of the training gradients.
        overall_cosines: ``[steps, L, L]`` the same over all operated parameters.
        targets: GradVac's ``[groups, L, L]`` targets now, or None.
    """
    languages = list(languages)
    scalars = {}
    if len(overall_cosines):
        overall = _nanmean(overall_cosines)
        scalars["interference/training_cosine/mean_off_diagonal"] = mean_off_diagonal(overall)
        for first, second in default_pairs(languages):
            scalars[f"interference/training_cosine/{first}-{second}"] = float(
                overall[languages.index(first), languages.index(second)])
        if len(group_names) > 1:
            by_group = _nanmean(cosines)
            for name, matrix in zip(group_names, by_group):
                scalars[f"interference/training_cosine/mean_off_diagonal/{name}"] = mean_off_diagonal(matrix)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.float64)
        symmetric = (targets + np.swapaxes(targets, -1, -2)) / 2.0
        for first, second in default_pairs(languages):
            scalars[f"interference/gradvac_target/{first}-{second}"] = float(
                symmetric[:, languages.index(first), languages.index(second)].mean())
        for name, matrix in zip(group_names, targets):
            scalars[f"interference/gradvac_target/mean_off_diagonal/{name}"] = mean_off_diagonal(matrix)
    return {tag: value for tag, value in scalars.items() if np.isfinite(value)}
