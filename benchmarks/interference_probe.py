"""Cost of the interference probe at its default interval, against plain training.

A representative plain training step of the `small` preset size (d=256,
4 layers, 4 heads, FFN 1024, sequence 128, batch 32, vocabulary 8000,
7 languages, adapters r=64, dropout 0.1; one-language batches; Adam on the
masked-LM loss, in one `tf.function`) in blocks of `every_n_steps` steps,
alternately without the probe and with ``GradientProbe.maybe_record(step)``
after each step (so the probe fires once per block with it, writing
TensorBoard summaries and its JSON-lines log), `cycles` times. Alternating
blocks keeps a change of machine load during the run from favouring either
side. The probe uses one held-out batch of 32 x 128 per language, the
trainers' evaluation batch size.

Reported:
- probe share (the target's figure): the time spent inside
  ``maybe_record`` (measurement and logging) divided by the training steps'
  time in the same blocks, i.e. under the same machine load;
- with/without difference: (time of the blocks with probe - time of those
  without) / time without. On a machine shared with other jobs this also
  holds the drift of the load between blocks, so it is printed, not judged;
- amortised: mean probe time / (interval x median step time);
- the probe's one-time trace and each part's time.

    python benchmarks/interference_probe.py              # prints the table, writes JSON
    python benchmarks/interference_probe.py --cycles 1   # quicker

Target: overhead under 10% of training time at the default interval.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_metaling.interference import DEFAULT_EVERY_N_STEPS, GradientProbe  # noqa: E402
from tf_metaling.losses import masked_lm_example_losses  # noqa: E402
from tf_metaling.models import MultilingualEncoder, MultilingualModel  # noqa: E402
from results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

RESULTS = RESULTS_DIR
TARGET = 0.10


def make_batch(rng, args, language, batch_size):
    return {
        "token_ids": tf.constant(rng.randint(5, args.vocabulary_size, (batch_size, args.sequence_length)), tf.int32),
        "padding_mask": tf.ones((batch_size, args.sequence_length), tf.int32),
        "language_ids": tf.constant(language, tf.int32),  # scalar: a one-language batch
        "mask_positions": tf.constant(
            np.stack([rng.choice(args.sequence_length, args.predictions, replace=False) for _ in range(batch_size)]),
            tf.int32,
        ),
        "mask_ids": tf.constant(rng.randint(5, args.vocabulary_size, (batch_size, args.predictions)), tf.int32),
        "mask_weights": tf.ones((batch_size, args.predictions), tf.float32),
    }


def build_model(args):
    keras.utils.set_random_seed(0)
    encoder = MultilingualEncoder(
        vocabulary_size=args.vocabulary_size,
        languages=[f"l{i}" for i in range(args.languages)],
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_dim=args.intermediate_dim,
        max_sequence_length=args.sequence_length,
        language_specific="adapter",
        adapter_dim=args.adapter_dim,
        dropout=0.1,
        attention_dropout=0.1,
    )
    return MultilingualModel(encoder)


def plain_train_step(model, optimizer):
    """Adam on the masked-LM loss: the step the probe's cost is compared with."""
    variables = model.trainable_variables

    def step(batch):
        with tf.GradientTape() as tape:
            outputs = model(batch, training=True, outputs=("masked_lm_logits",))
            loss_sums, weights = masked_lm_example_losses(outputs["masked_lm_logits"], batch)
            loss = tf.reduce_sum(loss_sums) / tf.maximum(tf.reduce_sum(weights), 1.0)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    return tf.function(step, autograph=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_dim", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_dim", type=int, default=1024)
    parser.add_argument("--adapter_dim", type=int, default=64)
    parser.add_argument("--vocabulary_size", type=int, default=8000)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--probe_batch_size", type=int, default=32)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--languages", type=int, default=7)
    parser.add_argument("--every_n_steps", type=int, default=DEFAULT_EVERY_N_STEPS)
    parser.add_argument("--cycles", type=int, default=2, help="probe firings in the measured run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(RESULTS, "interference_probe.json"))
    args = parser.parse_args()

    load_at_start = os.getloadavg()  # other jobs on the machine show up here and in the block medians
    rng = np.random.RandomState(0)
    train_batches = [make_batch(rng, args, i % args.languages, args.batch_size) for i in range(2 * args.languages)]
    held_out = {f"l{i}": make_batch(rng, args, i, args.probe_batch_size) for i in range(args.languages)}
    model = build_model(args)
    optimizer = keras.optimizers.Adam(3e-4)
    optimizer.build(model.trainable_variables)
    step_fn = plain_train_step(model, optimizer)
    steps = args.cycles * args.every_n_steps  # per side
    print(f"{args.languages} languages, batch {args.batch_size} x {args.sequence_length}, d={args.hidden_dim}, "
          f"{args.num_layers} layers, probe every {args.every_n_steps} steps on {args.probe_batch_size} x "
          f"{args.sequence_length} per language; {steps} steps per run", flush=True)

    start = time.perf_counter()
    for i in range(args.warmup):
        step_fn(train_batches[i % len(train_batches)]).numpy()
    print(f"  train step traced and warmed up in {time.perf_counter() - start:.1f}s", flush=True)

    log_dir = tempfile.mkdtemp(prefix="interference_probe_benchmark.")
    try:
        probe = GradientProbe(model, held_out, log_dir=log_dir, every_n_steps=args.every_n_steps)
        start = time.perf_counter()
        probe.record(0)
        probe_trace_seconds = time.perf_counter() - start
        print(f"  probe traced and run once in {probe_trace_seconds:.1f}s", flush=True)
        probe.total_seconds, probe.records = 0.0, 0

        def block(with_probe):
            """`every_n_steps` steps; with the probe, it fires once, after the block's last step."""
            step_times = []
            begin = time.perf_counter()
            for step in range(1, args.every_n_steps + 1):
                tick = time.perf_counter()
                step_fn(train_batches[step % len(train_batches)]).numpy()
                step_times.append(time.perf_counter() - tick)
                if with_probe:
                    probe.maybe_record(step)
            return time.perf_counter() - begin, step_times

        plain_seconds = probe_seconds = 0.0
        plain_steps, probed_steps = [], []
        for cycle in range(args.cycles):
            seconds, times = block(with_probe=False)
            plain_seconds += seconds
            plain_steps += times
            seconds, times = block(with_probe=True)
            probe_seconds += seconds
            probed_steps += times
            print(f"  cycle {cycle + 1}: without probe {plain_seconds:.1f}s, with probe {probe_seconds:.1f}s "
                  f"(cumulative; {probe.records} probes, {probe.total_seconds:.1f}s in the probe)", flush=True)
        # Probe parts, measured on their own: the similarity computation and the logging.
        compute_times = []
        for _ in range(2):
            tick = time.perf_counter()
            probe.function(None, resolved=probe.resolved)
            compute_times.append(time.perf_counter() - tick)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)

    step_median = statistics.median(plain_steps + probed_steps)
    probe_median = probe.total_seconds / max(probe.records, 1)
    measured = (probe_seconds - plain_seconds) / plain_seconds
    amortised = probe_median / (args.every_n_steps * step_median)
    share = probe.total_seconds / sum(probed_steps)
    rows = [
        ("train step (median)", step_median * 1000, "ms"),
        ("probe, one measurement + logging (mean)", probe_median * 1000, "ms"),
        ("probe, similarity computation only (median)", statistics.median(compute_times) * 1000, "ms"),
        ("probe / train step", probe_median / step_median, "x"),
        ("probe one-time trace + first run", probe_trace_seconds, "s"),
        (f"run of {steps} steps without probe", plain_seconds, "s"),
        (f"run of {steps} steps with probe", probe_seconds, "s"),
        ("train step, median in blocks without probe", statistics.median(plain_steps) * 1000, "ms"),
        ("train step, median in blocks with probe", statistics.median(probed_steps) * 1000, "ms"),
        (f"probe share: probe time / training time (every_n_steps={args.every_n_steps})", 100 * share, "%"),
        ("with/without difference (includes load drift)", 100 * measured, "%"),
        ("amortised: probe / (interval x median step)", 100 * amortised, "%"),
    ]
    print()
    for name, value, unit in rows:
        print(f"  {name:<66}{value:>10.2f} {unit}")
    met = share < TARGET
    print(f"\n  load average (1 min) at start {load_at_start[0]:.1f}, at end {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  target: probe share < {TARGET:.0%} at the default interval: {'met' if met else 'NOT met'}")
    report = {
        "benchmark": "interference_probe",
        "machine": machine_info(load_average_1_5_15min_at_start=list(load_at_start),
                                load_average_1_5_15min_at_end=list(os.getloadavg())),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "train_step_median_seconds": step_median,
        "probe_mean_seconds": probe_median,
        "probe_compute_median_seconds": statistics.median(compute_times),
        "probe_trace_seconds": probe_trace_seconds,
        "run_without_probe_seconds": plain_seconds,
        "run_with_probe_seconds": probe_seconds,
        "probes_in_run": probe.records,
        "plain_block_step_median_seconds": statistics.median(plain_steps),
        "probe_block_step_median_seconds": statistics.median(probed_steps),
        "probe_share_of_training_time": share,
        "overhead_with_minus_without": measured,
        "overhead_amortised": amortised,
        "target_overhead": TARGET,
        "target_met": met,
    }
    write_results(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
