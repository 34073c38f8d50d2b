"""TensorFlow's CPU allocators on a training run: `malloc` against the pooling (BFC) allocator.

Runs the same short pretraining (`python -m trainers.pretrain --experiment=study_control`,
the synthetic control's model: d=32, 2 layers, batches of 256 x 14 tokens) in
`--processes` fresh processes at once (2: as the study's two workers) per allocator per
round, in interleaved rounds (so load changes on a shared machine hit both alike), with ``TF_CPU_ALLOCATOR_USE_BFC=false`` (TensorFlow's
default, `malloc`) and ``=true`` (what the trainers now ask for,
`tf_metaling/cpu_allocator.py`). Prints each run's wall time, minor page faults and final
held-out loss (the same in both: the allocator changes no number), the median ratio
pooled / malloc, and writes benchmarks/results/cpu_allocator.json.

    python benchmarks/cpu_allocator.py                    # 2 x 400 steps, 2 rounds: ~5 minutes on 2 cores
    python benchmarks/cpu_allocator.py --steps 100 --rounds 1 --processes 1

Goal: pooled wall time <= malloc's, with the same loss.

On CPUs where TensorFlow turns oneDNN on by itself (AVX512_VNNI, AVX512_BF16 or AMX),
oneDNN's own allocator pools memory whatever the setting says, so both arms run pooled
there and the comparison shows nothing; run it with TF_ENABLE_ONEDNN_OPTS=0 to compare
the two allocators on such a CPU (`tf_metaling/cpu_allocator.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOCATORS = {"malloc": "false", "pooled": "true"}


def train(allocator: str, steps: int, model_dirs: list) -> dict:
    """Trains one process per model_dir at once with `allocator`: their wall time, page faults and losses."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC=ALLOCATORS[allocator], TF_CPP_MIN_LOG_LEVEL="3")
    override = (f"trainer.train_steps={steps},trainer.checkpoint_interval={steps},trainer.eval_interval={steps},"
                "trainer.plateau_patience=0")
    faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "trainers.pretrain", "--experiment=study_control",
                                   f"--model_dir={model_dir}", f"--params_override={override}"],
                                  cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for model_dir in model_dirs]
    outputs = [process.communicate() for process in processes]
    seconds = time.perf_counter() - started
    losses = []
    for process, (stdout, stderr) in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"{allocator}: trainers.pretrain failed:\n{stderr[-3000:]}")
        loss = re.search(r"^loss/mixture: ([0-9.]+)$", stdout, re.MULTILINE) or re.search(
            r"^loss: ([0-9.]+)$", stdout, re.MULTILINE)
        losses.append(float(loss.group(1)) if loss else None)
    return {"allocator": allocator, "processes": len(model_dirs), "seconds": seconds,
            "minor_page_faults": (resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - faults) // len(model_dirs),
            "losses": losses}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2,
                        help="identical runs at once, as the study's worker processes (default 2)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            order = list(ALLOCATORS) if round_ % 2 == 0 else list(reversed(ALLOCATORS))
            for allocator in order:
                run = train(allocator, args.steps,
                            [os.path.join(scratch, f"{allocator}-{round_}-{i}") for i in range(args.processes)])
                runs.append(run)
                print(f"round {round_}  {allocator:7s} {run['seconds']:7.1f} s  "
                      f"{run['minor_page_faults']:>10,d} page faults a process  losses {run['losses']}", flush=True)
    median = {a: statistics.median(r["seconds"] for r in runs if r["allocator"] == a) for a in ALLOCATORS}
    ratio = median["pooled"] / median["malloc"]
    print(f"\n| allocator | median s ({args.rounds} rounds, {args.processes} x {args.steps} steps at once) "
          "| median page faults a process |")
    print("|---|---|---|")
    for allocator in ALLOCATORS:
        faults = statistics.median(r["minor_page_faults"] for r in runs if r["allocator"] == allocator)
        print(f"| {allocator} | {median[allocator]:.1f} | {faults:,.0f} |")
    print(f"pooled / malloc wall time: {ratio:.2f}; the same loss in every run: "
          f"{len({loss for r in runs for loss in r['losses']}) == 1}")
    path = write_results(os.path.join(RESULTS_DIR, "cpu_allocator.json"),
                         {"machine": machine_info(), "steps": args.steps, "rounds": args.rounds,
                          "processes": args.processes, "runs": runs,
                          "median_seconds": median, "pooled_over_malloc": ratio})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
