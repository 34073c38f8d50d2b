"""Offline analysis of a trained model directory: restore, measure, write the report.

`analyze_model_dir` restores the model of a `model_dir` (see
`tf_metaling.checkpoints`), computes the gradient similarities and the
language sub-networks on the held-out batches given, picks up the training
probe's log when the run kept one (``model_dir/interference/``), and writes
the report directory. Batches come from the caller (the trainers' data
pipeline), so this module needs no data code.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from tf_metaling.checkpoints import latest_checkpoint, restore_model
from tf_metaling.interference.gradient_similarity import GradientSimilarityFunction
from tf_metaling.interference.language_subnetworks import DEFAULT_KEEP_FRACTION, language_subnetworks
from tf_metaling.interference.report import write_report
from tf_metaling.interference.similarity_log import LOG_FILE_NAME

# Where trainers put the probe's files inside a model_dir.
PROBE_SUBDIRECTORY = "interference"


def probe_log_dir(model_dir: str) -> str:
    """The directory a trainer should give `GradientProbe` as ``log_dir``."""
    return os.path.join(model_dir, PROBE_SUBDIRECTORY)


def analyze_model_dir(
    model_dir: str,
    batches_by_language,
    output_dir: str,
    checkpoint_path: Optional[str] = None,
    keep_fraction: float = DEFAULT_KEEP_FRACTION,
    loss_fn: Optional[Callable] = None,
    output_names=None,
    similarity_log: Optional[str] = None,
    results=None,
    baseline: str = "mono",
    metric: str = "perplexity",
    lower_is_better: bool = True,
    high_resource=(),
    low_resource=(),
    pairs=None,
    title: Optional[str] = None,
) -> dict:
    """Restores `model_dir`'s model and writes its interference report to `output_dir`.

    Args:
        model_dir: a trainer's model directory (``model.json`` + checkpoints).
        batches_by_language: ``{code: batch or [batches]}`` held-out batches;
            the similarities use the mean gradient over a language's batches,
            the sub-networks accumulate importance over them.
        output_dir: the report directory (replaced whole).
        checkpoint_path: a ``ckpt-N`` prefix (default: the newest).
        keep_fraction: each sub-network's share of every layer group.
        loss_fn, output_names: the loss (default: masked LM) and the outputs it needs.
        similarity_log: the probe's JSON-lines log (default: the one in
            ``model_dir/interference/`` when it exists).
        results, baseline, metric, lower_is_better, high_resource,
        low_resource, pairs, title: passed to `write_report`.

    Returns: ``{"report_dir", "similarity", "subnetworks", "checkpoint"}``.
    """
    checkpoint_path = checkpoint_path or latest_checkpoint(model_dir)
    model = restore_model(model_dir, checkpoint_path)
    function = GradientSimilarityFunction(model, loss_fn=loss_fn, output_names=output_names)
    step = _checkpoint_step(checkpoint_path)
    similarity = function(batches_by_language, step=step)
    subnetworks = language_subnetworks(
        model, batches_by_language, keep_fraction=keep_fraction, gradients=function.gradients
    )
    if similarity_log is None:
        default_log = os.path.join(probe_log_dir(model_dir), LOG_FILE_NAME)
        similarity_log = default_log if os.path.exists(default_log) else None
    context = {
        "model directory": os.path.abspath(model_dir),
        "checkpoint": os.path.basename(checkpoint_path) if checkpoint_path else "n/a",
        "languages analysed": ", ".join(similarity.languages),
        "probe log": similarity_log or "none",
    }
    report_dir = write_report(
        output_dir,
        similarity=similarity,
        similarity_history=similarity_log,
        subnetworks=subnetworks,
        results=results,
        baseline=baseline,
        metric=metric,
        lower_is_better=lower_is_better,
        high_resource=high_resource,
        low_resource=low_resource,
        pairs=pairs,
        title=title or f"Interference report: {os.path.basename(os.path.abspath(model_dir))}",
        context=context,
    )
    return {"report_dir": report_dir, "similarity": similarity, "subnetworks": subnetworks,
            "checkpoint": checkpoint_path}


def _checkpoint_step(checkpoint_path: Optional[str]) -> Optional[int]:
    """N of a ``.../ckpt-N`` prefix (the checkpoint number trainers save at their step), else None."""
    if not checkpoint_path:
        return None
    suffix = os.path.basename(checkpoint_path).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None
