"""The paper's comparison on any corpus: Mono, JointPair, JointAll, +LS, +Meta LS.

For each seed the study trains and evaluates:

- Mono: one model per language;
- JointPair: the pivot (English by default) + X, for every other language X
  (the pivot's JointPair figure pools its pairs);
- JointAll, JointAll+LS, JointAll+Meta LS: one model on all languages.

The corpus is the built-in one, the user's directory (``StudyPlan.corpus_dir``,
see `tf_metaling.data.corpora.directory_corpus`) or synthetic languages; the
study asks the `Corpus` for text and tasks and never branches on its kind.
Everything is read and checked before the first run, so bad input stops the
study before anything is written.

Training budget (`StudyPlan.budget`). With ``"per_language"`` (the default)
a run over n languages trains n times the base experiment's steps (its
warmup, checkpoint, evaluation and probe intervals scale with it), so every
language gets about as many training batches in a joint model as in its Mono
run: a joint model doing worse is then interference, not a smaller share of
the same budget. ``"total"`` gives every run the same number of steps.

All runs share one WordPiece vocabulary, learned once from the training text
with language-balanced counts. Each run is a `run_pretraining` in
``<output_dir>/runs/<variant>[-<language>]/seed<k>``; a run whose
``results.json`` exists is finished and is not trained again.

Per run and language, example by example (so every figure gets a 95% CI,
`tf_metaling.estimates`): held-out MLM loss and masked-token accuracy (beside
the most-frequent-token baseline), X -> pivot retrieval accuracy@1 (beside
1/N), zero-shot classification of a pivot-trained probe (beside the majority
class), and every tagging task of the corpus fine-tuned in-language (beside
the majority tag and a tagger of the same size trained from scratch). The
study prints the tables (`study_table`), writes them as Markdown and the
results as JSON, and writes the interference report.

Fine-tuning comparison. When the base experiment has ``finetune.init_preset``
(a keras-hub preset directory, or ``builtin``: the built-in 4-bit
multilingual-e5-small), the variants JointAll, +LS and +Meta LS are fine-tuned
from that pretrained encoder on the corpus's classification task in the pivot
language (`StudyPlan.finetune_task`), and tested zero-shot on every other
language: the fine-tuned classifier's accuracy, and X -> pivot retrieval with
the fine-tuned encoder. The same runner, records, tables and CIs as above;
there is no masked-LM head and no tagging task (zero-shot tagging needs the
task in the pivot language).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import sys
import time
from typing import Optional

import yaml
from official.modeling import hyperparams

from tf_metaling import checkpoints, configs
from tf_metaling.data.tokenizer import Tokenizer
from tf_metaling.training import study_table
from tf_metaling.training.experiment import CONFIG_FILE, config_as_yaml, run_pretraining

VARIANT_TITLES = study_table.VARIANT_TITLES
RESULTS_FILE = "results.json"
BUDGETS = ("per_language", "total")
# Trainer fields that scale with a run's steps under the per-language budget.
SCALED_TRAINER_FIELDS = ("train_steps", "warmup_steps", "checkpoint_interval", "eval_interval", "probe_interval")
PIVOT = "en"
SCRATCH = "scratch"
FINETUNING_VARIANTS = ("joint_all", "joint_all_ls", "joint_all_meta_ls")


@dataclasses.dataclass
class StudyPlan:
    """What to run: the base experiment, corpus, variants, seeds and evaluation sizes."""

    experiment: str = "study_small"
    variants: tuple = configs.PAPER_VARIANTS
    seeds: tuple = (0, 1, 2)
    languages: Optional[tuple] = None  # default: the base experiment's (built-in) or the corpus's languages
    corpus_dir: Optional[str] = None  # the user's corpus directory (data.corpus=directory)
    pivot: str = PIVOT  # JointPair partner, retrieval target, classification training language
    ls_kind: str = "adapter"
    # "per_language": a run over n languages trains n x the base steps; "total": every run the same.
    budget: str = "per_language"
    retrieval: bool = True  # X -> pivot retrieval, where the corpus has aligned text
    retrieval_pairs: int = 300
    # "zero_shot": the probe is trained on the pivot and tested on every language;
    # "in_language": a probe per language, trained and tested in it.
    classification_protocol: str = "zero_shot"
    classification_train: int = 1500
    # Tagging tasks: fine-tuning steps, learning rate and batch size of every tagger (and of Scratch).
    tagging_steps: int = 300
    tagging_learning_rate: float = 1e-3
    tagging_batch_size: int = 32
    overrides: Optional[object] = None  # dict, YAML or "a.b=value,..." applied to every run
    # A keras-hub preset directory or "builtin": fine-tune it (finetune.init_preset) instead of pretraining.
    init_preset: Optional[str] = None
    finetune_task: Optional[str] = None  # the classification task fine-tuned on (default: the first)
    # The languages whose Mono runs this study trains (None: every language). The synthetic
    # control trains a Mono run once where several conditions would train the same one.
    mono_languages: Optional[tuple] = None
    # Runs trained at once, each in its own process with cpu_count / workers threads. On small
    # models one thread does a step as fast as two (measured on 2 cores), so 2 workers there
    # finish about twice the runs per hour. The figures do not depend on it.
    workers: int = 1


def _runs(plan: StudyPlan, languages) -> list:
    """``(variant, language or None, seed)`` in the order they are trained."""
    runs = []
    for seed in plan.seeds:
        for variant in plan.variants:
            if variant == "mono":
                runs += [(variant, code, seed) for code in languages
                         if plan.mono_languages is None or code in plan.mono_languages]
            elif variant == "joint_pair":
                runs += [(variant, code, seed) for code in languages if code != plan.pivot]
            else:
                runs.append((variant, None, seed))
    return runs


def run_name(variant, language, seed) -> str:
    return f"{variant}-{language}/seed{seed}" if language else f"{variant}/seed{seed}"


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclasses.dataclass
class _Run:
    """One run still to train: its study, identity, name and cost in Mono-run units."""

    study: "ComparisonStudy"
    variant: str
    language: Optional[str]
    seed: int
    name: str
    units: int


def run_studies(studies: list, workers: int = 1, log=None) -> list:
    """Trains every study's unfinished runs, `workers` at a time; returns each study's collected results.

    With ``workers > 1`` the runs (of all `studies` together, the costliest first)
    go to a pool of that many processes, each rebuilding its study from the
    plan and directory (`_train_in_worker`); a run's figures do not depend on
    where it ran. A failed run stops the rest and raises its error here.
    """
    log = log or sys.stdout
    say = lambda text: print(text, file=log, flush=True)  # noqa: E731
    if int(workers) < 1:
        raise ValueError(f"workers={workers}: expected a positive number of processes.")
    pending = []
    for study in studies:
        os.makedirs(study.output_dir, exist_ok=True)
        pending += study.pending_runs(study.shared_vocabulary())
    several = len(studies) > 1

    def label(run):
        return f"{os.path.basename(run.study.output_dir)}/{run.name}" if several else run.name

    total_units = sum(run.units for run in pending)
    started = time.perf_counter()
    state = {"done": 0, "units": 0}

    def finished(run, seconds):
        state["done"] += 1
        state["units"] += run.units
        elapsed = time.perf_counter() - started
        remaining = elapsed / max(state["units"], 1) * (total_units - state["units"])
        say(f"[{state['done']}/{len(pending)}] {label(run)}: done in {_format_seconds(seconds)}; "
            f"elapsed {_format_seconds(elapsed)}, about {_format_seconds(remaining)} to go")

    workers = min(int(workers), len(pending))
    if workers <= 1:
        for run in pending:
            finished(run, run.study.run_one(run.variant, run.language, run.seed))
    else:
        import concurrent.futures
        import multiprocessing

        say(f"{len(pending)} runs on {workers} worker processes")
        threads = max(1, (os.cpu_count() or 1) // workers)
        order = sorted(pending, key=lambda run: -run.units)  # the longest first: the pool ends together
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(_train_in_worker, run.study.plan, run.study.output_dir, run.variant,
                                   run.language, run.seed): run for run in order}
            try:
                for future in concurrent.futures.as_completed(futures):
                    finished(futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    for study in studies:
        study.run_scratch_taggers()
    return [study.collect() for study in studies]


_WORKER_STUDIES: dict = {}


def _start_worker(threads: int) -> None:
    """A worker process: TensorFlow's pooling CPU allocator, thread pools sized to its share of the cores.

    A worker trains run after run: `keep_iterators_alive` spares it the wait that
    deleting a finished run's training iterators can cost. It also ends with the
    study's process (`_exit_with_parent`).
    """
    from tf_metaling.cpu_allocator import use_pooled_cpu_allocator

    use_pooled_cpu_allocator()  # before the worker's first tensor
    import tensorflow as tf

    from tf_metaling.training.multilingual_trainer import keep_iterators_alive

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keep_iterators_alive()
    _exit_with_parent()


def _exit_with_parent() -> None:
    """Ends this process as soon as the process that started it is gone.

    A study killed with SIGTERM or SIGKILL (a scheduler's time limit, `kill`) runs no
    cleanup, and its pool workers would train on, each to the end of its run (minutes of
    both cores, seen on the control). A daemon thread waits on the parent's sentinel
    (readable once the parent has exited) and ends the worker; a run cut short this way
    leaves its last checkpoint, and the study resumes it when started again.
    """
    import multiprocessing.connection
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        raise RuntimeError("_exit_with_parent() is for worker processes (multiprocessing children).")

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _train_in_worker(plan: StudyPlan, output_dir: str, variant, language, seed) -> float:
    """In a worker process: one run of the study at `output_dir` (the study is built once per process)."""
    study = _WORKER_STUDIES.get(output_dir)
    if study is None:
        study = _WORKER_STUDIES[output_dir] = ComparisonStudy(plan, output_dir, log=open(os.devnull, "w"))
    return study.run_one(variant, language, seed)


class ComparisonStudy:
    """Runs (or resumes) the study in `output_dir` and reports it.

    The corpus and every task are loaded and checked here, before anything is
    written: bad input raises with file:line and leaves `output_dir` untouched.
    """

    def __init__(self, plan: StudyPlan, output_dir: str, log=None):
        from tf_metaling.data.corpora.corpus import load_corpus
        from tf_metaling.data.tasks import balanced_test

        self.plan = plan
        self.output_dir = os.path.abspath(output_dir)
        self.log = log or sys.stdout
        base = configs.get_experiment(plan.experiment)
        if plan.overrides:
            base = hyperparams.override_params_dict(base, plan.overrides, is_strict=True)
        if plan.corpus_dir:
            base = hyperparams.override_params_dict(
                base, {"data": {"corpus": "directory", "corpus_dir": os.path.abspath(plan.corpus_dir)}},
                is_strict=True,
            )
        if plan.init_preset:
            base = hyperparams.override_params_dict(base, {"finetune": {"init_preset": plan.init_preset}},
                                                    is_strict=True)
        self.finetuning = bool(base.finetune.init_preset)
        if self.finetuning:
            if base.task != "sentence_classification":
                raise ValueError(
                    f"experiment {plan.experiment!r}: fine-tuning a pretrained encoder (finetune.init_preset) "
                    f"needs a sentence_classification experiment (e.g. study_pretrained_demo), not task "
                    f"{base.task!r}.")
            wrong = [v for v in plan.variants if v not in FINETUNING_VARIANTS]
            if wrong:
                raise ValueError(
                    f"variants {wrong}: a pretrained encoder is fine-tuned as one model of all languages; "
                    f"choose from {list(FINETUNING_VARIANTS)}.")
        if plan.languages:
            base = hyperparams.override_params_dict(base, {"data": {"languages": list(plan.languages)}}, is_strict=True)
        elif base.data.corpus == "directory":
            base.data.languages = []  # every language of the directory
        if plan.budget not in BUDGETS:
            raise ValueError(f"StudyPlan.budget={plan.budget!r} is not one of {BUDGETS}.")
        self.corpus = load_corpus(base.data, base.runtime.seed, log=self._print)
        if not base.data.languages:
            base = hyperparams.override_params_dict(base, {"data": {"languages": list(self.corpus.languages)}},
                                                    is_strict=True)
        self.base = base
        self.languages = list(base.data.languages)
        if "joint_pair" in plan.variants and plan.pivot not in self.languages:
            raise ValueError(
                f"The study's pivot {plan.pivot!r} (the JointPair partner) is not among the languages "
                f"{self.languages}; set StudyPlan.pivot / --pivot."
            )
        self.groups = {group: [c for c in codes if c in self.languages] for group, codes in self.corpus.groups.items()}
        if plan.classification_protocol not in ("zero_shot", "in_language"):
            raise ValueError(f"StudyPlan.classification_protocol={plan.classification_protocol!r}: expected "
                             "'zero_shot' or 'in_language'.")
        self.retrieval = self.corpus.retrieval_sets(plan.pivot, max_pairs=plan.retrieval_pairs) if plan.retrieval \
            else {}
        self.classification = {name: balanced_test(task) for name, task in self.corpus.classification_tasks(plan.pivot).items()}
        self.tagging = {
            name: task for name, task in self.corpus.tagging_tasks().items()
            if any(code in self.languages for code in task.train)
        } if not self.finetuning else {}
        self.finetune_task = None
        if self.finetuning:
            name = plan.finetune_task or next(iter(self.classification), None)
            if name not in self.classification:
                raise ValueError(
                    f"StudyPlan.finetune_task={name!r}: the {self.corpus.describe()} has the classification "
                    f"tasks {sorted(self.classification)} with {plan.pivot!r} training examples.")
            self.finetune_task = name
            self.classification = {name: self.classification[name]}

    # ------------------------------------------------------------------ running
    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    def shared_vocabulary(self) -> str:
        """Learns (once) the study's shared vocabulary and returns its path ("" when fine-tuning a preset)."""
        if self.finetuning:
            return ""  # the preset's own tokenizer
        path = os.path.join(self.output_dir, "vocab.txt")
        if not os.path.exists(path):
            data = self.base.data
            tokenizer = self.corpus.fixed_tokenizer()
            if tokenizer is None:
                self._print(f"Learning the study's shared vocabulary ({data.vocab_size} pieces, "
                            f"{len(self.languages)} languages) ...")
                sources = {c: s for c, s in self.corpus.text_sources("train").items() if c in self.languages}
                tokenizer = Tokenizer.train(
                    {code: _sentences(source, code) for code, source in sources.items()},
                    vocab_size=data.vocab_size, alpha=data.sampling_alpha,
                    seed=self.base.runtime.seed, max_sentences_per_language=20000,
                )
            tokenizer.save(path)
        return path

    def config_for(self, variant, language, seed, vocab_file):
        overrides = configs.variant_overrides(variant, self.languages, language, self.plan.pivot, self.plan.ls_kind)
        overrides["runtime"] = {"seed": int(seed)}
        overrides["data"]["vocab_file"] = vocab_file
        if self.plan.budget == "per_language" and not self.finetuning:  # fine-tuning trains on the pivot only
            scale = len(overrides["data"]["languages"])
            overrides["trainer"] = {name: getattr(self.base.trainer, name) * scale for name in SCALED_TRAINER_FIELDS}
        # override_params_dict changes its argument in place: every run starts from a copy of the base.
        config = copy.deepcopy(self.base)
        return configs.validate(hyperparams.override_params_dict(config, overrides, is_strict=True))

    def pending_runs(self, vocab_file: str) -> list:
        """The runs still to train, in order, as `_Run`s (a finished run is reported and skipped).

        A run counts as finished when its ``results.json`` holds figures made with
        this study's evaluation settings; a trained run evaluated with other
        settings is evaluated again, not retrained.
        """
        runs = _runs(self.plan, self.languages)
        self._print(f"{len(runs)} runs ({', '.join(VARIANT_TITLES[v] for v in self.plan.variants)}; "
                    f"seeds {', '.join(map(str, self.plan.seeds))}) on the {self.corpus.describe()}")
        pending = []
        for index, (variant, language, seed) in enumerate(runs, 1):
            name = run_name(variant, language, seed)
            run_dir = os.path.join(self.output_dir, "runs", name)
            config = self.config_for(variant, language, seed, vocab_file)
            results_path = os.path.join(run_dir, RESULTS_FILE)
            if os.path.exists(results_path):
                self._check_finished_run(run_dir, config)
                with open(results_path, encoding="utf-8") as file:
                    if json.load(file).get("evaluation") == self.evaluation_settings():
                        self._print(f"[{index}/{len(runs)}] {name}: finished earlier, skipped")
                        continue
            # Cost in Mono-run units (its languages under the per-language budget; a meta step
            # costs about two ordinary ones): for the estimate and to start the longest runs first.
            units = (len(config.data.languages) if self.plan.budget == "per_language" and not self.finetuning
                     else 1) * (2 if config.meta.enabled else 1)
            pending.append(_Run(self, variant, language, seed, name, units))
        return pending

    def run_one(self, variant, language, seed) -> float:
        """Trains and evaluates one run; writes its ``results.json``; returns its seconds."""
        name = run_name(variant, language, seed)
        run_dir = os.path.join(self.output_dir, "runs", name)
        config = self.config_for(variant, language, seed, self.shared_vocabulary())
        run_started = time.perf_counter()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            # Orbit prints its own progress; the study prints one line per run.
            # "train": the held-out figures come from `evaluate`, example by example.
            self.train(config, run_dir, quiet)
            results = self.evaluate(run_dir, config)
            results.update(self.convergence(run_dir, results["records"].get("mlm_accuracy")))
        results["seconds"] = time.perf_counter() - run_started
        checkpoints.atomic_write_text(os.path.join(run_dir, RESULTS_FILE), json.dumps(results))
        return results["seconds"]

    def run(self) -> dict:
        """Trains (or resumes) the study's runs, `plan.workers` at a time, and collects the results."""
        return run_studies([self], self.plan.workers, log=self.log)[0]

    def train(self, config, run_dir, log):
        """Pretrains one run (masked LM), or fine-tunes the preset on the pivot's classification task."""
        if not self.finetuning:
            # train_and_eval: held-out loss every eval_interval steps (the run's learning curve),
            # and an early stop at a plateau with trainer.plateau_patience.
            run_pretraining(config, run_dir, "train_and_eval", log=log)
            return
        from tf_metaling.training.finetuning import run_finetuning

        task = self.classification[self.finetune_task]
        # The meta step's held-out batches: the task's validation examples of every language.
        meta = {code: examples for code, examples in task.valid.items() if code in self.languages}
        run_finetuning(config, run_dir, "train", log=log, task_data=(task.label_names, task.train, {}, meta))

    def run_scratch_taggers(self):
        """Per seed, every tagging task fine-tuned from random weights (JointAll's architecture, no LS)."""
        if not self.tagging or "joint_all" not in self.plan.variants or self.finetuning:
            return
        for seed in self.plan.seeds:
            run_dir = os.path.join(self.output_dir, "runs", SCRATCH, f"seed{seed}")
            joint = os.path.join(self.output_dir, "runs", run_name("joint_all", None, seed))
            if not os.path.exists(os.path.join(joint, RESULTS_FILE)):
                continue
            if os.path.exists(os.path.join(run_dir, RESULTS_FILE)):
                with open(os.path.join(run_dir, RESULTS_FILE), encoding="utf-8") as file:
                    if json.load(file).get("evaluation") == self.evaluation_settings():
                        continue
            started = time.perf_counter()
            config = self.config_for("joint_all", None, seed, self.shared_vocabulary())
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                records = self.tagging_records(joint, config, run_dir, from_scratch=True)
            results = {"records": records, "seconds": time.perf_counter() - started,
                       "evaluation": self.evaluation_settings()}
            checkpoints.atomic_write_text(os.path.join(run_dir, RESULTS_FILE), json.dumps(results))
            self._print(f"[scratch] seed{seed}: taggers without pretraining done in "
                        f"{_format_seconds(results['seconds'])}")

    def _check_finished_run(self, run_dir, config):
        """A finished run counts only if it was trained with the config the study would use now."""
        path = os.path.join(run_dir, CONFIG_FILE)
        with open(path, encoding="utf-8") as file:
            saved = yaml.safe_load(file)
        if saved != yaml.safe_load(config_as_yaml(config)):
            current = config.as_dict()
            changed = sorted(
                f"{section}.{key}" for section, values in current.items() if isinstance(values, dict)
                for key, value in values.items() if (saved.get(section) or {}).get(key) != value
            )
            raise ValueError(
                f"{path}: this finished run was trained with a different config than the study now "
                f"asks for (changed: {', '.join(changed) or 'top-level fields'}); use a new --output_dir "
                "or remove the run's directory to retrain it."
            )

    @staticmethod
    def convergence(run_dir, accuracy_records: Optional[dict] = None) -> dict:
        """The run's learning curve and `ConvergenceRule`'s verdict on it (empty without a curve).

        `accuracy_records`: ``{language: masked-token accuracy record}`` of the run; a
        language whose accuracy's 95% CI is not above its most-frequent-token baseline
        makes a flat curve "not converged (unigram plateau)".
        """
        from tf_metaling.estimates import example_estimate
        from tf_metaling.training.convergence import ConvergenceRule, LearningCurve
        from tf_metaling.training.experiment import LEARNING_CURVE_FILE

        path = os.path.join(run_dir, LEARNING_CURVE_FILE)
        if not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
        curve = LearningCurve(saved["steps"], saved["losses"])
        above_baseline = {}
        for code, record in (accuracy_records or {}).items():
            if record.get("baseline") is None:
                continue
            estimate = example_estimate(record)
            above_baseline[code] = bool(estimate.has_interval and estimate.low > record["baseline"])
        return {"curve": {**curve.as_dict(), "stopped_early": saved.get("stopped_early", False),
                          "train_steps": saved.get("train_steps"),
                          "restored_best_step": saved.get("restored_best_step")},
                "convergence": ConvergenceRule().check(curve, above_baseline).as_dict()}

    # ------------------------------------------------------------------ evaluation
    def evaluation_settings(self) -> dict:
        """What decides a run's figures besides its training config (stored with them)."""
        plan = self.plan
        return {
            "pivot": plan.pivot, "retrieval": plan.retrieval, "retrieval_pairs": plan.retrieval_pairs,
            "classification_protocol": plan.classification_protocol,
            "classification_train": plan.classification_train, "tagging_steps": plan.tagging_steps,
            "tagging_learning_rate": plan.tagging_learning_rate, "tagging_batch_size": plan.tagging_batch_size,
        }

    def evaluate(self, run_dir, config) -> dict:
        """Every figure of one run, example by example: ``{"records": {metric: {code: record}}}``."""
        from tf_metaling.training.mlm_inputs import build_mlm_inputs
        from tf_metaling.training.transfer_evaluation import classification_records, mlm_records, retrieval_records

        model = checkpoints.restore_model(run_dir)
        tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(run_dir))
        if self.corpus.synthetic is not None:  # each language's ids, as in pretraining
            from tf_metaling.data.synthetic import SyntheticTokenizer

            tokenizer = SyntheticTokenizer(tokenizer, self.corpus.synthetic, model.language_vocabulary.codes)
        length = config.data.sequence_length
        step = int(os.path.basename(checkpoints.latest_checkpoint(run_dir)).rsplit("-", 1)[1])
        if self.finetuning:
            return {"records": self.finetuned_records(model, tokenizer, length), "step": step,
                    "evaluation": self.evaluation_settings()}
        inputs = build_mlm_inputs(config.data, run_dir, config.runtime.seed, corpus=self.corpus)
        records = {}
        eval_batches = inputs.eval_batches()
        for code, metrics in mlm_records(model, eval_batches, inputs.accuracy_baselines(eval_batches)).items():
            for metric, record in metrics.items():
                records.setdefault(metric, {})[code] = record
        if self.retrieval:
            records["retrieval"] = retrieval_records(model, tokenizer, self.corpus, length, self.plan.pivot,
                                                     self.plan.retrieval_pairs)
        for name, task in self.classification.items():
            records[f"classification:{name}"] = classification_records(
                model, tokenizer, task, length, self.plan.classification_train, seed=config.runtime.seed,
                protocol=self.plan.classification_protocol)
        records.update(self.tagging_records(run_dir, config, os.path.join(run_dir, "taggers")))
        return {"records": records, "step": step, "evaluation": self.evaluation_settings()}

    def finetuned_records(self, model, tokenizer, length) -> dict:
        """A fine-tuned classifier: its accuracy in every language, and X -> pivot retrieval."""
        from tf_metaling.training.transfer_evaluation import finetuned_classification_records, retrieval_records

        task = self.classification[self.finetune_task]
        records = {f"finetuned:{self.finetune_task}": finetuned_classification_records(model, tokenizer, task, length)}
        if self.retrieval:
            records["retrieval"] = retrieval_records(model, tokenizer, self.corpus, length, self.plan.pivot,
                                                     self.plan.retrieval_pairs)
        return records

    def tagging_records(self, init_dir, config, output_dir, from_scratch=False) -> dict:
        """Fine-tunes a tagger per tagging task and language the model knows; their test records."""
        from tf_metaling.training.finetuning import run_finetuning
        from tf_metaling.training.transfer_evaluation import tagging_records

        known = checkpoints.build_model(init_dir).language_vocabulary
        records = {}
        for name, task in self.tagging.items():
            for code in task.train:
                if code not in known or code not in self.languages:
                    continue
                tagger_dir = os.path.join(output_dir, f"{name}-{code}")
                tagger_config = copy.deepcopy(config)
                tagger_config = hyperparams.override_params_dict(tagger_config, {
                    "task": "token_classification",
                    "meta": {"enabled": False},
                    "finetune": {"init_model_dir": init_dir, "train_language": code, "from_scratch": from_scratch},
                    "data": {"batch_size": self.plan.tagging_batch_size},
                    "trainer": {"train_steps": self.plan.tagging_steps, "warmup_steps": 0,
                                "learning_rate": self.plan.tagging_learning_rate, "probe_interval": 0,
                                "checkpoint_interval": self.plan.tagging_steps,
                                "eval_interval": self.plan.tagging_steps},
                }, is_strict=True)
                if from_scratch:
                    tagger_config.model.language_specific = "none"
                shutil.rmtree(tagger_dir, ignore_errors=True)  # a tagger of an earlier evaluation
                with open(os.devnull, "w") as quiet:
                    run_finetuning(tagger_config, tagger_dir, "train", log=quiet,
                                   task_data=(task.label_names, task.train[code], {}))
                tagger = checkpoints.restore_model(tagger_dir)
                tokenizer = checkpoints.load_tokenizer(checkpoints.vocab_path(tagger_dir))
                records.setdefault(f"tagging:{name}", {})[code] = tagging_records(
                    tagger, tokenizer, task, code, config.data.sequence_length)
        return records

    # ------------------------------------------------------------------ results
    def collect(self) -> dict:
        """The results JSON: ``records[metric][variant][code][seed]`` plus what the tables need."""
        records, reasons, trained = {}, {}, {}
        runs = _runs(self.plan, self.languages) + [(SCRATCH, None, seed) for seed in self.plan.seeds]
        for variant, language, seed in runs:
            name = f"{SCRATCH}/seed{seed}" if variant == SCRATCH else run_name(variant, language, seed)
            path = os.path.join(self.output_dir, "runs", name, RESULTS_FILE)
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as file:
                saved = json.load(file)
            results = saved["records"]
            if "curve" in saved:
                trained[name] = {"variant": variant, "language": language, "seed": seed, "step": saved.get("step"),
                                 "curve": saved["curve"], "convergence": saved["convergence"]}
            for metric, per_language in results.items():
                for code, record in per_language.items():
                    if variant == "mono" and code != language:
                        continue
                    if variant == "joint_pair" and code != language and code != self.plan.pivot:
                        continue
                    cell = records.setdefault(metric, {}).setdefault(variant, {}).setdefault(code, {})
                    if str(seed) in cell:  # the pivot's JointPair figure pools its pairs
                        cell[str(seed)] = _pool(cell[str(seed)], record)
                    else:
                        cell[str(seed)] = record
        for metric, variants in records.items():
            for variant in list(self.plan.variants) + ([SCRATCH] if SCRATCH in variants else []):
                for code in self.languages:
                    if code in variants.get(variant, {}):
                        continue
                    reasons.setdefault(metric, {}).setdefault(variant, {})[code] = self._reason(metric, variant, code)
        task_info = {}
        for name, task in self.classification.items():
            task_info[f"classification:{name}"] = {
                "title": f"task {name} ({' / '.join(task.label_names)})",
                "protocol": self.plan.classification_protocol,
            }
        if self.finetuning:
            task = self.classification[self.finetune_task]
            config = self.config_for(self.plan.variants[0], None, self.plan.seeds[0], "")
            weights = {"language_specific_and_heads": "LS layers + head", "heads": "head",
                       "all": "all weights"}[config.finetune.train_weights]
            task_info[f"finetuned:{self.finetune_task}"] = {
                "title": f"task {self.finetune_task} ({' / '.join(task.label_names)})", "trained": weights,
                "steps": config.trainer.train_steps,
            }
        for name, task in self.tagging.items():
            what = "UPOS accuracy" if task.metric == "accuracy" else "NER span F1 (seqeval)"
            task_info[f"tagging:{name}"] = {
                "title": f"{name}: {what}",
                "baseline": "majority tag" if task.metric == "accuracy" else "no entity (F1 0)",
            }
        return {
            "corpus": self.corpus.describe(), "pivot": self.plan.pivot, "variants": list(self.plan.variants),
            "seeds": list(self.plan.seeds), "groups": self.groups, "records": records, "reasons": reasons,
            "task_info": task_info, "runs": trained,
        }

    def _reason(self, metric, variant, code) -> str:
        kind, _, task = metric.partition(":")
        if kind == "retrieval" and code == self.plan.pivot:
            return "pivot"
        if kind == "tagging" and code not in self.tagging[task].train:
            return "no_data"
        if kind in ("classification", "finetuned") and code not in self.classification[task].test:
            return "no_data"
        zero_shot = kind == "retrieval" or self.plan.classification_protocol == "zero_shot"
        if zero_shot and kind in ("retrieval", "classification") and variant == "mono" and code != self.plan.pivot:
            return "no_pivot"
        if variant == SCRATCH:
            return "no_data"
        return "not_run"

    def report(self, collected: dict) -> dict:
        """Prints and writes the tables; writes the interference report. Returns their paths."""
        steps = self.base.trainer.train_steps
        if self.finetuning:
            preset = self.base.finetune.init_preset
            budget = (f"Fine-tuned from the pretrained encoder {preset!r} (the built-in 4-bit multilingual-e5-small, "
                      "not bit-equal to the original)" if preset == "builtin" else
                      f"Fine-tuned from the pretrained encoder in {preset}") + (
                f": {steps} steps on {self.plan.pivot} only, then tested on every language (zero-shot). "
                "+Meta LS's meta loss uses the task's labelled validation examples of every language "
                "(never the test split), so its figures are not strictly zero-shot.")
        elif self.plan.budget == "per_language":
            budget = (f"Training budget: per language (a run over n languages trains n x {steps} steps, so each "
                      "language gets about as many batches as in its Mono run).")
        else:
            budget = f"Training budget: total (every run trains {steps} steps, shared by its languages)."
        corpus = f"Corpus: {collected['corpus']}."
        markdown = "\n\n".join([study_table.wrap(corpus), study_table.wrap(budget)]
                                + study_table.study_tables(collected)
                                + [t for t in [study_table.convergence_table(collected)] if t])
        curves = self.plot_curves(collected)
        if curves:
            markdown += f"\n\nLearning curves: {curves}"
        verdicts = self.verdicts(collected)
        if verdicts:
            from tf_metaling.training.verdicts import format_verdicts

            markdown += "\n\n" + format_verdicts(verdicts, not_converged=study_table.unconverged_runs(collected))
        table_path = checkpoints.atomic_write_text(os.path.join(self.output_dir, "table.md"), markdown + "\n")
        summary = {metric: study_table.effect_summary(collected, metric) for metric in collected["records"]}
        checkpoints.atomic_write_text(
            os.path.join(self.output_dir, "results.json"),
            json.dumps({**collected, "estimates": summary}, indent=1),
        )
        self._print(markdown)
        report_dir = self.write_interference_report(collected)
        self._print(f"\ntable: {table_path}\nreport: {report_dir}")
        return {"table": table_path, "report": report_dir, "estimates": summary}

    def verdicts(self, collected: dict) -> list:
        """The paper's claims (a)-(f) judged on held-out MLM loss and a zero-shot metric (`verdicts`)."""
        from tf_metaling.training.verdicts import claim_verdicts

        records = collected["records"]
        if "mlm_loss" not in records:
            return []
        zero_shot = [m for m in records if m.startswith("classification:")
                     and self.plan.classification_protocol == "zero_shot"] + [m for m in records if m == "retrieval"]
        transfer = zero_shot[0] if zero_shot else None
        return claim_verdicts(
            study_table.cell_values(collected, "mlm_loss"), collected["groups"], higher_is_better=False,
            pivot=self.plan.pivot, records=records["mlm_loss"],
            transfer_values=study_table.cell_values(collected, transfer) if transfer else None,
            transfer_records=records.get(transfer) if transfer else None,
            transfer_metric_name="zero-shot classification accuracy" if transfer and transfer != "retrieval"
            else "X -> pivot retrieval accuracy",
        )

    def plot_curves(self, collected: dict) -> Optional[str]:
        """``curves.png``: every run's held-out loss over training, labelled with its verdict."""
        from tf_metaling.training.convergence import LearningCurve, plot_learning_curves

        curves = {name: LearningCurve(run["curve"]["steps"], run["curve"]["losses"])
                  for name, run in collected.get("runs", {}).items() if run["curve"]["steps"]}
        if not curves:
            return None
        return plot_learning_curves(curves, os.path.join(self.output_dir, "curves.png"),
                                    title=f"Held-out MLM loss of every run ({self.corpus.kind} corpus)",
                                    ylabel="held-out MLM loss, mean over the run's languages")

    def write_interference_report(self, collected: dict) -> Optional[str]:
        import math

        from tf_metaling.interference import analyze_model_dir
        from tf_metaling.training.mlm_inputs import build_mlm_inputs

        joint = os.path.join(self.output_dir, "runs", run_name("joint_all", None, self.plan.seeds[0]))
        if self.finetuning or not os.path.exists(os.path.join(joint, RESULTS_FILE)):
            return None
        config = self.config_for("joint_all", None, self.plan.seeds[0], self.shared_vocabulary())
        inputs = build_mlm_inputs(config.data, None, config.runtime.seed, corpus=self.corpus)
        batches = inputs.eval_batches()
        results = {
            variant: {code: [math.exp(v) for v in values] for code, values in rows.items()}
            for variant, rows in study_table.cell_values(collected, "mlm_loss").items() if variant != SCRATCH
        }
        analysis = analyze_model_dir(
            joint,
            batches,
            os.path.join(self.output_dir, "report"),
            results=results if "mono" in results else None,
            high_resource=self.groups.get("high", ()),
            low_resource=self.groups.get("low", ()),
            title=f"Interference between languages ({self.corpus.kind} corpus)",
        )
        return analysis["report_dir"]


def _pool(first: dict, second: dict) -> dict:
    """Two records of one language and seed (the pivot in several JointPair runs), as one.

    The pairs evaluate the pivot on the same test examples, so each example's
    figures are averaged (not concatenated, which would count an example twice
    and narrow its CI); records of different examples are concatenated.
    """
    from tf_metaling.estimates import span_f1_record

    if first["kind"] != second["kind"]:
        raise ValueError("cannot pool records of different kinds")
    if first["kind"] == "span_f1":
        return span_f1_record(first["true"] + second["true"], first["predicted"] + second["predicted"],
                              first.get("baseline"))
    a, b = first["examples"], second["examples"]
    pooled = first.get("pooled", 1)
    if len(a) == len(b) and all(x[1] == y[1] for x, y in zip(a, b)):
        examples = [[(x[0] * pooled + y[0]) / (pooled + 1), x[1]] for x, y in zip(a, b)]
    else:
        examples, pooled = a + b, 0
    total = sum(d for _, d in examples)
    return {**first, "examples": examples, "value": sum(n for n, _ in examples) / max(total, 1e-12),
            "pooled": pooled + 1}


def _sentences(source, code):
    from tf_metaling.data.text_reader import TextLineReader

    return source if isinstance(source, (list, tuple)) else TextLineReader(source, code)
