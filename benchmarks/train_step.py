"""Step time of JointAll, JointAll+LS and the +Meta LS estimators, measured in one run.

Same model size (the `small` preset: d=256, 4 layers, 4 heads, FFN 1024,
sequence 128, batch 32, vocabulary 8000, adapters r=64), same token batches
for every variant, 6 languages, a meta update on every step. Reported per
variant: the median time of one training iteration (for +Meta LS: the
ordinary step plus the meta update of the batch's language) and its ratio to
the JointAll+LS step. Also timed, to show where the time goes: the meta update
alone, the look-ahead forward/backward, and the meta-loss forward.

Variants:
- joint_all:        ordinary step, no LS layers
- joint_all_ls:     ordinary step with adapters (the baseline of the ratios)
- meta_exact:       the paper's estimator (second order), meta loss in ONE mixed batch
- meta_first_order: without the Hessian-vector term
- meta_reuse:       look-ahead with the ordinary step's gradient (a different estimator)
- meta_naive_loop:  exact, but the meta loss loops over languages in Python
                    (one forward per language on that language's rows of the same batch)
- meta_reference_loop: exact, the meta loss as the reference code computes it: a
                    held-out batch of the full batch size for every language, one
                    forward pass each

    python benchmarks/train_step.py            # prints the table, writes JSON
    python benchmarks/train_step.py --steps 3  # quicker

All variants are built and traced first, then timed in interleaved rounds
(each round runs every variant once), so a change of machine load during the
run affects every variant alike and the ratios stay within-run comparisons.

Targets (one run): meta_exact <= 4.0x, meta_first_order <= 2.5x the
joint_all_ls step; meta_naive_loop / meta_exact >= 2.

Gradient surgery (``--part surgery``; both parts by default), at L=2 and L=6
languages in the same run, on one MIXED batch (every language in it):
- joint_all:           the ordinary step on the mixed batch (the baseline of the ratios)
- joint_all_pcgrad:    PCGrad, whole shared model
- joint_all_gradvac:   GradVac, per layer group
- joint_all_ls / joint_all_ls_gradvac: the same with adapters
- per-language passes: the L per-language forward/backward passes alone (the floor of
                       any surgery that needs each language's gradient)
- L backward passes over the batch: the naive way to the same gradients (one forward,
                       then one backward pass over the whole batch per language)

    python benchmarks/train_step.py --part surgery --steps 8

Targets (one run): surgery <= 2.0x the joint_all step at L=2, <= 4.0x at L=6.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_metaling.losses import masked_lm_example_losses, mean_loss  # noqa: E402
from tf_metaling.meta.gradient_surgery import GradientSurgery, SurgeryOptions  # noqa: E402
from tf_metaling.meta.meta_step import MetaOptions, MetaStep  # noqa: E402
from tf_metaling.models import MultilingualEncoder, MultilingualModel, partition_variables  # noqa: E402
from tf_metaling.optimizers import RowSparseAdam  # noqa: E402
from results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

RESULTS = RESULTS_DIR


def mlm_losses(outputs, batch):
    return masked_lm_example_losses(outputs["masked_lm_logits"], batch)


class NaiveLoopMetaStep(MetaStep):
    """The meta loss as a Python loop: one forward pass per language (reference style)."""

    def __init__(self, *args, examples_per_language, **kwargs):
        super().__init__(*args, **kwargs)
        self.examples_per_language = examples_per_language

    def _meta_loss(self, meta_batch, shared_values, language_values, language, own_rows_tape=None):
        if own_rows_tape is not None:
            raise NotImplementedError("the naive loop is timed for the exact estimator only")
        losses = []
        n = self.examples_per_language
        for index in range(self.num_languages):
            rows = {key: value[index * n:(index + 1) * n] for key, value in meta_batch.items()}
            rows["language_ids"] = tf.constant(index, tf.int32)  # a one-language batch
            losses.append(mean_loss(*self._losses(rows, shared_values, language_values)))
        return tf.add_n(losses) / len(losses)


def make_batch(rng, batch_size, args, language_ids):
    return {
        "token_ids": tf.constant(rng.randint(5, args.vocabulary_size, (batch_size, args.sequence_length)), tf.int32),
        "padding_mask": tf.ones((batch_size, args.sequence_length), tf.int32),
        "language_ids": tf.constant(language_ids, tf.int32),
        "mask_positions": tf.constant(
            np.stack([rng.choice(args.sequence_length, args.predictions, replace=False) for _ in range(batch_size)]),
            tf.int32,
        ),
        "mask_ids": tf.constant(rng.randint(5, args.vocabulary_size, (batch_size, args.predictions)), tf.int32),
        "mask_weights": tf.ones((batch_size, args.predictions), tf.float32),
    }


def build(args, language_specific, options=None, naive=False, languages=None, surgery=None):
    """A step on the benchmark's model; one-language batches unless `surgery` (or `languages`) is given."""
    keras.utils.set_random_seed(0)
    encoder = MultilingualEncoder(
        vocabulary_size=args.vocabulary_size,
        languages=[f"l{i}" for i in range(languages or args.languages)],
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_dim=4 * args.hidden_dim,
        max_sequence_length=args.sequence_length,
        language_specific=language_specific,
        adapter_dim=args.adapter_dim,
    )
    model = MultilingualModel(encoder)
    shared = RowSparseAdam(1e-4)
    shared.build(model.trainable_variables)
    meta = None
    if options is not None:
        meta = RowSparseAdam(1e-4)
        meta.build(list(partition_variables(model).language))
    options = dataclasses.replace(options or MetaOptions(), one_language_batches=languages is None)
    cls = NaiveLoopMetaStep if naive else MetaStep
    extra = {"examples_per_language": naive} if naive else {}
    if surgery is not None:
        extra["surgery"] = GradientSurgery(model, surgery)
    return cls(model, mlm_losses, shared, meta, options, output_names=("masked_lm_logits",), **extra)


def run_interleaved(functions: dict, warmup: int, rounds: int) -> dict:
    """Times every function once per round, in turn: a change of machine load hits all alike.

    `functions` maps a name to ``(fn, args)``. Returns ``{name: [seconds per round]}``.
    """
    for fn, fn_args in functions.values():
        for _ in range(warmup):
            tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, (fn, fn_args) in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
            times[name].append(time.perf_counter() - start)
    return times


SURGERY_LANGUAGES = (2, 6)
SURGERY_VARIANTS = {
    "joint_all_pcgrad": (None, SurgeryOptions("pcgrad", granularity="model")),
    "joint_all_gradvac": (None, SurgeryOptions("gradvac", granularity="layer_group")),
    "joint_all_ls": ("adapter", None),
    "joint_all_ls_gradvac": ("adapter", SurgeryOptions("gradvac", granularity="layer_group")),
}


def surgery_functions(args, rng) -> tuple:
    """``({name: (fn, args)}, {name: note})`` of the surgery part, at each L of `SURGERY_LANGUAGES`."""
    functions, notes = {}, {}
    for languages in SURGERY_LANGUAGES:
        mixed = make_batch(rng, args.batch_size, args, np.arange(args.batch_size) % languages)
        plain = build(args, None, languages=languages)
        functions[f"L={languages} joint_all"] = (tf.function(plain.ordinary_step, autograph=False), (mixed,))
        for name, (language_specific, options) in SURGERY_VARIANTS.items():
            step = build(args, language_specific, languages=languages, surgery=options)
            function = tf.function(step.ordinary_step, autograph=False)
            start = time.perf_counter()
            function.get_concrete_function(mixed)
            notes[f"L={languages} {name}"] = f"(trace {time.perf_counter() - start:.0f}s)"
            functions[f"L={languages} {name}"] = (function, (mixed,))
        floor = build(args, None, languages=languages)

        def per_language_passes(batch, step=floor):
            gradients, loss_sums, _ = step.per_language_gradients(batch, list(step.model.trainable_variables))
            # Every gradient reaches the output: a traced function prunes what nothing reads.
            return loss_sums, tf.add_n([tf.reduce_sum(tf.convert_to_tensor(g)) for per_language in gradients
                                        for g in per_language if g is not None])

        def full_batch_passes(batch, step=floor):
            # The naive way to the same gradients: one forward, then L backward passes over the
            # whole batch, each of one language's loss.
            variables = list(step.model.trainable_variables)
            language_ids = tf.cast(batch["language_ids"], tf.int32)
            with tf.GradientTape(persistent=True) as tape:
                loss_sums, _ = step._losses(batch)
                losses = [tf.reduce_sum(tf.where(tf.equal(language_ids, language), loss_sums, 0.0))
                          for language in range(languages)]
            gradients = [tape.gradient(loss, variables) for loss in losses]
            touched = [tf.reduce_sum(tf.convert_to_tensor(g)) for per_language in gradients
                       for g in per_language if g is not None]
            return tf.stack(losses), tf.add_n(touched)

        passes = tf.function(per_language_passes, autograph=False)
        functions[f"  L={languages} piece: per-language passes"] = (passes, (mixed,))
        naive = tf.function(full_batch_passes, autograph=False)
        functions[f"  L={languages} piece: L backward passes over the batch"] = (naive, (mixed,))
    return functions, notes


def surgery_report(by_name: dict, samples: dict) -> dict:
    """Ratios to the joint_all step at the same L (medians and per-round ranges), printed."""
    targets = {2: 2.0, 6: 4.0}
    ratios, per_round, met = {}, {}, {}
    print("\nsurgery: ratios to the joint_all step on the same mixed batch, at the same L "
          "(one run; medians, and the range of the per-round ratios):")
    for languages in SURGERY_LANGUAGES:
        base = f"L={languages} joint_all"
        names = [f"L={languages} {name}" for name in SURGERY_VARIANTS] + [
            f"  L={languages} piece: per-language passes",
            f"  L={languages} piece: L backward passes over the batch",
        ]
        for name in names:
            key = name.strip()
            ratios[key] = by_name[name] / by_name[base]
            per_round[key] = [a / b for a, b in zip(samples[name], samples[base])]
            surgical = "piece" not in name and not name.endswith(" joint_all_ls")
            target = targets[languages] if surgical else None
            suffix = ""
            if target is not None:
                met[key] = ratios[key] <= target
                suffix = f"  (target <= {target}: {'met' if met[key] else 'NOT met'})"
            spread = f"rounds {min(per_round[key]):.2f}-{max(per_round[key]):.2f}"
            print(f"  {key:<46}{ratios[key]:>6.2f}x  {spread}{suffix}")
    return {"ratios_to_joint_all": ratios, "ratios_per_round": per_round, "targets_met": met}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_dim", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--adapter_dim", type=int, default=64)
    parser.add_argument("--vocabulary_size", type=int, default=8000)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--languages", type=int, default=6)
    parser.add_argument("--meta_examples_per_language", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="rounds; each round times every variant once")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--part", choices=("all", "meta", "surgery"), default="all",
                        help="meta: JointAll, +LS and the meta estimators; "
                             "surgery: PCGrad / GradVac at L=2 and 6")
    parser.add_argument("--output", default=None,
                        help="default: results/train_step.json (all, meta), "
                             "results/train_step_surgery.json (surgery)")
    args = parser.parse_args()
    args.output = args.output or os.path.join(RESULTS, "train_step_surgery.json" if args.part == "surgery"
                                              else "train_step.json")
    if args.part == "surgery":
        return surgery_main(args)

    rng = np.random.RandomState(0)
    k = min(2, args.languages - 1)
    train = make_batch(rng, args.batch_size, args, [k] * args.batch_size)
    lookahead = make_batch(rng, args.batch_size, args, [k] * args.batch_size)
    meta_languages = np.repeat(np.arange(args.languages), args.meta_examples_per_language)
    meta = make_batch(rng, len(meta_languages), args, meta_languages)
    reference_languages = np.repeat(np.arange(args.languages), args.batch_size)
    reference_meta = make_batch(rng, len(reference_languages), args, reference_languages)
    language = tf.constant(k)

    print(f"{args.languages} languages, batch {args.batch_size} x {args.sequence_length}, d={args.hidden_dim}, "
          f"{args.num_layers} layers, meta batch {len(meta_languages)}; building and tracing ...", flush=True)
    functions, notes = {}, {}
    plain = build(args, None)
    functions["joint_all"] = (tf.function(plain.ordinary_step, autograph=False), (train,))
    with_ls = build(args, "adapter")
    functions["joint_all_ls"] = (tf.function(with_ls.ordinary_step, autograph=False), (train,))
    variants = {
        "meta_exact": (MetaOptions(), 0, meta),
        "meta_first_order": (MetaOptions(first_order=True), 0, meta),
        "meta_reuse": (MetaOptions(reuse_ordinary_gradient=True), 0, meta),
        "meta_naive_loop": (MetaOptions(), args.meta_examples_per_language, meta),
        "meta_reference_loop": (MetaOptions(), args.batch_size, reference_meta),
    }
    for name, (options, naive, meta_batch) in variants.items():
        step = build(args, "adapter", options, naive=naive)
        full = tf.function(step.meta_step, autograph=False)
        start = time.perf_counter()
        full.get_concrete_function(train, lookahead, meta_batch, language)
        notes[name] = f"(trace {time.perf_counter() - start:.0f}s)"
        functions[name] = (full, (train, lookahead, meta_batch, language))
        if name in ("meta_exact", "meta_first_order"):
            update = tf.function(step.meta_update, autograph=False)
            functions[f"  {name}: meta update only"] = (update, (lookahead, meta, language))

    # Pieces of the exact meta update, to show where its time goes.
    step = build(args, "adapter", MetaOptions())
    shared = list(step.partition.shared)
    phi = list(step.partition.language)

    def lookahead_only(batch):
        with tf.GradientTape() as tape:
            loss = mean_loss(*step._losses(batch, one_language=True))
        return tape.gradient(loss, shared)

    def meta_forward_only(batch):
        return step._meta_loss(batch, [tf.convert_to_tensor(v) for v in shared], [tf.convert_to_tensor(v) for v in phi], language)

    functions["  piece: look-ahead fwd+bwd"] = (tf.function(lookahead_only, autograph=False), (lookahead,))
    functions["  piece: meta-loss forward"] = (tf.function(meta_forward_only, autograph=False), (meta,))
    if args.part == "all":
        more, more_notes = surgery_functions(args, rng)
        functions.update(more)
        notes.update(more_notes)

    times = run_interleaved(functions, args.warmup, args.steps)
    rows = []
    for name, samples in times.items():
        seconds = statistics.median(samples)
        rows.append({"variant": name, "median_seconds": seconds, "samples": samples, "note": notes.get(name, "")})
        print(f"  {name:<48}{seconds * 1000:>9.0f} ms  {notes.get(name, '')}", flush=True)

    by_name = {r["variant"]: r["median_seconds"] for r in rows}
    base = by_name["joint_all_ls"]
    ratios = {
        name: by_name[name] / base
        for name in ("joint_all", "meta_exact", "meta_first_order", "meta_reuse", "meta_naive_loop",
                     "meta_reference_loop")
    }
    ratios["naive_loop_over_batched"] = by_name["meta_naive_loop"] / by_name["meta_exact"]
    ratios["reference_loop_over_batched"] = by_name["meta_reference_loop"] / by_name["meta_exact"]
    targets = {"meta_exact": 4.0, "meta_first_order": 2.5}
    met = {
        "meta_exact": ratios["meta_exact"] <= 4.0,
        "meta_first_order": ratios["meta_first_order"] <= 2.5,
        "naive_loop_over_batched": ratios["naive_loop_over_batched"] >= 2.0,
        "reference_loop_over_batched": ratios["reference_loop_over_batched"] >= 2.0,
    }
    # The same ratios round by round (each round times every variant once): their spread
    # shows how much of a ratio is the machine's noise.
    samples = {r["variant"]: r["samples"] for r in rows}
    per_round = {
        name: [a / b for a, b in zip(samples[numerator], samples[denominator])]
        for name, (numerator, denominator) in {
            **{n: (n, "joint_all_ls") for n in ("joint_all", "meta_exact", "meta_first_order", "meta_reuse",
                                                 "meta_naive_loop", "meta_reference_loop")},
            "naive_loop_over_batched": ("meta_naive_loop", "meta_exact"),
            "reference_loop_over_batched": ("meta_reference_loop", "meta_exact"),
        }.items()
    }
    print("\nratios to the joint_all_ls step (one run; medians, and the range of the per-round ratios):")
    for name, value in ratios.items():
        target = targets.get(name)
        suffix = f"  (target <= {target}: {'met' if met.get(name) else 'NOT met'})" if target else ""
        if name in ("naive_loop_over_batched", "reference_loop_over_batched"):
            suffix = f"  (target >= 2.0: {'met' if met[name] else 'NOT met'})"
        spread = f"  rounds {min(per_round[name]):.2f}-{max(per_round[name]):.2f}"
        print(f"  {name:<28}{value:>6.2f}x{spread}{suffix}")
    # Where the exact iteration's time goes (medians of pieces timed in the same rounds).
    update = by_name["  meta_exact: meta update only"]
    look_ahead = by_name["  piece: look-ahead fwd+bwd"]
    meta_forward = by_name["  piece: meta-loss forward"]
    breakdown = {
        "ordinary step (= joint_all_ls)": base,
        "look-ahead forward + backward": look_ahead,
        "meta-loss forward at theta'": meta_forward,
        "meta-loss backward to phi_k, through the look-ahead (second order) + meta Adam": max(
            update - look_ahead - meta_forward, 0.0
        ),
    }
    total = by_name["meta_exact"]
    print(f"\nwhere the exact meta iteration's {total * 1000:.0f} ms go (medians of pieces):")
    for name, seconds in breakdown.items():
        print(f"  {name:<80}{seconds * 1000:>7.0f} ms  {seconds / total:>5.0%}")
    surgery = surgery_report(by_name, samples) if args.part == "all" else None
    report = {
        "benchmark": "train_step",
        "surgery": surgery,
        "breakdown_of_meta_exact_seconds": breakdown,
        "machine": machine_info(),
        "settings": {k2: v for k2, v in vars(args).items() if k2 != "output"},
        "rows": rows,
        "ratios_to_joint_all_ls": ratios,
        "ratios_per_round": per_round,
        "targets_met": met,
    }
    write_results(args.output, report)
    print(f"wrote {args.output}")


def surgery_main(args):
    """The surgery part alone (``--part surgery``)."""
    rng = np.random.RandomState(0)
    print(f"batch {args.batch_size} x {args.sequence_length}, d={args.hidden_dim}, {args.num_layers} layers, "
          f"mixed batches at L={list(SURGERY_LANGUAGES)}; building and tracing ...", flush=True)
    functions, notes = surgery_functions(args, rng)
    times = run_interleaved(functions, args.warmup, args.steps)
    rows = []
    for name, samples in times.items():
        seconds = statistics.median(samples)
        rows.append({"variant": name.strip(), "median_seconds": seconds, "samples": samples,
                     "note": notes.get(name, "")})
        print(f"  {name:<48}{seconds * 1000:>9.0f} ms  {notes.get(name, '')}", flush=True)
    by_name = {name: statistics.median(samples) for name, samples in times.items()}
    report = {
        "benchmark": "train_step_surgery",
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "rows": rows,
        **surgery_report(by_name, times),
    }
    write_results(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
