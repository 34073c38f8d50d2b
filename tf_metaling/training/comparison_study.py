"""The paper's comparison on the built-in corpus: Mono, JointPair, JointAll, +LS, +Meta LS.

For each seed the study trains and evaluates:

- Mono: one model per language;
- JointPair: English + X, for every other language X (English's JointPair
  score is the mean over its pairs);
- JointAll, JointAll+LS, JointAll+Meta LS: one model on all languages.

Training budget (`StudyPlan.budget`). With ``"per_language"`` (the default)
a run over n languages trains n times the base experiment's steps (its
warmup, checkpoint, evaluation and probe intervals scale with it), so every
language gets about as many training batches in a joint model as in its Mono
run: a joint model doing worse is then interference, not a smaller share of
the same budget. ``"total"`` gives every run the same number of steps, which
also measures that budget split.

All runs share one WordPiece vocabulary, learned once from the training text
with language-balanced counts (the paper's shared vocabulary). Each run is a
`run_pretraining` in ``<output_dir>/runs/<variant>[-<language>]/seed<k>``; a
run whose ``results.json`` exists is finished and is not trained again, so an
interrupted study resumes where it stopped.

Per run and language: held-out MLM loss, perplexity and accuracy (the
validation split), cross-lingual retrieval accuracy@1 (X -> English), and
zero-shot classification accuracy of an English-trained probe. The study
prints a table (languages x variants, mean +- std over seeds, high- and
low-resource groups marked), writes it as Markdown and JSON, and writes the
interference report (gradient similarities and sub-networks of the JointAll
model, similarities over its training, deltas of every variant against Mono).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from typing import Optional

import numpy as np
import yaml
from official.modeling import hyperparams

from tf_metaling import checkpoints, configs
from tf_metaling.data.tokenizer import Tokenizer
from tf_metaling.training.experiment import CONFIG_FILE, config_as_yaml, run_pretraining

VARIANT_TITLES = {
    "mono": "Mono",
    "joint_pair": "JointPair",
    "joint_all": "JointAll",
    "joint_all_ls": "JointAll+LS",
    "joint_all_meta_ls": "+Meta LS",
}
RESULTS_FILE = "results.json"
BUDGETS = ("per_language", "total")
# Trainer fields that scale with a run's steps under the per-language budget.
SCALED_TRAINER_FIELDS = ("train_steps", "warmup_steps", "checkpoint_interval", "eval_interval", "probe_interval")
PIVOT = "en"


@dataclasses.dataclass
class StudyPlan:
    """What to run: the base experiment, variants, seeds and evaluation sizes."""

    experiment: str = "study_small"
    variants: tuple = configs.VARIANTS
    seeds: tuple = (0, 1, 2)
    languages: Optional[tuple] = None  # default: the base experiment's languages
    ls_kind: str = "adapter"
    # "per_language": a run over n languages trains n x the base steps; "total": every run the same.
    budget: str = "per_language"
    retrieval_pairs: int = 300
    classification_train: int = 1500
    overrides: Optional[object] = None  # dict, YAML or "a.b=value,..." applied to every run


def _runs(plan: StudyPlan, languages) -> list:
    """``(variant, language or None, seed)`` in the order they are trained."""
    runs = []
    for seed in plan.seeds:
        for variant in plan.variants:
            if variant == "mono":
                runs += [(variant, code, seed) for code in languages]
            elif variant == "joint_pair":
                runs += [(variant, code, seed) for code in languages if code != PIVOT]
            else:
                runs.append((variant, None, seed))
    return runs


def run_name(variant, language, seed) -> str:
    return f"{variant}-{language}/seed{seed}" if language else f"{variant}/seed{seed}"


class ComparisonStudy:
    """Runs (or resumes) the study in `output_dir` and reports it."""

    def __init__(self, plan: StudyPlan, output_dir: str, log=None):
        self.plan = plan
        self.output_dir = os.path.abspath(output_dir)
        self.log = log or sys.stdout
        base = configs.get_experiment(plan.experiment)
        if plan.overrides:
            base = hyperparams.override_params_dict(base, plan.overrides, is_strict=True)
        if plan.languages:
            base = hyperparams.override_params_dict(base, {"data": {"languages": list(plan.languages)}}, is_strict=True)
        if base.data.corpus != "builtin":
            raise ValueError("The comparison study runs on the built-in corpus (data.corpus=builtin).")
        if plan.budget not in BUDGETS:
            raise ValueError(f"StudyPlan.budget={plan.budget!r} is not one of {BUDGETS}.")
        self.base = base
        self.languages = list(base.data.languages)
        if PIVOT not in self.languages:
            raise ValueError(f"The study needs {PIVOT!r} (the JointPair partner) among {self.languages}.")
        from tf_metaling.data.corpora import load_builtin_corpus

        self.corpus = load_builtin_corpus(
            cache_dir=base.data.cache_dir or None,
            languages=self.languages,
            low_resource_size=base.data.low_resource_size,
        )
        self.groups = {group: [c for c in codes if c in self.languages] for group, codes in self.corpus.groups.items()}

    # ------------------------------------------------------------------ running
    def _print(self, *parts):
        print(*parts, file=self.log, flush=True)

    def shared_vocabulary(self) -> str:
        """Learns (once) the study's shared vocabulary and returns its path."""
        path = os.path.join(self.output_dir, "vocab.txt")
        if not os.path.exists(path):
            data = self.base.data
            tokenizer = Tokenizer.train(
                self.corpus.text_sources("train"), vocab_size=data.vocab_size, alpha=data.sampling_alpha,
                seed=self.base.runtime.seed, max_sentences_per_language=20000,
            )
            tokenizer.save(path)
        return path

    def config_for(self, variant, language, seed, vocab_file):
        overrides = configs.variant_overrides(variant, self.languages, language, PIVOT, self.plan.ls_kind)
        overrides["runtime"] = {"seed": int(seed)}
        overrides["data"]["vocab_file"] = vocab_file
        if self.plan.budget == "per_language":
            scale = len(overrides["data"]["languages"])
            overrides["trainer"] = {name: getattr(self.base.trainer, name) * scale for name in SCALED_TRAINER_FIELDS}
        # override_params_dict changes its argument in place: every run starts from a copy of the base.
        config = copy.deepcopy(self.base)
        return configs.validate(hyperparams.override_params_dict(config, overrides, is_strict=True))

    def run(self) -> dict:
        os.makedirs(self.output_dir, exist_ok=True)
        vocab_file = self.shared_vocabulary()
        runs = _runs(self.plan, self.languages)
        started = time.perf_counter()
        for index, (variant, language, seed) in enumerate(runs, 1):
            name = run_name(variant, language, seed)
            run_dir = os.path.join(self.output_dir, "runs", name)
            config = self.config_for(variant, language, seed, vocab_file)
            if os.path.exists(os.path.join(run_dir, RESULTS_FILE)):
                self._check_finished_run(run_dir, config)
                self._print(f"[{index}/{len(runs)}] {name}: finished earlier, skipped")
                continue
            self._print(f"[{index}/{len(runs)}] {name}: training")
            run_started = time.perf_counter()
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                # Orbit prints its own progress; the study prints one line per run.
                mlm = run_pretraining(config, run_dir, "train_and_eval", log=quiet)
            results = self.evaluate(run_dir, config, mlm)
            results["seconds"] = time.perf_counter() - run_started
            checkpoints.atomic_write_text(os.path.join(run_dir, RESULTS_FILE), json.dumps(results, indent=2))
            self._print(f"    done in {results['seconds']:.0f}s; elapsed {time.perf_counter() - started:.0f}s")
        return self.collect()

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

    def evaluate(self, run_dir, config, mlm_metrics) -> dict:
        from tf_metaling.data.tasks import builtin_classification_tasks
        from tf_metaling.training.transfer_evaluation import retrieval_accuracy, zero_shot_classification

        model = checkpoints.restore_model(run_dir)
        tokenizer = Tokenizer.from_vocab_file(os.path.join(run_dir, checkpoints.VOCAB_FILE))
        length = config.data.sequence_length
        retrieval = retrieval_accuracy(model, tokenizer, self.corpus, length, PIVOT, self.plan.retrieval_pairs)
        classification = {}
        tasks = builtin_classification_tasks(self.corpus, pivot=PIVOT)
        for task in tasks.values():
            scores = zero_shot_classification(model, tokenizer, task, length, self.plan.classification_train)
            classification.update(scores)  # each language belongs to one task (Quran or Bible)
        per_language = {}
        for code in model.language_vocabulary.codes:
            per_language[code] = {
                "mlm_loss": mlm_metrics.get(f"loss/{code}"),
                "perplexity": mlm_metrics.get(f"perplexity/{code}"),
                "mlm_accuracy": mlm_metrics.get(f"accuracy/{code}"),
                "retrieval_accuracy": retrieval.get(code),
                "classification_accuracy": classification.get(code),
            }
        return {"languages": per_language, "step": mlm_metrics.get("step")}

    # ------------------------------------------------------------------ results
    def collect(self) -> dict:
        """``{metric: {variant: {language: [per-seed values]}}}`` from the finished runs."""
        table = {}
        for variant, language, seed in _runs(self.plan, self.languages):
            path = os.path.join(self.output_dir, "runs", run_name(variant, language, seed), RESULTS_FILE)
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as file:
                results = json.load(file)["languages"]
            for code, metrics in results.items():
                if variant == "mono" and code != language:
                    continue
                if variant == "joint_pair" and code == PIVOT:
                    key = (seed, language)  # English: averaged over its pairs below
                else:
                    key = (seed, None)
                for metric, value in metrics.items():
                    if value is None:
                        continue
                    table.setdefault(metric, {}).setdefault(variant, {}).setdefault(code, {}).setdefault(
                        key[0], []
                    ).append(value)
        return {
            metric: {
                variant: {code: [float(np.mean(v)) for _, v in sorted(seeds.items())] for code, seeds in rows.items()}
                for variant, rows in variants.items()
            }
            for metric, variants in table.items()
        }

    def format_table(self, collected: dict, metric: str, title: str, digits: int = 2) -> str:
        variants = [v for v in self.plan.variants if v in collected.get(metric, {})]
        header = ["language", "group"] + [VARIANT_TITLES[v] for v in variants]
        rows = []
        for group in ("high", "low"):
            for code in self.groups.get(group, []):
                cells = [code, group]
                for variant in variants:
                    values = collected[metric][variant].get(code)
                    cells.append(_mean_std(values, digits))
                rows.append(cells)
            means = []
            for variant in variants:
                per_seed = _group_seed_means(collected[metric][variant], self.groups.get(group, []))
                means.append(_mean_std(per_seed, digits))
            if self.groups.get(group):
                rows.append([f"mean ({group})", group] + means)
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        lines = [f"{title}", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        return "\n".join(lines)

    def report(self, collected: dict) -> dict:
        """Prints and writes the tables; writes the interference report. Returns their paths."""
        sections = [
            ("mlm_loss", "Held-out MLM loss (nats per masked token; lower is better; mean +- std over seeds)", 3),
            ("perplexity", "Held-out MLM perplexity (lower is better)", 1),
            ("mlm_accuracy", "Held-out masked-token accuracy (higher is better)", 3),
            ("retrieval_accuracy", "Retrieval accuracy@1, X -> en (higher is better)", 3),
            ("classification_accuracy", "Zero-shot classification accuracy, probe trained on en", 3),
        ]
        texts = [self.format_table(collected, metric, title, digits) for metric, title, digits in sections
                 if metric in collected]
        steps = self.base.trainer.train_steps
        budget = (
            f"Training budget: per language (a run over n languages trains n x {steps} steps, so each "
            "language gets about as many batches as in its Mono run)."
            if self.plan.budget == "per_language"
            else f"Training budget: total (every run trains {steps} steps, shared by its languages)."
        )
        markdown = "\n\n".join([budget] + texts)
        table_path = checkpoints.atomic_write_text(os.path.join(self.output_dir, "table.md"), markdown + "\n")
        checkpoints.atomic_write_text(
            os.path.join(self.output_dir, "results.json"),
            json.dumps({"groups": self.groups, "seeds": list(self.plan.seeds), "results": collected}, indent=2),
        )
        self._print(markdown)
        report_dir = self.write_interference_report(collected)
        self._print(f"\ntable: {table_path}\nreport: {report_dir}")
        return {"table": table_path, "report": report_dir}

    def write_interference_report(self, collected: dict) -> Optional[str]:
        from tf_metaling.interference import analyze_model_dir
        from tf_metaling.training.mlm_inputs import build_mlm_inputs

        joint = os.path.join(self.output_dir, "runs", run_name("joint_all", None, self.plan.seeds[0]))
        if not os.path.exists(os.path.join(joint, RESULTS_FILE)):
            return None
        config = self.config_for("joint_all", None, self.plan.seeds[0], self.shared_vocabulary())
        inputs = build_mlm_inputs(config.data, None, config.runtime.seed)
        batches = inputs.eval_batches()
        results = {variant: rows for variant, rows in collected.get("perplexity", {}).items()}
        analysis = analyze_model_dir(
            joint,
            batches,
            os.path.join(self.output_dir, "report"),
            results=results if "mono" in results else None,
            high_resource=self.groups.get("high", ()),
            low_resource=self.groups.get("low", ()),
            title="Interference between languages on the built-in corpus",
        )
        return analysis["report_dir"]


def _mean_std(values, digits) -> str:
    if not values:
        return "n/a"
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} +- {values.std(ddof=1):.{digits}f}"


def _group_seed_means(rows: dict, codes) -> list:
    """Per seed, the mean over the group's languages that have a value."""
    present = [rows[c] for c in codes if c in rows]
    if not present:
        return []
    seeds = min(len(v) for v in present)
    return [float(np.mean([v[s] for v in present])) for s in range(seeds)]
