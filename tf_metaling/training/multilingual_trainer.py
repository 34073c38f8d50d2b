"""The Orbit trainer/evaluator that runs the ordinary and meta steps under tf.distribute.

`MultilingualTrainer` is an `orbit.StandardTrainer` and `orbit.StandardEvaluator`.
Each training step takes the next element of the distributed training stream
and runs, through `strategy.run` inside a `tf.function`, either the ordinary
step or (every `meta.every_n_steps` steps, when meta-learning is on) the
ordinary step followed by the meta update of the batch's language k (see
`tf_metaling.meta.meta_step`). The step loop itself is Python, so that the
choice between the two compiled steps costs nothing in the graph.

Training is stopped with `NonFiniteLossError` as soon as a loss is NaN or
infinite, before the Orbit controller can write a checkpoint: the last
checkpoint on disk stays the last good one.

Logged per loop (TensorBoard through the Orbit controller, and a progress
line): the loss, the meta loss, per-language training losses, learning rates,
steps/s, tokens/s and the ETA; with gradient surgery, the training batches'
gradient cosines and GradVac's targets (`tf_metaling.interference.surgery_scalars`).
Evaluation gives per-language held-out loss, perplexity and accuracy.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import sys
import time
from typing import Callable, Optional

import numpy as np
import orbit
import tensorflow as tf

from tf_metaling.losses import per_language_sums
from tf_metaling.meta.meta_step import MetaStep

# Training iterators kept alive for the life of the process (see `keep_iterators_alive`).
_KEPT_ITERATORS: Optional[list] = None


def keep_iterators_alive() -> None:
    """From now on, this process never deletes a trainer's training iterators.

    For processes that train many runs one after another (the study's worker
    processes). Deleting a long-lived distributed iterator waits for its tf.data
    autotuning thread, which sleeps up to a minute between optimizations: on 2
    CPU cores, a worker sat idle for 20-60 s in about one run in three, when the
    previous run's iterators were garbage-collected (seen with gdb:
    ``RootDataset::Iterator::~Iterator`` waiting on ``Model::OptimizeLoop``).
    A kept iterator costs its prefetch buffer (a few batches). At exit the process
    ends without deleting them (`os._exit` after flushing its streams; measured: the
    control's two workers otherwise took 2m12s to exit, deleting their kept iterators).
    That exit always has status 0, which is a pool worker's status at a normal exit;
    a main process would lose its own exit status, so it is refused there.

    Raises:
        RuntimeError: in a process that is not a `multiprocessing` child.
    """
    global _KEPT_ITERATORS
    if multiprocessing.parent_process() is None:
        raise RuntimeError(
            "keep_iterators_alive() is for worker processes (multiprocessing children): it ends the "
            "process with os._exit(0), which would hide this main process's exit status."
        )
    if _KEPT_ITERATORS is None:
        _KEPT_ITERATORS = []
        atexit.register(_exit_without_deleting_iterators)


def _exit_without_deleting_iterators() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite."""


class MultilingualTrainer(orbit.StandardTrainer, orbit.StandardEvaluator):
    """Runs `MetaStep` under a strategy, with per-language evaluation.

    Args:
        strategy: the `tf.distribute.Strategy` the model was built under.
        meta_step: a `MetaStep` (its model and optimizers built under `strategy`).
        train_dataset_fn: for `distribute_datasets_from_function`; elements are
            batches, or ``{"train", "lookahead"}`` pairs when `meta_enabled`.
        eval_batches: ``{language: [batch, ...]}``, fixed held-out batches.
        output_name: the model output the task's losses read.
        example_metrics: ``fn(outputs, batch) -> (correct [B], weight [B])``.
        global_step: the step counter (checkpointed by the caller).
        languages: the `LanguageVocabulary`.
        total_steps: for the ETA.
        meta_dataset_fn: held-out meta batches (required when `meta_enabled`).
        meta_enabled / meta_every_n_steps: when to run the meta update.
        probe: an optional `tf_metaling.interference.GradientProbe`, given every step.
        log: where progress lines go (None: stdout).
        mixture: optional ``{language: probability}``, the training mixture; the
            evaluation then also reports ``loss/mixture``, the held-out loss of
            that mixture (what early stopping judges a joint run by).
    """

    def __init__(
        self,
        *,
        strategy,
        meta_step: MetaStep,
        train_dataset_fn: Callable,
        eval_batches: dict,
        output_name: str,
        example_metrics: Callable,
        global_step: tf.Variable,
        languages,
        total_steps: int,
        meta_dataset_fn: Optional[Callable] = None,
        meta_enabled: bool = False,
        meta_every_n_steps: int = 1,
        probe=None,
        log=None,
        mixture: Optional[dict] = None,
    ):
        self.strategy = strategy
        self.mixture = dict(mixture) if mixture else None
        self.meta_step = meta_step
        self.model = meta_step.model
        self.global_step = global_step
        self.languages = languages
        self.total_steps = int(total_steps)
        self.meta_enabled = bool(meta_enabled)
        self.meta_every_n_steps = int(meta_every_n_steps)
        self.output_name = output_name
        self.example_metrics = example_metrics
        self.log = log
        self.probe = probe
        num_languages = len(languages)
        self.num_languages = num_languages
        self.last_eval_metrics = None

        train_dataset = strategy.distribute_datasets_from_function(train_dataset_fn)
        orbit.StandardTrainer.__init__(
            self,
            train_dataset,
            options=orbit.StandardTrainerOptions(use_tf_function=False, use_tf_while_loop=False),
        )
        self.train_iterator = iter(train_dataset)
        self._train_iter = self.train_iterator
        self.meta_iterator = None
        if self.meta_enabled:
            if meta_dataset_fn is None:
                raise ValueError("meta_enabled needs meta_dataset_fn.")
            self.meta_iterator = iter(strategy.distribute_datasets_from_function(meta_dataset_fn))
        if _KEPT_ITERATORS is not None:
            _KEPT_ITERATORS.extend(it for it in (self.train_iterator, self.meta_iterator) if it is not None)

        eval_dataset = None
        for code in languages.codes:
            for batch in eval_batches.get(code, []):
                single = tf.data.Dataset.from_tensors(batch)
                eval_dataset = single if eval_dataset is None else eval_dataset.concatenate(single)
        self.eval_languages = [c for c in languages.codes if eval_batches.get(c)]
        if eval_dataset is not None:
            eval_dataset = strategy.experimental_distribute_dataset(eval_dataset)
        orbit.StandardEvaluator.__init__(
            self, eval_dataset, options=orbit.StandardEvaluatorOptions(use_tf_function=False)
        )

        step = meta_step

        def language_stats(batch, loss_sums, weights):
            return per_language_sums(loss_sums, weights, batch["language_ids"], num_languages)

        def meta(pair, meta_batch):
            language = pair["train"]["language_ids"][0]  # one-language batches: k
            return step.meta_step(pair["train"], pair["lookahead"], meta_batch, language)

        def evaluate(batch):
            outputs = step.model(batch, training=False, **step._call_kwargs())
            loss_sums, weights = step.example_losses(outputs, batch)
            correct, counted = example_metrics(outputs, batch)
            loss_l, weight_l = language_stats(batch, loss_sums, weights)
            correct_l, counted_l = language_stats(batch, correct, counted)
            return loss_l, weight_l, correct_l, counted_l

        def run_and_reduce(fn, *args):
            results = strategy.run(fn, args=args)
            # Losses are already global (all-reduced in the step); take replica 0's.
            return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], results)

        # autograph=False: the steps have no tensor-dependent Python control flow, and
        # converting Keras internals only slows tracing of the large meta-step graph.
        self._ordinary_fn = tf.function(lambda batch: run_and_reduce(step.ordinary_step, batch), autograph=False)
        self._meta_fn = tf.function(lambda pair, meta_batch: run_and_reduce(meta, pair, meta_batch), autograph=False)
        self._eval_fn = tf.function(
            lambda batch: tf.nest.map_structure(
                lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None),
                strategy.run(evaluate, args=(batch,)),
            )
        )

    # ------------------------------------------------------------------ training
    def train_loop_begin(self):
        self._loop_start = time.perf_counter()
        self._loop_first_step = int(self.global_step.numpy())
        self._losses = []
        self._meta_losses = []
        self._language_sums = np.zeros((2, self.num_languages))
        self._tokens = 0
        self._surgery_cosines, self._surgery_overall_cosines = [], []

    def train_step(self, iterator):
        element = next(iterator)
        step = int(self.global_step.numpy())
        batch = element["train"] if self.meta_enabled else element
        if self.meta_enabled and step % self.meta_every_n_steps == 0:
            statistics = self._meta_fn(element, next(self.meta_iterator))
            self._meta_losses.append(float(statistics["meta_loss"]))
        else:
            statistics = self._ordinary_fn(batch)
        loss = float(statistics["loss"])
        if not math.isfinite(loss) or (self._meta_losses and not math.isfinite(self._meta_losses[-1])):
            present = np.flatnonzero(statistics["language_weights"].numpy())
            codes = [self.languages.code(i) for i in present]
            raise NonFiniteLossError(
                f"Non-finite training loss at step {step + 1} (languages {codes}): loss={loss}, "
                f"meta loss={self._meta_losses[-1] if self._meta_losses else None}. Training stopped; "
                "the last checkpoint in model_dir is the last good state."
            )
        self._losses.append(loss)
        self._language_sums += np.stack(
            [statistics["language_loss_sums"].numpy(), statistics["language_weights"].numpy()]
        )
        if "gradient_cosines" in statistics:  # gradient surgery's measurements on this batch
            self._surgery_cosines.append(statistics["gradient_cosines"].numpy())
            self._surgery_overall_cosines.append(statistics["overall_gradient_cosines"].numpy())
        masks = self.strategy.experimental_local_results(batch["padding_mask"])
        self._tokens += int(sum(int(tf.reduce_sum(m)) for m in masks))
        self.global_step.assign_add(1)
        if self.probe is not None:
            self.probe.maybe_record(step + 1)

    def train_loop_end(self):
        elapsed = max(time.perf_counter() - self._loop_start, 1e-9)
        step = int(self.global_step.numpy())
        steps = step - self._loop_first_step
        logs = {
            "loss": float(np.mean(self._losses)) if self._losses else float("nan"),
            "learning_rate": _scalar(self.meta_step.shared_optimizer.learning_rate),
            "steps_per_second": steps / elapsed,
            "tokens_per_second": self._tokens / elapsed,
        }
        if self.probe is not None and self.probe.last is not None:
            logs["interference/mean_off_diagonal"] = float(self.probe.last.mean_off_diagonal())
        if self._meta_losses:
            logs["meta_loss"] = float(np.mean(self._meta_losses))
        if self.meta_step.meta_optimizer is not None:
            logs["meta_learning_rate"] = _scalar(self.meta_step.meta_optimizer.learning_rate)
        surgery = self.meta_step.surgery
        if surgery is not None:
            # Lazy: the interference package imports matplotlib, which runs without surgery never need.
            from tf_metaling.interference.surgery_scalars import surgery_scalars

            targets = None if surgery.targets is None else surgery.targets.numpy()
            logs.update(surgery_scalars(self.languages.codes, surgery.group_names, self._surgery_cosines,
                                        self._surgery_overall_cosines, targets))
        for i, code in enumerate(self.languages.codes):
            if self._language_sums[1, i] > 0:
                logs[f"loss/{code}"] = float(self._language_sums[0, i] / self._language_sums[1, i])
        remaining = max(self.total_steps - step, 0)
        eta = remaining / logs["steps_per_second"] if logs["steps_per_second"] > 0 else float("inf")
        meta = f" meta {logs['meta_loss']:.4f}" if "meta_loss" in logs else ""
        print(
            f"step {step}/{self.total_steps}  loss {logs['loss']:.4f}{meta}  "
            f"{logs['steps_per_second']:.2f} steps/s  {logs['tokens_per_second']:.0f} tokens/s  "
            f"ETA {_format_seconds(eta)}",
            file=self.log or sys.stdout,
            flush=True,
        )
        return logs

    # ------------------------------------------------------------------ evaluation
    def eval_begin(self):
        zeros = np.zeros(self.num_languages)
        self._eval_sums = [zeros.copy() for _ in range(4)]

    def eval_step(self, iterator):
        results = self._eval_fn(next(iterator))
        for total, value in zip(self._eval_sums, results):
            total += value.numpy()

    def eval_end(self):
        self.last_eval_metrics = per_language_metrics(self._eval_sums, self.languages, self.eval_languages,
                                                      mixture=self.mixture)
        return self.last_eval_metrics


def per_language_metrics(sums, languages, evaluated, mixture: Optional[dict] = None) -> dict:
    """Loss, perplexity and accuracy per language, plus their means, from summed statistics.

    With `mixture` (``{language: probability}``, the training mixture) also
    ``loss/mixture``: the languages' held-out losses weighted by their
    probabilities (renormalised over the evaluated languages). It is the loss
    of the distribution the run trains on, so a small language that overfits
    weighs as much as it is trained on, not as much as the largest one.
    """
    loss, weight, correct, counted = sums
    metrics = {}
    for code in evaluated:
        i = languages.index(code)
        if weight[i] <= 0:
            continue
        mean_loss = loss[i] / weight[i]
        metrics[f"loss/{code}"] = float(mean_loss)
        metrics[f"perplexity/{code}"] = float(math.exp(min(mean_loss, 50.0)))
        metrics[f"accuracy/{code}"] = float(correct[i] / max(counted[i], 1.0))
    if metrics:
        for name in ("loss", "perplexity", "accuracy"):
            values = [v for k, v in metrics.items() if k.startswith(name + "/")]
            metrics[f"{name}/mean"] = float(np.mean(values))
        weights = {code: float(mixture.get(code, 0.0)) for code in evaluated
                   if f"loss/{code}" in metrics} if mixture else {}
        if sum(weights.values()) > 0:
            total = sum(weights.values())
            metrics["loss/mixture"] = float(sum(w * metrics[f"loss/{c}"] for c, w in weights.items()) / total)
    return metrics


def _scalar(value) -> float:
    """A Python float from a tensor or a (possibly mirrored) variable."""
    return float(tf.convert_to_tensor(value).numpy())


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
