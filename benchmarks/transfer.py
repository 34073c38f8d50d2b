"""The transfer goal table: zero-shot accuracy of the probe, JointAll, +LS, +Meta LS and no-swap, with CIs and class shares.

    python benchmarks/transfer.py --output_dir runs/pretrained                  # study_pretrained (hours on 2 cores)
    python benchmarks/transfer.py --experiment=study_pretrained_demo --output_dir runs/demo/pretrained

Runs the registered transfer study (`tf_metaling.study.transfer_study`; a rerun
reuses every finished stage in --output_dir), then prints, per task and target
language, each row's accuracy on the balanced test (mean and 95% t CI over the
study's seeds) and its largest class share, and the goals of the transfer
issue: each LS model at or above the frozen-encoder probe (the probe's figure
inside or below the model's CI), no row predicting one class for more than 80%
of a balanced test. Written to ``benchmarks/results/transfer.json``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

ROWS = ("probe", "joint_all", "joint_all_ls", "joint_all_meta_ls", "joint_all_ls:no_swap", "joint_all_meta_ls:no_swap")


def goal_table(summary: dict, titles: dict) -> str:
    lines = []
    for task, data in summary["tasks"].items():
        lines.append(f"{task}: zero-shot accuracy (mean [95% CI] over seeds; largest class share)")
        header = f"{'row':30s}" + "".join(f"{code:>28s}" for code in data["targets"])
        lines += [header, "-" * len(header)]
        for row in ROWS:
            if row not in data["rows"]:
                continue
            cells = []
            for code in data["targets"]:
                cell = data["rows"][row][code]
                accuracy = cell["accuracy"]
                interval = (f"[{accuracy['low']:.3f},{accuracy['high']:.3f}]" if accuracy["low"] is not None else "")
                cells.append(f"{accuracy['value']:.3f} {interval} {max(cell['shares']):.0%}".rjust(28))
            lines.append(f"{titles[row]:30s}" + "".join(cells))
        for goal in data["goals"]:
            what = goal["goal"] + (f" ({titles[goal['row']]}, {goal['language']})" if "row" in goal else "")
            lines.append(f"goal {what}: {'met' if goal['met'] else 'missed'}")
        for verdict in data["verdicts"]:
            lines.append(f"verdict (f) {verdict['language']}: {verdict['status']}"
                         + (f" ({verdict['reason']})" if verdict["reason"] else ""))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="study_pretrained")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--params_override", default="")
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "transfer.json"))
    args = parser.parse_args(argv)

    from official.modeling import hyperparams

    from tf_metaling import configs
    from tf_metaling.study import TransferStudy
    from tf_metaling.study.transfer_report import TITLES

    config = configs.get_study(args.experiment)
    if args.params_override:
        config = hyperparams.override_params_dict(config, args.params_override, is_strict=True)
    if not config.transfer.enabled:
        parser.error(f"--experiment={args.experiment} is not a transfer study (transfer.enabled is false).")
    with open(os.devnull, "w") as quiet:
        study = TransferStudy(configs.validate_study(config), args.output_dir, log=quiet)
        report = study.report(study.run())
    table = goal_table(report["summary"], TITLES)
    print(table)
    write_results(args.output, {"experiment": args.experiment, "output_dir": os.path.abspath(args.output_dir),
                                "machine": machine_info(), "summary": report["summary"], "table": table})
    print(f"written {args.output}")
    return report["summary"]


if __name__ == "__main__":
    main()
