"""The paper's comparison on any corpus: Mono, JointPair, JointAll, +LS, +Meta LS, every seed.

`ComparisonStudy(config, output_dir)` runs (or resumes) the study a
`StudyConfig` describes. The corpus is the built-in one, the user's directory
or synthetic languages; the study asks the `Corpus` for text and tasks and
never branches on its kind. Everything is read and checked before the first
run, so bad input stops the study before anything is written. The pieces:
`plan` (which runs, each run's config), `runner` (worker processes, resume),
`evaluation` (every figure of a run), `results` (gathering the runs),
`report` (tables, verdicts, interference report), `study_directory` (the
output directory and its ``study.yaml``).

All runs of a pretraining study share one WordPiece vocabulary, learned once
from the training text with language-balanced counts. A fine-tuning study
(``run.finetune.init_preset``: a keras-hub preset directory, or ``builtin``,
the built-in 4-bit multilingual-e5-small) fine-tunes JointAll, +LS and
+Meta LS from that encoder on the corpus's classification task in the pivot
language and tests them zero-shot on every other language.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from typing import Optional

import yaml

from tf_metaling.configs import ExperimentConfig, StudyConfig, VARIANT_TITLES, validate_study
from tf_metaling.data.corpora.corpus import load_corpus
from tf_metaling.data.tasks import balanced_test
from tf_metaling.data.text_reader import TextLineReader
from tf_metaling.tokenizers import WordPieceTokenizer
from tf_metaling.study import runner
from tf_metaling.study.evaluation.evaluate_run import StudyTasks, evaluate_run, evaluation_settings, run_convergence
from tf_metaling.study.evaluation.tagging import fine_tuned_tagger_records
from tf_metaling.study.plan import PlannedRun, planned_runs, run_config, run_cost
from tf_metaling.study.report import write_report
from tf_metaling.study.results import SCRATCH, study_results
from tf_metaling.study.study_directory import StudyDirectory, config_differences
from tf_metaling.training.experiment import CONFIG_FILE, config_as_yaml, run_pretraining
from tf_metaling.training.finetuning import run_finetuning


class ComparisonStudy:
    """Runs (or resumes) the study `config` in `output_dir` and reports it.

    Args:
        config: the `StudyConfig`.
        output_dir: the study's directory (`study_directory`).
        mono_languages: the languages whose Mono runs this study trains (None: all).
        log: where progress goes (default stdout).
        allow_config_change: continue in a directory whose ``study.yaml`` differs.
    """

    def __init__(self, config: StudyConfig, output_dir: str, mono_languages: Optional[tuple] = None, log=None,
                 allow_config_change: bool = False):
        self.directory = StudyDirectory(output_dir)
        self.output_dir = self.directory.root
        self.mono_languages = tuple(mono_languages) if mono_languages is not None else None
        self.allow_config_change = allow_config_change
        self.log = log or sys.stdout
        validate_study(config)
        self.corpus = load_corpus(config.run.data, config.run.runtime.seed, log=self._print)
        if not config.run.data.languages:  # every language of the corpus: the saved config names them
            config = copy.deepcopy(config)
            config.run.data.languages = list(self.corpus.languages)
        self.config = validate_study(config)
        self.languages = list(config.run.data.languages)
        if "joint_pair" in config.variants and config.pivot not in self.languages:
            raise ValueError(f"The study's pivot {config.pivot!r} (the JointPair partner) is not among the languages "
                             f"{self.languages}; set the study's pivot (--pivot).")
        self.groups = {group: [c for c in codes if c in self.languages] for group, codes in self.corpus.groups.items()}
        self.tasks = self._load_tasks()

    def _load_tasks(self) -> StudyTasks:
        config = self.config
        classification = {name: balanced_test(task)
                          for name, task in self.corpus.classification_tasks(config.pivot).items()}
        tagging = {} if config.finetuning else {
            name: task for name, task in self.corpus.tagging_tasks().items()
            if any(code in self.languages for code in task.train)}
        finetune_task = ""
        if config.finetuning:
            finetune_task = config.evaluation.finetune_task or next(iter(classification), "")
            if finetune_task not in classification:
                raise ValueError(
                    f"study field evaluation.finetune_task={finetune_task!r}: the {self.corpus.describe()} has the "
                    f"classification tasks {sorted(classification)} with {config.pivot!r} training examples.")
            classification = {finetune_task: classification[finetune_task]}
        return StudyTasks(retrieval=config.evaluation.retrieval, classification=classification, tagging=tagging,
                          finetune_task=finetune_task)

    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    def worker_arguments(self) -> tuple:
        """What rebuilds this study in a worker process (`runner`)."""
        return (self.config, self.output_dir, self.mono_languages)

    # ------------------------------------------------------------------ running
    def shared_vocabulary(self) -> str:
        """Learns (once) the study's shared vocabulary and returns its path ("" when fine-tuning a preset)."""
        if self.config.finetuning:
            return ""  # the preset's own tokenizer
        path = os.path.join(self.output_dir, "vocab.txt")
        if not os.path.exists(path):
            data = self.config.run.data
            tokenizer = self.corpus.fixed_tokenizer()
            if tokenizer is None:
                self._print(f"Learning the study's shared vocabulary ({data.vocab_size} pieces, "
                            f"{len(self.languages)} languages) ...")
                sources = {c: s for c, s in self.corpus.text_sources("train").items() if c in self.languages}
                tokenizer = WordPieceTokenizer.train(
                    {code: s if isinstance(s, (list, tuple)) else TextLineReader(s, code) for code, s in sources.items()},
                    vocab_size=data.vocab_size, alpha=data.sampling_alpha,
                    seed=self.config.run.runtime.seed, max_sentences_per_language=20000,
                )
            tokenizer.save(path)
        return path

    def run_config(self, run: PlannedRun):
        return run_config(self.config, self.languages, run, self.shared_vocabulary())

    def prepare(self) -> None:
        """Before the first run: the saved configuration checked (or written), the vocabulary learned."""
        self.directory.claim(self.config, self.allow_config_change)
        self.shared_vocabulary()

    def pending_runs(self) -> list:
        """``[(run, cost)]`` still to train, in order (a finished run is reported and skipped).

        A run counts as finished when its ``results.json`` holds figures made with
        this study's evaluation settings; a trained run evaluated with other
        settings is evaluated again, not retrained.
        """
        runs = planned_runs(self.config, self.languages, self.mono_languages)
        self._print(f"{len(runs)} runs ({', '.join(VARIANT_TITLES[v] for v in self.config.variants)}; "
                    f"seeds {', '.join(map(str, self.config.seeds))}) on the {self.corpus.describe()}")
        pending = []
        for index, run in enumerate(runs, 1):
            config = self.run_config(run)
            saved = self.directory.read_results(run.variant, run.language, run.seed)
            if saved is not None:
                self._check_finished_run(self.directory.run_dir(run.variant, run.language, run.seed), config)
                if saved.get("evaluation") == evaluation_settings(self.config):
                    self._print(f"[{index}/{len(runs)}] {run.name}: finished earlier, skipped")
                    continue
            pending.append((run, run_cost(self.config, config)))
        return pending

    def run_one(self, run: PlannedRun) -> float:
        """Trains and evaluates one run; writes its ``results.json``; returns its seconds."""
        run_dir = self.directory.run_dir(run.variant, run.language, run.seed)
        config = self.run_config(run)
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            # Orbit prints its own progress; the study prints one line per run.
            self.train(config, run_dir, quiet)
            results = evaluate_run(run_dir, config, self.config, self.corpus, self.tasks)
            results.update(run_convergence(run_dir, results["records"].get("mlm_accuracy")))
        results["seconds"] = time.perf_counter() - started
        self.directory.write_results(run.variant, run.language, run.seed, results)
        return results["seconds"]

    def train(self, config, run_dir, log):
        """Pretrains one run (masked LM), or fine-tunes the preset on the pivot's classification task."""
        if not self.config.finetuning:
            # train_and_eval: held-out loss every eval_interval steps (the run's learning curve),
            # and an early stop at a plateau with trainer.plateau_patience.
            run_pretraining(config, run_dir, "train_and_eval", log=log)
            return
        task = self.tasks.classification[self.tasks.finetune_task]
        # The meta step's held-out batches: the task's validation examples of every language.
        meta = {code: examples for code, examples in task.valid.items() if code in self.languages}
        run_finetuning(config, run_dir, "train", log=log, task_data=(task.label_names, task.train, {}, meta))

    def after_runs(self):
        """Per seed, every tagging task fine-tuned from random weights (JointAll's architecture, no LS)."""
        if not self.tasks.tagging or "joint_all" not in self.config.variants or self.config.finetuning:
            return
        for seed in self.config.seeds:
            if self.directory.read_results("joint_all", None, seed) is None:
                continue
            saved = self.directory.read_results(SCRATCH, None, seed)
            if saved is not None and saved.get("evaluation") == evaluation_settings(self.config):
                continue
            started = time.perf_counter()
            config = self.run_config(PlannedRun("joint_all", None, seed))
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                records = fine_tuned_tagger_records(
                    self.directory.run_dir("joint_all", None, seed), config,
                    self.directory.run_dir(SCRATCH, None, seed), self.tasks.tagging, self.languages,
                    self.config.evaluation, from_scratch=True)
            results = {"records": records, "seconds": time.perf_counter() - started,
                       "evaluation": evaluation_settings(self.config)}
            self.directory.write_results(SCRATCH, None, seed, results)
            self._print(f"[scratch] seed{seed}: taggers without pretraining done in "
                        f"{runner.format_seconds(results['seconds'])}")

    def run(self) -> dict:
        """Trains (or resumes) the study's runs, `config.workers` at a time, and collects the results."""
        return runner.run_studies([self], self.config.workers, log=self.log)[0]

    def collect(self) -> dict:
        return study_results(self)

    def report(self, results: dict) -> dict:
        """Prints and writes the tables and the interference report (`report.write_report`)."""
        return write_report(self, results, log=self.log)

    def _check_finished_run(self, run_dir, config):
        """A finished run counts only if it was trained with the config the study would use now."""
        path = os.path.join(run_dir, CONFIG_FILE)
        with open(path, encoding="utf-8") as file:
            saved = yaml.safe_load(file)
        changed = config_differences(saved, yaml.safe_load(config_as_yaml(config)), ignore=(),
                                     defaults=yaml.safe_load(config_as_yaml(ExperimentConfig())))
        if changed:
            raise ValueError(
                f"{path}: this finished run was trained with a different config than the study now "
                f"asks for (changed: {', '.join(changed)}); use a new --output_dir "
                "or remove the run's directory to retrain it."
            )
