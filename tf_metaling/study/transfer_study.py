"""Cross-lingual transfer on a pretrained encoder: LS layers per language, English task, zero-shot swap.

The protocol of the paper's claim (f) and of MAD-X, with its baselines in one
table (``transfer.enabled`` in a `StudyConfig`; `TransferConfig` has the sizes):

1. **Stage 1** (`tf_metaling.training.language_pretraining`): the
   pretrained encoder stays frozen. ``reference``: a masked-LM head trained on
   it alone, LS layers at the identity (once, with the first seed: it is the
   common start). ``joint_all_ls`` / ``joint_all_meta_ls``, per seed:
   from the reference's head, every language's LS layers (and the head) trained
   by MLM on that language's text, as +LS and as +Meta LS, with the same data,
   steps and trained weights. Each run's held-out MLM loss per language, its
   convergence and its time are reported.
2. **Stage 2, strictly zero-shot**: a class-balanced logistic-regression head
   (scikit-learn; L2 strength by cross-validation) on the mean-pooled output of
   the stage-1 model, trained on English examples only, with the English LS
   layers; every target language is then tested with ITS OWN LS layers swapped
   in (row +LS / +Meta LS) and, as a control, with English's (row "no swap").
   No label of a target language is read anywhere: the test labels only score.
3. **Baselines, same examples and tokens**: the majority class; the probe on
   the frozen encoder (the same head on the encoder alone); JointAll, every
   weight fine-tuned on the English examples (class-balanced; steps and
   learning rate chosen on the English validation split).

Every row is accuracy on the balanced test (chance 1/classes) with a 95% t CI
over seeds and each class's share of the predictions, so a collapse to one
class shows. Verdict (f) per task and language: +Meta LS minus +LS, paired by
seed, from converged stage-1 runs only. Also X -> en retrieval with each
model's LS layers. Outputs: ``transfer.md``, ``transfer.json`` and each seed's
``runs/evaluation/seed<k>.json`` (reruns skip what is finished).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time

import numpy as np

from tf_metaling import checkpoints
from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import StudyConfig, validate_study
from tf_metaling.data.corpora.corpus import load_corpus
from tf_metaling.data.tasks import balanced_test
from tf_metaling.study.evaluation.classification import classifier_predictions
from tf_metaling.study.evaluation.embeddings import SharedPrefix, centered, sentence_embeddings
from tf_metaling.study.evaluation.evaluate_run import run_convergence
from tf_metaling.study.evaluation.linear_head import LinearHead, predictions_summary
from tf_metaling.study.evaluation.retrieval import retrieval_records
from tf_metaling.study.evaluation.tagging import tagging_records
from tf_metaling.study.runner import format_seconds
from tf_metaling.study.study_directory import StudyDirectory
from tf_metaling.study.transfer_report import LS_VARIANTS, REFERENCE, TITLES, write_transfer_report
from tf_metaling.training.experiment import EVAL_RESULTS_FILE, LEARNING_CURVE_FILE
from tf_metaling.training.finetuning import run_finetuning
from tf_metaling.training.language_pretraining import run_language_pretraining

class TransferStudy:
    """Runs the transfer protocol of `config` into `output_dir`; ``report(run())`` writes the table and verdicts."""

    def __init__(self, config: StudyConfig, output_dir: str, log=None, allow_config_change: bool = False,
                 corpus=None):
        self.directory = StudyDirectory(output_dir)
        self.output_dir = self.directory.root
        self.log = log or sys.stdout
        self.allow_config_change = allow_config_change
        validate_study(config)
        self.corpus = corpus if corpus is not None else load_corpus(config.run.data, config.run.runtime.seed,
                                                                    log=self._print)
        if not config.run.data.languages:
            config = copy.deepcopy(config)
            config.run.data.languages = list(self.corpus.languages)
        self.config = validate_study(config)
        self.languages = list(config.run.data.languages)
        self.pivot = config.pivot
        if self.pivot not in self.languages:
            raise ValueError(f"study field pivot: {self.pivot!r} (the task's training language) is not among the "
                             f"languages {self.languages}.")
        self.tasks = {name: balanced_test(task, config.transfer.test_per_class or None)
                      for name, task in self.corpus.classification_tasks(self.pivot).items()}
        self._reference = {}  # the reference model and its features: the same for every seed
        self._prefix = SharedPrefix()  # hidden states below the LS blocks: the same for every model
        if not self.tasks:
            raise ValueError(f"The {self.corpus.describe()} has no classification task with {self.pivot!r} "
                             "training examples: the transfer protocol needs one.")
        self.variants = [v for v in config.variants if v in ("joint_all",) + LS_VARIANTS]

    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    # ------------------------------------------------------------------ runs
    @property
    def reference_seed(self) -> int:
        """The reference is trained once (the first seed's); every seed's LS runs start from its head."""
        return self.config.seeds[0]

    def run_dir(self, name: str, seed: int) -> str:
        return os.path.join(self.output_dir, "runs", name, f"seed{seed}")

    def stage1_config(self, name: str, seed: int):
        """The stage-1 run `name` (reference, +LS, +Meta LS) of `seed`."""
        run = copy.deepcopy(self.config.run)
        run.task = "mlm"
        run.runtime.seed = seed
        run.meta.enabled = name == "joint_all_meta_ls"
        run.model.language_specific = self.config.ls_kind
        if name == REFERENCE:
            run.finetune.train_weights = "heads"
            run.trainer.train_steps = self.config.transfer.head_steps
            run.trainer.checkpoint_interval = self.config.transfer.head_steps
        else:
            run.finetune.train_weights = "language_specific_and_heads"
            run.finetune.init_model_dir = self.run_dir(REFERENCE, self.reference_seed)
        run.trainer.warmup_steps = min(run.trainer.warmup_steps, run.trainer.train_steps // 10)
        run.trainer.max_to_keep = 1  # the frozen encoder is in every checkpoint
        return run

    def _train_stage1(self, name: str, seed: int) -> dict:
        run_dir = self.run_dir(name, seed)
        results_path = os.path.join(run_dir, EVAL_RESULTS_FILE)
        timing_path = os.path.join(run_dir, "seconds.json")
        if os.path.exists(results_path) and os.path.exists(timing_path):
            self._print(f"  {TITLES.get(name, name)} seed {seed}: finished earlier, skipped")
        else:
            started = time.perf_counter()
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                run_language_pretraining(self.stage1_config(name, seed), run_dir, corpus=self.corpus)
            seconds = time.perf_counter() - started
            atomic_write_text(timing_path, json.dumps({"seconds": seconds}))
            self._print(f"  {TITLES.get(name, name)} seed {seed}: stage 1 trained in {format_seconds(seconds)}")
        with open(results_path, encoding="utf-8") as file:
            metrics = json.load(file)
        with open(timing_path, encoding="utf-8") as file:
            seconds = json.load(file)["seconds"]
        convergence = run_convergence(run_dir).get("convergence", {})
        return {"loss": {code: metrics.get(f"loss/{code}") for code in self.languages},
                "step": metrics.get("step"), "seconds": seconds, "convergence": convergence}

    def _english_examples(self, task, seed: int) -> list:
        """The English training examples of every stage-2 head and of JointAll (a seeded subsample)."""
        examples = list(task.train)
        limit = self.config.transfer.classification_train
        if len(examples) > limit:
            chosen = np.random.RandomState(seed).choice(len(examples), limit, replace=False)
            examples = [examples[i] for i in sorted(chosen)]
        return examples

    def evaluate_seed(self, seed: int) -> dict:
        """Stage 1, stage 2, baselines and retrieval of one seed (`runs/evaluation/seed<k>.json`)."""
        path = os.path.join(self.output_dir, "runs", "evaluation", f"seed{seed}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                self._print(f"seed {seed}: evaluated earlier, skipped")
                return json.load(file)
        self._print(f"seed {seed}:")
        stage1 = {REFERENCE: self._train_stage1(REFERENCE, self.reference_seed)}
        for variant in self.variants:
            if variant in LS_VARIANTS:
                stage1[variant] = self._train_stage1(variant, seed)
        if "model" not in self._reference:
            self._reference["model"] = checkpoints.restore_model(self.run_dir(REFERENCE, self.reference_seed))
        models = {name: self._reference["model"] if name == REFERENCE else checkpoints.restore_model(
            self.run_dir(name, seed)) for name in stage1}
        if "tokenizer" not in self._reference:
            self._reference["tokenizer"] = checkpoints.load_tokenizer(
                checkpoints.vocab_path(self.run_dir(REFERENCE, self.reference_seed)))
        tokenizer = self._reference["tokenizer"]
        length = self.config.transfer.task_sequence_length
        classification = {}
        for task_name, task in self.tasks.items():
            started = time.perf_counter()
            classification[task_name] = self.zero_shot_rows(models, tokenizer, task, seed)
            if "joint_all" in self.variants:
                classification[task_name]["joint_all"] = self.joint_all_row(task, seed)
            self._print(f"  {task_name}: zero-shot rows in {format_seconds(time.perf_counter() - started)}")
        retrieval = {}
        if self.config.evaluation.retrieval:
            for name, model in models.items():
                records = retrieval_records(model, tokenizer, self.corpus, length, self.pivot,
                                            self.config.evaluation.retrieval_pairs)
                retrieval[name] = {code: r["value"] for code, r in records.items()}
        tagging = self.tagging_rows(seed) if self.config.transfer.tagging_steps else {}
        results = {"seed": seed, "stage1": stage1, "classification": classification, "retrieval": retrieval,
                   "tagging": tagging}
        atomic_write_text(path, json.dumps(results, indent=1))
        return results

    def zero_shot_rows(self, models: dict, tokenizer, task, seed: int) -> dict:
        """``{row: {language: predictions summary}}``: majority, probe, +LS and +Meta LS with and without the swap.

        Reads the labels of the English training examples and, to score, of the
        test sets: nothing else (no target-language training or validation label).
        """
        config = self.config.transfer
        labels = list(task.label_names)
        english = self._english_examples(task, seed)
        targets = np.array([labels.index(e.label) for e in english])
        length = config.task_sequence_length
        rows = {}
        majority = int(np.bincount(targets, minlength=len(labels)).argmax())
        tests = {code: examples for code, examples in task.test.items() if code in self.languages}
        rows["majority"] = {code: predictions_summary(np.full(len(ex), majority), ex, labels)
                            for code, ex in tests.items()}

        def features(model, examples, language):
            texts = tuple(e.text for e in examples)
            key = (texts, language)
            if model is self._reference.get("model") and key in self._reference:
                return self._reference[key]
            values = centered(sentence_embeddings(model, tokenizer, list(texts), language, length,
                                                  shared_prefix=self._prefix), config.center_languages)
            if model is self._reference.get("model"):
                self._reference[key] = values
            return values

        heads = {"probe": REFERENCE, **{v: v for v in models if v in LS_VARIANTS}}
        for row, run in heads.items():
            model = models[run]
            head = LinearHead(config.probe_cs, config.probe_folds, seed).fit(features(model, english, self.pivot),
                                                                             targets)
            rows[row] = {}
            for code, examples in tests.items():
                rows[row][code] = predictions_summary(head.predict(features(model, examples, code)), examples, labels,
                                                      chosen_c=head.chosen_c)
            if row in LS_VARIANTS:  # the control: English's LS layers for every language
                rows[f"{row}:no_swap"] = {
                    code: rows[row][code] if code == self.pivot else predictions_summary(
                        head.predict(features(model, examples, self.pivot)), examples, labels, chosen_c=head.chosen_c)
                    for code, examples in tests.items()}
        return rows

    def joint_all_row(self, task, seed: int) -> dict:
        """JointAll: every weight fine-tuned on the English examples, class-balanced, with its own head.

        One run per learning rate of ``transfer.finetune_learning_rates``; each
        evaluates on the English validation split every
        ``finetune_eval_interval`` steps and ends with its best evaluation's
        weights (the steps chosen there); the rate with the lowest English
        validation loss is the row.
        """
        config = self.config.transfer
        labels = list(task.label_names)
        english = self._english_examples(task, seed)
        development = {self.pivot: list(task.valid.get(self.pivot, []))}
        if not development[self.pivot]:
            raise ValueError(f"task {task.name}: no {self.pivot!r} validation examples to choose JointAll's steps on.")
        chosen = None
        for rate in config.finetune_learning_rates:
            run_dir = os.path.join(self.run_dir("joint_all", seed), f"{task.name}-lr{rate:g}")
            results_path = os.path.join(run_dir, EVAL_RESULTS_FILE)
            if not os.path.exists(results_path):
                started = time.perf_counter()
                with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                    run_finetuning(self.joint_all_config(task, seed, rate), run_dir, "train_and_eval",
                                   task_data=(labels, english, development))
                self._print(f"  JointAll {task.name} lr {rate:g} seed {seed}: fine-tuned in "
                            f"{format_seconds(time.perf_counter() - started)}")
            with open(results_path, encoding="utf-8") as file:
                loss = json.load(file)[f"loss/{self.pivot}"]
            if chosen is None or loss < chosen[0]:
                chosen = (loss, rate, run_dir)
        _, rate, run_dir = chosen
        model = checkpoints.restore_model(run_dir)
        tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(run_dir))
        with open(os.path.join(run_dir, LEARNING_CURVE_FILE), encoding="utf-8") as file:
            curve = json.load(file)
        step = curve.get("restored_best_step") or (curve["steps"][-1] if curve["steps"] else None)
        return {code: predictions_summary(classifier_predictions(model, tokenizer, examples, labels,
                                                                 config.task_sequence_length),
                                          examples, labels, learning_rate=rate, step=step)
                for code, examples in task.test.items() if code in self.languages}

    def tagging_rows(self, seed: int) -> dict:
        """``{task: {"pretrained" | "scratch": {language: accuracy}}}``: in-language taggers, same data and steps.

        "pretrained": the encoder frozen, a token head trained on it; "scratch":
        the same architecture and tokenizer from random weights, every weight
        trained (at ``transfer.tagging_scratch_learning_rate``).
        """
        config, evaluation = self.config.transfer, self.config.evaluation
        rows = {}
        for name, task in self.corpus.tagging_tasks().items():
            for code in [c for c in task.train if c in self.languages]:
                for row, scratch in (("pretrained", False), ("scratch", True)):
                    run_dir = os.path.join(self.run_dir(f"tagging-{row}", seed), f"{name}-{code}")
                    run = self._finetune_config(
                        "token_classification", seed, steps=config.tagging_steps,
                        learning_rate=(config.tagging_scratch_learning_rate if scratch
                                       else evaluation.tagging_learning_rate),
                        batch_size=evaluation.tagging_batch_size, eval_interval=config.tagging_steps)
                    run.finetune.from_scratch = scratch
                    run.finetune.train_weights = "all" if scratch else "heads"
                    run.finetune.train_language = code
                    run.trainer.restore_best = False
                    run.trainer.plateau_patience = 0
                    if checkpoints.latest_checkpoint(run_dir) is None:
                        started = time.perf_counter()
                        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                            run_finetuning(run, run_dir, "train", log=quiet,
                                           task_data=(task.label_names, task.train[code], {}))
                        self._print(f"  {name} {code} {row} seed {seed}: tagger trained in "
                                    f"{format_seconds(time.perf_counter() - started)}")
                    tagger = checkpoints.restore_model(run_dir)
                    tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(run_dir))
                    record = tagging_records(tagger, tokenizer, task, code, config.task_sequence_length)
                    rows.setdefault(name, {}).setdefault(row, {})[code] = {
                        "value": record["value"], "baseline": record["baseline"]}
        return rows

    def joint_all_config(self, task, seed: int, rate: float):
        config = self.config.transfer
        run = self._finetune_config("sentence_classification", seed, steps=config.finetune_steps, learning_rate=rate,
                                    batch_size=config.finetune_batch_size, eval_interval=config.finetune_eval_interval)
        run.finetune.train_weights = "all"
        run.finetune.class_balanced = True
        run.finetune.dataset = task.name
        run.finetune.train_language = self.pivot
        run.trainer.restore_best = True
        run.trainer.plateau_patience = 3
        return run

    def _finetune_config(self, task: str, seed: int, steps: int, learning_rate: float, batch_size: int,
                         eval_interval: int):
        """A fine-tune of the preset without LS layers (JointAll, the taggers): the run's settings, these sizes."""
        run = copy.deepcopy(self.config.run)
        run.task = task
        run.runtime.seed = seed
        run.meta.enabled = False
        run.model.language_specific = "none"
        run.model.language_specific_layers = []
        run.data.sequence_length = self.config.transfer.task_sequence_length
        run.data.batch_size = batch_size
        run.finetune.init_model_dir = ""
        trainer = run.trainer
        trainer.train_steps, trainer.learning_rate, trainer.warmup_steps = steps, learning_rate, steps // 10
        trainer.eval_interval = trainer.steps_per_loop = trainer.summary_interval = eval_interval
        trainer.checkpoint_interval = steps
        trainer.max_to_keep = 1  # a fine-tuned encoder with its Adam state is 1.4 GB a checkpoint (e5-small)
        trainer.probe_interval = 0
        return run

    # ------------------------------------------------------------------ whole study
    def run(self) -> dict:
        self.directory.claim(self.config, self.allow_config_change)
        self._print(f"Transfer protocol on {self.config.run.finetune.init_preset}: languages "
                    f"{', '.join(self.languages)}; tasks {', '.join(self.tasks)}; seeds "
                    f"{', '.join(map(str, self.config.seeds))}")
        started = time.perf_counter()
        per_seed = [self.evaluate_seed(seed) for seed in self.config.seeds]
        return {"seeds": per_seed, "seconds": time.perf_counter() - started}

    def report(self, collected: dict) -> dict:
        return write_transfer_report(self, collected)


__all__ = ["TransferStudy"]
