"""Temperature sampling across languages.

Multilingual pretraining draws language l with probability
q_l = n_l^alpha / sum_k n_k^alpha, where n_l is the size of language l
(sentences or tokens). alpha = 1 samples proportionally to size, alpha = 0
uniformly; XLM used 0.5 and XLM-R 0.3 to up-sample low-resource languages
without repeating them endlessly. The data pipelines sample languages with
it, and the WordPiece vocabulary is learned on counts balanced the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT_ALPHA = 0.5


def language_sampling_probabilities(
    sizes: Mapping[str, float], alpha: float = DEFAULT_ALPHA
) -> dict[str, float]:
    """q_l ∝ n_l^alpha for every language in `sizes` (in the same order).

    Raises ValueError for an empty mapping, a negative alpha, or a size that is
    not a positive number (an empty language cannot be sampled).
    """
    if not sizes:
        raise ValueError("Language sampling needs at least one language size.")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha={alpha}: expected a finite number >= 0.")
    bad = {lang: n for lang, n in sizes.items() if not (np.isfinite(n) and n > 0)}
    if bad:
        raise ValueError(
            f"Language sizes must be positive numbers; got {bad}. An empty language "
            "cannot be sampled: remove it or give it data."
        )
    languages = list(sizes)
    counts = np.asarray([float(sizes[lang]) for lang in languages])
    # Work in log space: n^alpha overflows nothing, but keeps tiny alphas exact.
    logits = alpha * np.log(counts)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return {lang: float(w) for lang, w in zip(languages, weights)}
