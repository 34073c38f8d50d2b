"""Running a masked-LM experiment: config -> strategy -> model, optimizers -> Orbit controller.

`run_pretraining(config, model_dir, mode)` is what ``trainers/pretrain.py``
calls. It builds the strategy, the inputs, and inside ``strategy.scope()`` the
model and both optimizers (built on their variables before the first step, as
Keras 3 needs under a strategy); writes ``config.yaml`` and ``model.json`` into
model_dir; and hands an Orbit `Controller` the trainer, the evaluator and a
checkpoint manager. The checkpoint holds the model, both optimizers' state,
the step, and with ``surgery.method=gradvac`` GradVac's targets. The data
streams are deterministic under the seed; a killed run restarted on the same
model_dir restores the checkpoint and skips the batches it had consumed
(`tf.distribute` iterators cannot be checkpointed), so it continues on exactly
the data it would have seen.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Callable, Optional

import keras
import orbit
import tensorflow as tf
import yaml
from official.common import distribute_utils

from tf_metaling import checkpoints
from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import ExperimentConfig, validate
from tf_metaling.interference import GradientProbe, probe_log_dir
from tf_metaling.losses import masked_lm_example_losses, mean_loss
from tf_metaling.meta.gradient_surgery import GradientSurgery, SurgeryOptions
from tf_metaling.meta.meta_step import MetaOptions, MetaStep
from tf_metaling.models import MultilingualEncoder, MultilingualModel, partition_variables
from tf_metaling.models.multilingual_model import MASKED_LM_LOGITS
from tf_metaling.optimizers import RowSparseAdam
from tf_metaling.training.convergence import ConvergenceRule, LearningCurve, PlateauStopper
from tf_metaling.training.mlm_inputs import build_mlm_inputs
from tf_metaling.training.multilingual_trainer import MultilingualTrainer
from tf_metaling.training.schedules import WarmupSchedule

MODES = ("train", "eval", "train_and_eval")
CONFIG_FILE = "config.yaml"
EVAL_RESULTS_FILE = "eval_results.json"
# The held-out loss at every evaluation of a train_and_eval run (training/convergence.py).
LEARNING_CURVE_FILE = "learning_curve.json"
BEST_DIR = "best"  # trainer.restore_best: the weights of the best evaluation so far
# The learning curve's loss: the held-out loss of the training mixture (languages weighted as
# they are sampled; TaskSpec.mixture), or without a mixture the plain mean over languages.
CURVE_METRICS = ("loss/mixture", "loss/mean")


def build_strategy(runtime) -> tf.distribute.Strategy:
    """The strategy named by ``runtime.distribution_strategy``, via Model Garden's helper."""
    return distribute_utils.get_distribution_strategy(
        distribution_strategy=runtime.distribution_strategy,
        num_gpus=runtime.num_gpus,
        tpu_address=runtime.tpu or None,
    )


def config_as_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.as_dict(), sort_keys=True)


def write_config(config: ExperimentConfig, model_dir: str) -> str:
    return atomic_write_text(os.path.join(model_dir, CONFIG_FILE), config_as_yaml(config))


def build_model(config: ExperimentConfig, languages, vocab_size: int) -> MultilingualModel:
    model_config = config.model
    policy = config.runtime.mixed_precision_dtype
    encoder = MultilingualEncoder(
        vocabulary_size=vocab_size,
        languages=languages,
        hidden_dim=model_config.hidden_dim,
        num_layers=model_config.num_layers,
        num_heads=model_config.num_heads,
        intermediate_dim=model_config.intermediate_dim,
        max_sequence_length=model_config.max_sequence_length,
        language_specific=model_config.language_specific,
        language_specific_layers=list(model_config.language_specific_layers) or None,
        adapter_dim=model_config.adapter_dim,
        adapter_activation=model_config.adapter_activation,
        dropout=model_config.dropout,
        attention_dropout=model_config.attention_dropout,
        activation=model_config.activation,
        normalize_first=model_config.normalize_first,
        language_embedding=model_config.language_embedding,
        dtype=None if policy == "float32" else policy,
    )
    return MultilingualModel(encoder)


def _without_names(config):
    """A serialized config without layer names (Keras numbers them per process)."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list):
        return [_without_names(v) for v in config]
    return config


def _check_model_dir_matches(model, model_dir):
    """A resumed run must build the same model it checkpointed."""
    path = os.path.join(model_dir, checkpoints.MODEL_CONFIG_FILE)
    if not os.path.exists(path) or checkpoints.latest_checkpoint(model_dir) is None:
        return
    with open(path, encoding="utf-8") as file:
        saved = json.load(file)
    current = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    if _without_names(saved) != _without_names(current):
        raise ValueError(
            f"{path}: the checkpointed model differs from the one this config builds; use a new "
            "model_dir or the original config."
        )


def writable_model_dir(strategy, model_dir: str) -> str:
    """Where this worker writes: model_dir on the chief, a private directory elsewhere.

    Under MultiWorkerMirroredStrategy every worker takes part in saving (the
    save is collective), but only the chief's files are the run's.
    """
    extended = strategy.extended
    if getattr(extended, "should_checkpoint", True):
        return model_dir
    task_id = getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0)
    return os.path.join(model_dir, f".worker-{task_id}")


def masked_lm_example_metrics(outputs, batch):
    """``(correct [B], weight [B])``: top-1 accuracy of the masked-LM predictions."""
    predicted = tf.argmax(outputs[MASKED_LM_LOGITS], axis=-1, output_type=tf.int32)
    weights = batch.get("mask_weights")
    weights = tf.ones_like(predicted, tf.float32) if weights is None else tf.cast(weights, tf.float32)
    correct = tf.cast(tf.equal(predicted, batch["mask_ids"]), tf.float32) * weights
    return tf.reduce_sum(correct, axis=1), tf.reduce_sum(weights, axis=1)


def mlm_losses(outputs, batch):
    return masked_lm_example_losses(outputs[MASKED_LM_LOGITS], batch)


@dataclasses.dataclass
class TaskSpec:
    """What a task gives the generic runner.

    Attributes:
        languages: the `LanguageVocabulary` of the model.
        build_model: builds the model (called inside ``strategy.scope()``).
        output_name: the model output the losses read.
        example_losses / example_metrics: per-example ``(sum, weight)`` functions.
        train_dataset_fn: ``fn(skip_batches, paired) -> dataset_fn`` for
            `distribute_datasets_from_function`.
        eval_batches: ``{language: [batch, ...]}``.
        meta_dataset_fn: ``fn(skip_batches) -> dataset_fn`` (meta-learning only).
        initialize: optional ``fn(model)`` run on a fresh model (not when resuming),
            e.g. loading pretrained weights.
        mixture: optional ``{language: probability}`` of the training batches: the
            learning curve (early stop, best weights) is then the held-out loss of
            that mixture, not the plain mean over languages.
        accuracy_baselines: optional ``fn() -> {language: accuracy}``, the accuracy of
            always predicting the most frequent token on `eval_batches`; early stopping
            then waits while a language's accuracy is not above it (the unigram plateau).
    """

    languages: object
    build_model: Callable
    output_name: str
    example_losses: Callable
    example_metrics: Callable
    train_dataset_fn: Callable
    eval_batches: dict
    meta_dataset_fn: Optional[Callable] = None
    initialize: Optional[Callable] = None
    mixture: Optional[dict] = None  # {language: training probability}: early stopping's held-out loss
    # () -> {language: accuracy of the most frequent token on eval_batches}: no early stop on the unigram plateau
    accuracy_baselines: Optional[Callable] = None


def prepare_run(config: ExperimentConfig, model_dir: str, strategy=None):
    """Validates, seeds, builds the strategy; returns ``(strategy, writable model_dir)``."""
    validate(config)
    keras.utils.set_random_seed(config.runtime.seed)
    strategy = strategy or build_strategy(config.runtime)
    model_dir = writable_model_dir(strategy, model_dir)
    os.makedirs(model_dir, exist_ok=True)
    return strategy, model_dir


def run_task(config: ExperimentConfig, model_dir: str, mode: str, strategy, spec: TaskSpec, log=None) -> dict:
    """Builds model and optimizers under `strategy`, restores, and runs the Orbit controller."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}.")
    meta_config = config.meta
    trainer_config = config.trainer
    with strategy.scope():
        model = spec.build_model()
        schedule = WarmupSchedule(
            trainer_config.learning_rate,
            trainer_config.warmup_steps,
            trainer_config.train_steps,
            trainer_config.decay_to_zero,
        )
        shared_optimizer = RowSparseAdam(schedule)
        shared_optimizer.build(model.trainable_variables)
        meta_optimizer = None
        if meta_config.enabled:
            meta_optimizer = RowSparseAdam(meta_config.learning_rate)
            meta_optimizer.build(list(partition_variables(model).language))
        global_step = tf.Variable(
            0, dtype=tf.int64, trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA
        )
        surgery = None
        if config.surgery.method != "none":
            surgery = GradientSurgery(model, SurgeryOptions(**config.surgery.as_dict()))
    _check_model_dir_matches(model, model_dir)
    write_config(config, model_dir)
    checkpoints.save_model_config(model, model_dir)

    meta_step = MetaStep(
        model,
        spec.example_losses,
        shared_optimizer,
        meta_optimizer,
        MetaOptions(
            first_order=meta_config.first_order,
            exclude_current_language=meta_config.exclude_current_language,
            inner_learning_rate=meta_config.inner_learning_rate or None,
            reuse_ordinary_gradient=meta_config.reuse_ordinary_gradient,
            clip_norm=meta_config.clip_norm,
            ordinary_step_updates_language=meta_config.ordinary_step_updates_language,
            one_language_batches=config.data.batching == "one_language",
        ),
        clip_norm=trainer_config.clip_norm,
        output_names=(spec.output_name,),
        surgery=surgery,
    )
    # Restore before the data streams exist: distributed iterators cannot be
    # checkpointed, so a resumed run skips the batches it already consumed.
    tracked = {"optimizer": shared_optimizer, "global_step": global_step}
    if meta_optimizer is not None:
        tracked["meta_optimizer"] = meta_optimizer
    if surgery is not None:
        tracked["gradient_surgery"] = surgery  # GradVac's targets are training state
    manager = tf.train.CheckpointManager(
        checkpoints.training_checkpoint(model, **tracked),
        directory=model_dir,
        max_to_keep=trainer_config.max_to_keep,
        step_counter=global_step,
        checkpoint_interval=trainer_config.checkpoint_interval,
    )
    if manager.restore_or_initialize() is None and spec.initialize is not None:
        spec.initialize(model)
    done = int(global_step.numpy())
    meta_done = -(-done // meta_config.every_n_steps) if meta_config.enabled else 0
    probe = None
    probed = {code: batches[0] for code, batches in spec.eval_batches.items() if batches}
    if trainer_config.probe_interval > 0 and len(probed) >= 2:
        probe = GradientProbe(
            model,
            probed,
            log_dir=probe_log_dir(model_dir),
            every_n_steps=trainer_config.probe_interval,
            loss_fn=lambda outputs, batch: mean_loss(*spec.example_losses(outputs, batch)),
            output_names=(spec.output_name,),
            resume_step=done,
        )
    trainer = MultilingualTrainer(
        strategy=strategy,
        meta_step=meta_step,
        train_dataset_fn=spec.train_dataset_fn(done, meta_config.enabled),
        eval_batches=spec.eval_batches,
        output_name=spec.output_name,
        example_metrics=spec.example_metrics,
        global_step=global_step,
        languages=spec.languages,
        total_steps=trainer_config.train_steps,
        meta_dataset_fn=spec.meta_dataset_fn(meta_done) if meta_config.enabled else None,
        meta_enabled=meta_config.enabled,
        meta_every_n_steps=meta_config.every_n_steps,
        probe=probe,
        log=log,
        mixture=spec.mixture,
    )
    controller = orbit.Controller(
        strategy=strategy,
        trainer=trainer,
        evaluator=trainer,
        global_step=global_step,
        steps_per_loop=trainer_config.steps_per_loop,
        checkpoint_manager=manager,
        summary_interval=trainer_config.summary_interval,
        summary_dir=os.path.join(model_dir, "train"),
        eval_summary_dir=os.path.join(model_dir, "eval"),
    )
    metrics = {}
    if mode == "train":
        controller.train(steps=trainer_config.train_steps)
    elif mode == "eval":
        metrics = controller.evaluate(steps=-1)
    else:
        metrics = _train_and_evaluate(controller, global_step, trainer_config, model_dir,
                                      spec.accuracy_baselines)
    if metrics:
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics["step"] = int(global_step.numpy())
        atomic_write_text(os.path.join(model_dir, EVAL_RESULTS_FILE), json.dumps(metrics, indent=2))
    return metrics


def _train_and_evaluate(controller, global_step, trainer_config, model_dir,
                        accuracy_baselines: Optional[Callable] = None) -> dict:
    """Trains to the budget, evaluating every `eval_interval` steps; stops early at a plateau.

    Each evaluation's held-out loss (`CURVE_METRICS`: of the training mixture,
    so a small language that overfits counts as much as it is trained on) is
    appended to the run's learning curve (``learning_curve.json``, rewritten atomically after every
    evaluation); with ``trainer.plateau_patience`` a `PlateauStopper` ends the
    run once the loss has stopped improving. A resumed run reads its curve
    back, so it stops where an uninterrupted run would (the stopper's decision is a
    function of the curve). With `accuracy_baselines` (``fn() -> {language: accuracy of
    the most frequent token}``, called once, only when a stop is near) a run whose held-out accuracy in a language is not above
    it does not stop early: it sits on the unigram plateau, which the convergence
    rule does not call converged. (The stopper compares the point accuracy; the
    study's verdict compares its 95% CI, so a run barely above the baseline may stop
    and then be labelled "not converged (unigram plateau)".)
    """
    path = os.path.join(model_dir, LEARNING_CURVE_FILE)
    done = int(global_step.numpy())
    curve, stopped = LearningCurve(), False
    if done and os.path.exists(path):  # a resumed run: the evaluations up to its checkpoint
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
        kept = [(step, loss) for step, loss in zip(saved["steps"], saved["losses"]) if step <= done]
        curve = LearningCurve([step for step, _ in kept], [loss for _, loss in kept])
        stopped = bool(saved.get("stopped_early")) and bool(kept) and kept[-1][0] == done
    stopper = None
    if trainer_config.plateau_patience:
        # Patience, and the study's convergence rule: a run that stops early is one the rule calls converged.
        stopper = PlateauStopper(trainer_config.plateau_patience, trainer_config.plateau_min_delta,
                                 rule=ConvergenceRule())
    @functools.cache
    def baselines():  # a pass over a training sample: computed once, when a stop is near
        return accuracy_baselines() if accuracy_baselines is not None else None

    interval = max(int(trainer_config.eval_interval), 1)
    metrics = {}
    while not stopped:
        target = min(trainer_config.train_steps, (done // interval + 1) * interval)
        if done < target:
            controller.train(steps=target)
            done = int(global_step.numpy())
        if curve.steps and curve.steps[-1] == done:  # evaluated before an interruption
            break
        metrics = controller.evaluate(steps=-1)
        metric = next((name for name in CURVE_METRICS if name in metrics), CURVE_METRICS[-1])
        loss = float(metrics.get(metric, float("nan")))
        if math.isfinite(loss):
            curve.add(done, loss)
            if trainer_config.restore_best:
                _keep_if_best(controller, model_dir, curve)
            stopped = stopper is not None and stopper.should_stop(
                curve, lambda: _above_baselines(metrics, baselines()))
            atomic_write_text(path, json.dumps({
                **curve.as_dict(), "train_steps": int(trainer_config.train_steps),
                "stopped_early": bool(stopped and done < trainer_config.train_steps),
                "plateau": stopper.get_config() if stopper is not None else None,
                "metric": metric,
            }, indent=1))
        if done >= trainer_config.train_steps:
            break
    if trainer_config.restore_best and curve.steps:
        restored = _restore_best(controller, global_step, model_dir, curve, path)
        if restored is not None:
            return restored
    return metrics or controller.evaluate(steps=-1)


def _above_baselines(metrics: dict, baselines: Optional[dict]) -> Optional[dict]:
    """``{language: held-out accuracy > its most-frequent-token baseline}`` for the languages evaluated."""
    if not baselines:
        return None
    return {code: metrics[f"accuracy/{code}"] > baseline for code, baseline in baselines.items()
            if f"accuracy/{code}" in metrics}


def _best_prefix(model_dir: str, step: int) -> str:
    return os.path.join(model_dir, BEST_DIR, f"ckpt-{int(step)}")


def _keep_if_best(controller, model_dir: str, curve) -> None:
    """After an evaluation: when it is the best so far, writes the weights to model_dir/best/."""
    if curve.losses[-1] >= min(curve.losses[:-1], default=float("inf")):
        return  # not better (a tie keeps the earlier best)
    step = curve.steps[-1]
    folder = os.path.join(model_dir, BEST_DIR)
    stale = tf.io.gfile.glob(os.path.join(folder, "ckpt-*")) if tf.io.gfile.exists(folder) else []
    controller.checkpoint_manager.checkpoint.write(_best_prefix(model_dir, step))
    for name in stale:  # only after the new best is written: a crash keeps one whole copy
        if not os.path.basename(name).startswith(f"ckpt-{step}."):
            tf.io.gfile.remove(name)


def _restore_best(controller, global_step, model_dir: str, curve, path: str) -> Optional[dict]:
    """Ends the run with its best evaluation's weights (`trainer.restore_best`); None when the last is the best.

    The weights are read back from model_dir/best/, the step counter keeps the
    steps trained, and the run's final checkpoint is rewritten with them, so
    every later reader of `model_dir` (evaluation, export, the study) sees the
    best model; ``learning_curve.json`` records ``restored_best_step``.
    """
    done = int(global_step.numpy())
    best = curve.steps[min(range(len(curve.losses)), key=lambda i: (curve.losses[i], curve.steps[i]))]
    with open(path, encoding="utf-8") as file:
        saved = json.load(file)
    if best == done or saved.get("restored_best_step") == best:
        return None
    prefix = _best_prefix(model_dir, best)
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(f"trainer.restore_best: the best evaluation's weights (step {best}) are missing: "
                                f"{prefix}.index; rerun the run from scratch (delete {model_dir}).")
    manager = controller.checkpoint_manager
    manager.checkpoint.read(prefix).assert_existing_objects_matched()
    global_step.assign(done)
    # Over the final checkpoint (TensorFlow writes a checkpoint to temporary files and renames
    # them); the manager itself declines a second save at the same step.
    final = manager.latest_checkpoint
    if final is None or not final.endswith(f"-{done}"):
        manager.save(checkpoint_number=done, check_interval=False)
    else:
        manager.checkpoint.write(final)
    saved["restored_best_step"] = int(best)
    atomic_write_text(path, json.dumps(saved, indent=1))
    return controller.evaluate(steps=-1)


def run_pretraining(
    config: ExperimentConfig,
    model_dir: str,
    mode: str = "train_and_eval",
    strategy: Optional[tf.distribute.Strategy] = None,
    log=None,
) -> dict:
    """Trains and/or evaluates a masked-LM experiment in `model_dir`. Returns the last eval metrics."""
    strategy, model_dir = prepare_run(config, model_dir, strategy)
    inputs = build_mlm_inputs(config.data, model_dir, config.runtime.seed)
    eval_batches = inputs.eval_batches()
    spec = TaskSpec(
        languages=inputs.languages,
        build_model=lambda: build_model(config, inputs.languages, inputs.vocab_size),
        output_name=MASKED_LM_LOGITS,
        example_losses=mlm_losses,
        example_metrics=masked_lm_example_metrics,
        train_dataset_fn=lambda skip, paired: inputs.train_dataset_fn(paired=paired, skip_batches=skip),
        eval_batches=eval_batches,
        meta_dataset_fn=lambda skip: inputs.meta_dataset_fn(skip_batches=skip),
        mixture=inputs.sampling_probabilities(),
        accuracy_baselines=lambda: inputs.accuracy_baselines(eval_batches),
    )
    return run_task(config, model_dir, mode, strategy, spec, log)
