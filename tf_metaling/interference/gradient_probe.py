"""The interference probe: gradient similarities measured every N training steps.

A training loop calls ``probe.maybe_record(step)`` after each step. Every
`every_n_steps` steps the probe computes the per-language gradient
similarities (`GradientSimilarityFunction`) on FIXED held-out batches, so
that changes over training come from the model, not from the data. Each
measurement goes to:

- TensorBoard (``log_dir``, or the `summary_writer` given): scalars
  ``interference/mean_off_diagonal`` (overall), ``interference/mean_off_diagonal/<group>``,
  ``interference/cosine/<a>-<b>`` for the selected pairs, ``interference/loss/<code>``,
  and the image ``interference/gradient_similarity`` of the overall matrix;
- a JSON-lines log (``log_dir/gradient_similarity.jsonl``), which the report
  plots over training (`read_similarity_log`).

Cost: one forward and backward pass per language and held-out batch, plus the
L x L Gram matrices, every `every_n_steps` steps. `total_seconds` accumulates
the time spent so a trainer can log the overhead; `benchmarks/interference_probe.py`
measures it against a plain training step.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Callable, Optional

import tensorflow as tf

from tf_metaling.interference.gradient_similarity import GradientSimilarity, GradientSimilarityFunction
from tf_metaling.interference.heatmap_image import heatmap_image
from tf_metaling.interference.language_batches import resolve_language_batches
from tf_metaling.interference.similarity_log import LOG_FILE_NAME, SimilarityLog

# With one held-out batch of the training batch's size per language, a probe
# costs L forward/backward passes (no optimizer update, no dropout). Measured by
# benchmarks/interference_probe.py at the `small` size with 7 languages on a
# 2-core CPU shared with other jobs: 4.6% and 5.9% of the training time at
# this interval (two runs).
DEFAULT_EVERY_N_STEPS = 100
ALL_PAIRS_UP_TO = 4  # languages; beyond, the default pairs are the first language with each other


def default_pairs(languages) -> list:
    """All pairs for a few languages; otherwise the first (pivot) language with each other one."""
    languages = list(languages)
    if len(languages) <= ALL_PAIRS_UP_TO:
        return list(itertools.combinations(languages, 2))
    return [(languages[0], other) for other in languages[1:]]


class GradientProbe:
    """Logs per-language gradient similarities of the shared parameters every N steps.

    Args:
        model: the `MultilingualModel` being trained (its variables are read in
            place; the probe changes nothing in the model).
        batches_by_language: ``{code or index: batch or [batches]}`` fixed
            held-out batches, at least two languages (checked now).
        log_dir: directory of the JSON-lines log and, unless `summary_writer`
            is given, of the TensorBoard event files. None: no files (the
            results are still returned).
        every_n_steps: the interval; `maybe_record(step)` measures when
            ``step % every_n_steps == 0``.
        loss_fn: ``fn(outputs, batch) -> scalar``; default the masked-LM loss.
        output_names: model outputs the loss needs (default: inferred).
        pairs: language pairs logged as scalars (default: `default_pairs`).
        summary_writer: an existing `tf.summary` writer to log into.
        resume_step: the step training resumed from; log records of later
            steps (from the interrupted run) are dropped.
        image: log the overall matrix as a TensorBoard image.
        training: measure with dropout on (default off).

    Example (custom training loop)::

        probe = GradientProbe(model, {"en": en_batch, "sw": sw_batch}, log_dir=f"{model_dir}/interference")
        for step in range(1, steps + 1):
            train_step(next(iterator))
            probe.maybe_record(step)
    """

    def __init__(
        self,
        model,
        batches_by_language,
        log_dir: Optional[str] = None,
        every_n_steps: int = DEFAULT_EVERY_N_STEPS,
        loss_fn: Optional[Callable] = None,
        output_names=None,
        pairs=None,
        summary_writer=None,
        resume_step: Optional[int] = None,
        image: bool = True,
        training: bool = False,
    ):
        if int(every_n_steps) < 1:
            raise ValueError(f"GradientProbe: every_n_steps must be >= 1, got {every_n_steps}.")
        self.model = model
        self.every_n_steps = int(every_n_steps)
        self.log_dir = log_dir
        self.image = bool(image)
        self.resolved = resolve_language_batches(model.language_vocabulary, batches_by_language)
        self.languages = tuple(entry.code for entry in self.resolved)
        if len(self.languages) < 2:
            raise ValueError(f"GradientProbe: needs batches of at least two languages, got {list(self.languages)}.")
        self.pairs = [tuple(pair) for pair in (pairs if pairs is not None else default_pairs(self.languages))]
        for pair in self.pairs:
            missing = [code for code in pair if code not in self.languages]
            if len(pair) != 2 or missing:
                raise ValueError(f"GradientProbe: pair {pair!r} must name two of the probed languages {list(self.languages)}.")
        self.function = GradientSimilarityFunction(model, loss_fn=loss_fn, output_names=output_names, training=training)
        self.summary_writer = summary_writer
        self.log = None
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            self.log = SimilarityLog(os.path.join(log_dir, LOG_FILE_NAME), resume_step=resume_step)
            if self.summary_writer is None:
                self.summary_writer = tf.summary.create_file_writer(log_dir)
        self.total_seconds = 0.0
        self.records = 0
        self.last = None

    @property
    def log_path(self) -> Optional[str]:
        return None if self.log is None else self.log.path

    def should_record(self, step: int) -> bool:
        return int(step) % self.every_n_steps == 0

    def maybe_record(self, step: int) -> Optional[GradientSimilarity]:
        """Measures and logs at every `every_n_steps`-th step; returns the measurement or None."""
        return self.record(step) if self.should_record(step) else None

    def record(self, step: int) -> GradientSimilarity:
        """Measures now, logs to TensorBoard and the JSON log, and returns the measurement."""
        start = time.perf_counter()
        similarity = self.function(None, step=int(step), resolved=self.resolved)
        if self.log is not None:
            self.log.append(similarity)
        if self.summary_writer is not None:
            self._write_summaries(similarity, int(step))
        self.total_seconds += time.perf_counter() - start
        self.records += 1
        self.last = similarity
        return similarity

    def _write_summaries(self, similarity: GradientSimilarity, step: int) -> None:
        with self.summary_writer.as_default(step=step):
            tf.summary.scalar("interference/mean_off_diagonal", similarity.mean_off_diagonal())
            for group in similarity.groups:
                tf.summary.scalar(f"interference/mean_off_diagonal/{group}", similarity.mean_off_diagonal(group))
            for first, second in self.pairs:
                tf.summary.scalar(f"interference/cosine/{first}-{second}", similarity.pair(first, second))
            for code, loss in zip(similarity.languages, similarity.losses):
                tf.summary.scalar(f"interference/loss/{code}", loss)
            if self.image:
                tf.summary.image(
                    "interference/gradient_similarity",
                    heatmap_image(similarity.overall),
                    description=(
                        "Cosine similarity of the languages' gradients on the shared parameters "
                        f"(blue +1, white 0, red -1). Rows and columns: {', '.join(similarity.languages)}."
                    ),
                )
        self.summary_writer.flush()
