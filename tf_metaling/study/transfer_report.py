"""The transfer protocol's report: stage 1's MLM table, the zero-shot tables with class shares, verdict (f), goals.

`write_transfer_report(study, collected)` writes ``transfer.md`` and
``transfer.json`` into the study directory (atomically) and prints the
tables. Every figure is a mean over seeds with the half-width of its 95% t
interval (`tf_metaling.estimates.seeds_estimate`); a verdict is given only
from converged stage-1 runs (`transfer_study.verdict_f`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.estimates import seeds_estimate
from tf_metaling.study.report import configuration_line
from tf_metaling.study.runner import format_seconds
from tf_metaling.estimates import t_estimate
from tf_metaling.study.verdicts import CLAIMS, NO_VERDICT, status_of

REFERENCE = "reference"  # stage 1's head on the frozen encoder, LS layers untrained
LS_VARIANTS = ("joint_all_ls", "joint_all_meta_ls")
TITLES = {"majority": "majority class", "probe": "frozen-encoder probe", "joint_all": "JointAll (full fine-tune)",
          "joint_all_ls": "+LS", "joint_all_meta_ls": "+Meta LS",
          "joint_all_ls:no_swap": "+LS, no swap (en LS)", "joint_all_meta_ls:no_swap": "+Meta LS, no swap (en LS)",
          REFERENCE: "frozen encoder, untrained LS"}
TRANSFER_FILE = "transfer.md"
TRANSFER_JSON = "transfer.json"
COLLAPSE = 0.8  # a model predicting one class for more than this share of a balanced test has collapsed


def collapsed(shares) -> bool:
    return max(shares) > COLLAPSE


def verdict_f(values_ls, values_meta, converged: dict) -> tuple:
    """``(status, estimate, sentence)`` of +Meta LS minus +LS (paired by seed), only from converged runs."""
    failed = [name for name, ok in converged.items() if not ok]
    differences = [m - b for m, b in zip(values_meta, values_ls)]
    estimate = t_estimate(differences) if differences else None
    if failed:
        return NO_VERDICT, estimate, (f"{len(failed)} of {len(converged)} stage-1 runs did not "
                                      f"converge ({', '.join(sorted(failed))})")
    if estimate is None or not estimate.has_interval:
        return "inconclusive (no CI: fewer than 2 seeds)", estimate, "no CI with one seed"
    return status_of(estimate.low, estimate.high), estimate, ""


ROW_ORDER = ("majority", "probe", "joint_all", "joint_all_ls", "joint_all_meta_ls", "joint_all_ls:no_swap",
             "joint_all_meta_ls:no_swap")


def _cell(estimate, digits=3) -> str:
    if estimate is None:
        return "-"
    if not estimate.has_interval:
        return f"{estimate.value:.{digits}f}"
    return f"{estimate.value:.{digits}f} ±{(estimate.high - estimate.low) / 2:.{digits}f}"


def _estimate(values):
    values = [v for v in values if v is not None]
    return seeds_estimate(values) if values else None


def _convergence_label(entry) -> str:
    return (entry.get("convergence") or {}).get("label", "unknown (no learning curve)")


def stage1_section(study, seeds: list) -> tuple[list, dict]:
    languages = study.languages
    lines = ["## Stage 1: language-specific layers by MLM, the encoder frozen", "",
             "Held-out MLM loss per language (restricted to the corpus's pieces; lower is better), mean ±95% CI "
             f"half-width over {len(seeds)} seed(s).", "",
             "| run | " + " | ".join(languages) + " | converged | time per run |",
             "|---|" + "---|" * len(languages) + "---|---|"]
    data = {}
    for name in (REFERENCE,) + tuple(v for v in LS_VARIANTS if v in study.variants):
        entries = [s["stage1"][name] for s in seeds if name in s["stage1"]]
        if name == REFERENCE:
            entries = entries[:1]  # one run, the common start of every seed's LS runs
        if not entries:
            continue
        losses = {code: _estimate([e["loss"].get(code) for e in entries]) for code in languages}
        converged = [bool((e.get("convergence") or {}).get("converged")) for e in entries]
        seconds = float(np.mean([e["seconds"] for e in entries]))
        data[name] = {"loss": {c: (e.as_dict() if e else None) for c, e in losses.items()},
                      "converged": converged, "seconds": seconds,
                      "labels": [_convergence_label(e) for e in entries]}
        lines.append(f"| {TITLES[name]} | " + " | ".join(_cell(losses[c]) for c in languages)
                     + f" | {sum(converged)} of {len(converged)} | {format_seconds(seconds)} |")
    not_converged = [(name, study.reference_seed if name == REFERENCE else seed["seed"],
                      _convergence_label(seed["stage1"][name]))
                     for index, seed in enumerate(seeds) for name in seed["stage1"]
                     if not (seed["stage1"][name].get("convergence") or {}).get("converged")
                     and (name != REFERENCE or index == 0)]
    if not_converged:
        lines += [""] + [f"- {TITLES[name]} seed {seed}: {label}" for name, seed, label in not_converged]
    return lines, data


def task_section(study, task_name: str, seeds: list) -> tuple[list, dict]:
    task = study.tasks[task_name]
    labels = list(task.label_names)
    languages = [c for c in study.languages if c in task.test]
    targets = [c for c in languages if c != study.pivot]
    chance = 1.0 / len(labels)
    lines = [f"## Task {task_name} ({' / '.join(labels)}): zero-shot accuracy", "",
             f"Trained on {study.pivot} labels only; balanced test ({task.test[languages[0]].__len__()} examples per "
             f"language, chance {chance:.3f}). Mean ±95% CI half-width over {len(seeds)} seed(s); after the "
             f"figure, each class's share of the predictions ({'/'.join(labels)}, %).", "",
             "| row | " + " | ".join(f"{c} (trained)" if c == study.pivot else c for c in languages) + " |",
             "|---|" + "---|" * len(languages)]
    rows = {}
    for row in ROW_ORDER:
        entries = [s["classification"][task_name].get(row) for s in seeds]
        if any(e is None for e in entries):
            continue
        rows[row] = {}
        cells = []
        for code in languages:
            accuracy = _estimate([e[code]["accuracy"] for e in entries])
            shares = np.mean([e[code]["shares"] for e in entries], axis=0)
            rows[row][code] = {"accuracy": accuracy.as_dict(), "shares": shares.tolist(),
                               "per_seed": [e[code]["accuracy"] for e in entries],
                               "collapsed": bool(collapsed(shares))}
            cells.append(f"{_cell(accuracy)} · {'/'.join(f'{100 * s:.0f}' for s in shares)}")
        lines.append(f"| {TITLES[row]} | " + " | ".join(cells) + " |")
    lines += [""]
    verdicts, goals = [], []
    stage1_runs = {f"{v} seed {s['seed']}": bool((s['stage1'].get(v, {}).get('convergence') or {}).get('converged'))
                   for s in seeds for v in LS_VARIANTS if v in s["stage1"]}
    if all(v in rows for v in LS_VARIANTS):
        lines.append(f"Verdict (f) {CLAIMS['f']}: +Meta LS minus +LS, paired by seed:")
        for code in targets:
            status, estimate, why = verdict_f(rows["joint_all_ls"][code]["per_seed"],
                                              rows["joint_all_meta_ls"][code]["per_seed"], stage1_runs)
            interval = (f"{estimate.value:+.3f} [{estimate.low:+.3f}, {estimate.high:+.3f}]"
                        if estimate is not None and estimate.has_interval else
                        (f"{estimate.value:+.3f}" if estimate is not None else "-"))
            probe = rows["probe"][code]["accuracy"]["value"] if "probe" in rows else None
            lines.append(f"- (f) {code}: {interval}: {status}" + (f" ({why})" if why else "")
                         + (f"; the frozen-encoder probe: {probe:.3f}" if probe is not None else ""))
            verdicts.append({"task": task_name, "language": code, "status": status, "reason": why,
                             "estimate": estimate.as_dict() if estimate is not None else None})
        lines.append("")
    if "probe" in rows:
        lines.append("Goals: each LS model at or above the probe (the probe's figure inside or below the model's "
                     f"CI) in every target language; no row above {COLLAPSE:.0%} for one class.")
        for variant in LS_VARIANTS:
            if variant not in rows:
                continue
            for code in targets:
                model = rows[variant][code]["accuracy"]
                probe = rows["probe"][code]["accuracy"]["value"]
                high = model["high"] if model["high"] is not None else model["value"]
                met = probe <= high
                goals.append({"goal": "at or above the probe", "row": variant, "language": code, "met": bool(met)})
            misses = [g["language"] for g in goals if g["row"] == variant and not g["met"]]
            lines.append(f"- {TITLES[variant]} at or above the probe: "
                         + ("met in every target language" if not misses else f"missed in {', '.join(misses)}"))
        collapses = [f"{TITLES[row]} in {code}" for row, cells in rows.items() if row != "majority"
                     for code, cell in cells.items() if cell["collapsed"]]
        goals.append({"goal": "no collapse", "met": not collapses, "collapsed": collapses})
        lines.append("- no collapse: " + ("met" if not collapses else "missed: " + ", ".join(collapses)))
        lines.append("")
    return lines, {"rows": rows, "verdicts": verdicts, "goals": goals, "targets": targets}


def retrieval_section(study, seeds: list) -> tuple[list, dict]:
    names = [n for n in (REFERENCE,) + LS_VARIANTS if all(n in s.get("retrieval", {}) for s in seeds)]
    if not names:
        return [], {}
    codes = [c for c in study.languages if c != study.pivot and c in seeds[0]["retrieval"][names[0]]]
    lines = [f"## Retrieval X -> {study.pivot} with each run's LS layers (accuracy@1, {study.config.evaluation.retrieval_pairs}"
             " candidates)", "", "| run | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
    data = {}
    for name in names:
        estimates = {c: _estimate([s["retrieval"][name].get(c) for s in seeds]) for c in codes}
        data[name] = {c: e.as_dict() if e else None for c, e in estimates.items()}
        lines.append(f"| {TITLES[name]} | " + " | ".join(_cell(estimates[c]) for c in codes) + " |")
    return lines + [""], data


def tagging_section(study, seeds: list) -> tuple[list, dict]:
    tasks = sorted({name for s in seeds for name in s.get("tagging", {})})
    lines, data = [], {}
    for name in tasks:
        codes = sorted({c for s in seeds for c in s["tagging"][name].get("pretrained", {})})
        steps = study.config.transfer.tagging_steps
        lines += [f"## Tagging {name}, in-language: the pretrained encoder beside scratch", "",
                  f"Word accuracy on the test split, mean ±95% CI half-width over {len(seeds)} seed(s); "
                  f"{steps} steps each: the pretrained encoder frozen with a token head trained, and the same "
                  "architecture trained from random weights.", "",
                  "| tagger | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
        data[name] = {}
        for row in ("pretrained", "scratch"):
            estimates = {c: _estimate([s["tagging"][name][row][c]["value"] for s in seeds]) for c in codes}
            data[name][row] = {c: e.as_dict() for c, e in estimates.items()}
            lines.append(f"| {row} | " + " | ".join(_cell(estimates[c]) for c in codes) + " |")
        for code in codes:
            differences = [s["tagging"][name]["pretrained"][code]["value"] - s["tagging"][name]["scratch"][code]["value"]
                           for s in seeds]
            estimate = t_estimate(differences)
            data[name][f"difference:{code}"] = estimate.as_dict()
            interval = (f" [{estimate.low:+.3f}, {estimate.high:+.3f}]" if estimate.has_interval else " (one seed)")
            status = status_of(estimate.low, estimate.high) if estimate.has_interval else "no CI"
            lines.append(f"\nPretrained minus scratch, {code}: {estimate.value:+.3f}{interval}: {status}.")
        lines.append("")
    return lines, data


def write_transfer_report(study, collected: dict) -> dict:
    seeds = collected["seeds"]
    config = study.config
    lines = [f"# Cross-lingual transfer on {config.run.finetune.init_preset}", "", configuration_line(study), "",
             f"Stage 1: {config.run.trainer.train_steps} steps per LS run (head alone first: "
             f"{config.transfer.head_steps} steps), batches of {config.run.data.batch_size} x "
             f"{config.run.data.sequence_length} tokens, LS kind {config.ls_kind} in blocks "
             f"{list(config.run.model.language_specific_layers)}, every shared encoder weight frozen. Stage 2: "
             f"{config.transfer.classification_train} {study.pivot} examples at {config.transfer.task_sequence_length} "
             "tokens, no target-language label. Wall time of the whole protocol: "
             f"{format_seconds(collected.get('seconds', 0.0))}.", ""]
    stage1_lines, stage1 = stage1_section(study, seeds)
    lines += stage1_lines + [""]
    tasks = {}
    for task_name in study.tasks:
        task_lines, tasks[task_name] = task_section(study, task_name, seeds)
        lines += task_lines
    retrieval_lines, retrieval = retrieval_section(study, seeds)
    lines += retrieval_lines
    tagging_lines, tagging = tagging_section(study, seeds)
    lines += tagging_lines
    text = "\n".join(lines).rstrip() + "\n"
    table_path = atomic_write_text(os.path.join(study.output_dir, TRANSFER_FILE), text)
    summary = {"stage1": stage1, "tasks": tasks, "retrieval": retrieval, "tagging": tagging, "seconds": collected.get("seconds"),
               "seeds": [s["seed"] for s in seeds]}
    json_path = atomic_write_text(os.path.join(study.output_dir, TRANSFER_JSON), json.dumps(summary, indent=1))
    study._print("\n" + text)
    return {"table": table_path, "json": json_path, "summary": summary}
