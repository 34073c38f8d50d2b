"""A study's results: every finished run's records gathered into one JSON-ready dict.

``records[metric][variant][language][seed]`` holds each run's per-example
record (`tf_metaling.estimates`): a Mono run contributes its own language, a
JointPair run its language and the pivot (the pivot's JointPair figure pools
its pairs, example by example), every other run all its languages.
``reasons[metric][variant][language]`` says why a cell has no figure
(`tables.REASONS`), ``runs`` holds every trained run's learning curve and
convergence verdict, and ``task_info`` what the tables' captions need.
`study_results` builds it; the tables, verdicts and reports read nothing else.
"""

from __future__ import annotations

from tf_metaling.estimates import span_f1_record
from tf_metaling.study.plan import PlannedRun, planned_runs

SCRATCH = "scratch"  # the Scratch taggers of each seed (tagging tables' baseline), a run of their own
TRAIN_WEIGHTS_TITLES = {"language_specific_and_heads": "LS layers + head", "heads": "head", "all": "all weights"}


def study_results(study) -> dict:
    """The results of `study` (a `ComparisonStudy`) from its runs' results.json files."""
    config = study.config
    records, reasons, trained = {}, {}, {}
    runs = planned_runs(config, study.languages, study.mono_languages)
    runs += [PlannedRun(SCRATCH, None, seed) for seed in config.seeds]
    for run in runs:
        saved = study.directory.read_results(run.variant, run.language, run.seed)
        if saved is None:
            continue
        if "curve" in saved:
            trained[run.name] = {"variant": run.variant, "language": run.language, "seed": run.seed,
                                 "step": saved.get("step"), "curve": saved["curve"],
                                 "convergence": saved["convergence"]}
        for metric, per_language in saved["records"].items():
            for code, record in per_language.items():
                if run.variant == "mono" and code != run.language:
                    continue
                if run.variant == "joint_pair" and code not in (run.language, config.pivot):
                    continue
                cell = records.setdefault(metric, {}).setdefault(run.variant, {}).setdefault(code, {})
                seed = str(run.seed)
                cell[seed] = pool_records(cell[seed], record) if seed in cell else record
    for metric, variants in records.items():
        for variant in list(config.variants) + ([SCRATCH] if SCRATCH in variants else []):
            for code in study.languages:
                if code not in variants.get(variant, {}):
                    reasons.setdefault(metric, {}).setdefault(variant, {})[code] = _reason(study, metric, variant,
                                                                                          code)
    return {
        "corpus": study.corpus.describe(), "pivot": config.pivot, "variants": list(config.variants),
        "seeds": list(config.seeds), "groups": study.groups, "records": records, "reasons": reasons,
        "task_info": _task_info(study), "runs": trained,
    }


def _task_info(study) -> dict:
    """What each task's table caption says: its title, protocol, what trained, for how long."""
    config, tasks = study.config, study.tasks
    info = {}
    for name, task in tasks.classification.items():
        info[f"classification:{name}"] = {"title": f"task {name} ({' / '.join(task.label_names)})",
                                          "protocol": config.evaluation.classification_protocol}
    if config.finetuning:
        task = tasks.classification[tasks.finetune_task]
        info[f"finetuned:{tasks.finetune_task}"] = {
            "title": f"task {tasks.finetune_task} ({' / '.join(task.label_names)})",
            "trained": TRAIN_WEIGHTS_TITLES[config.run.finetune.train_weights],
            "steps": config.run.trainer.train_steps,
        }
    for name, task in tasks.tagging.items():
        what = "UPOS accuracy" if task.metric == "accuracy" else "NER span F1 (seqeval)"
        info[f"tagging:{name}"] = {"title": f"{name}: {what}",
                                   "baseline": "majority tag" if task.metric == "accuracy" else "no entity (F1 0)"}
    return info


def _reason(study, metric, variant, code) -> str:
    """Why `variant` has no `metric` figure in `code` (a key of `tables.REASONS`)."""
    config, tasks = study.config, study.tasks
    kind, _, task = metric.partition(":")
    if kind == "retrieval" and code == config.pivot:
        return "pivot"
    if kind == "tagging" and code not in tasks.tagging[task].train:
        return "no_data"
    if kind in ("classification", "finetuned") and code not in tasks.classification[task].test:
        return "no_data"
    zero_shot = kind == "retrieval" or config.evaluation.classification_protocol == "zero_shot"
    if zero_shot and kind in ("retrieval", "classification") and variant == "mono" and code != config.pivot:
        return "no_pivot"
    if variant == SCRATCH:
        return "no_data"
    return "not_run"


def pool_records(first: dict, second: dict) -> dict:
    """Two records of one language and seed (the pivot in several JointPair runs), as one.

    The pairs evaluate the pivot on the same test examples, so each example's
    figures are averaged (not concatenated, which would count an example twice
    and narrow its CI); records of different examples are concatenated.
    """
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


def borrow_mono(results: dict, source: dict, code: str) -> None:
    """Puts `source`'s Mono figures of `code` (records and runs) into `results` (another condition's)."""
    for metric, variants in source["records"].items():
        if code in variants.get("mono", {}) and metric in results["records"]:
            results["records"][metric].setdefault("mono", {})[code] = variants["mono"][code]
            reasons = results.get("reasons", {}).get(metric, {})
            reasons.get("mono", {}).pop(code, None)
            if "mono" in reasons and not reasons["mono"]:
                del reasons["mono"]
    results["variants"] = ["mono"] + [v for v in results["variants"] if v != "mono"]
    results["runs"] = {**{name: run for name, run in source.get("runs", {}).items()
                          if run["variant"] == "mono" and run["language"] == code},
                       **results.get("runs", {})}
    results.setdefault("mono_from", {})[code] = source.get("corpus")
