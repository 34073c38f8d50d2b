"""Interference diagnostics: where languages conflict inside a multilingual model, and a report.

- `GradientSimilarityFunction` / `gradient_similarity`: cosine similarities of
  the languages' gradients on the shared parameters, per layer group and overall.
- `GradientProbe`: the same every N training steps, to TensorBoard and a
  JSON-lines log (`read_similarity_log`).
- `language_subnetworks`: per-language sub-networks of the shared weights by
  importance |w * dL/dw|, their Jaccard overlaps and one-language shares.
- `variant_deltas`: per-language change of each variant against the
  monolingual baseline.
- `write_report` / `analyze_model_dir`: the report directory (JSON, Markdown, PNG).

Layer groups are found from the model's layer objects (`layer_groups`, defined in
`tf_metaling.models.layer_groups` because gradient surgery in the training step uses
the same groups).
"""

from tf_metaling.interference.analyze import analyze_model_dir, probe_log_dir
from tf_metaling.interference.gradient_probe import DEFAULT_EVERY_N_STEPS, GradientProbe, default_pairs
from tf_metaling.interference.gradient_similarity import (
    GradientSimilarity,
    GradientSimilarityFunction,
    gradient_similarity,
)
from tf_metaling.interference.grouped_gradients import GroupedGradients, masked_lm_loss
from tf_metaling.interference.language_subnetworks import LanguageSubnetworks, language_subnetworks
from tf_metaling.interference.report import write_report
from tf_metaling.interference.similarity_log import SimilarityLog, read_similarity_log
from tf_metaling.interference.variant_deltas import VariantDeltas, variant_deltas
from tf_metaling.models.layer_groups import LayerGroups, layer_groups

__all__ = [
    "DEFAULT_EVERY_N_STEPS",
    "GradientProbe",
    "GradientSimilarity",
    "GradientSimilarityFunction",
    "GroupedGradients",
    "LanguageSubnetworks",
    "LayerGroups",
    "SimilarityLog",
    "VariantDeltas",
    "analyze_model_dir",
    "default_pairs",
    "gradient_similarity",
    "language_subnetworks",
    "layer_groups",
    "masked_lm_loss",
    "probe_log_dir",
    "read_similarity_log",
    "variant_deltas",
    "write_report",
]
