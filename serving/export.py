"""Export a multilingual model as a TF Serving version directory.

    python -m serving.export --model_dir=/tmp/run --export_base=/tmp/exports \
        --model_name=metaling [--version=3] [--unknown_language=default --default_language=en]

writes ``<export_base>/<model_name>/<version>/`` (integer versions, TF Serving's
layout; the next free version by default) holding the SavedModel with the
signatures of `serving.signatures`, ``assets.extra/tf_serving_warmup_requests``
and ``model_card.md``. Everything is written into a hidden temporary directory
beside the versions and renamed into place at the end, so a crash never leaves a
half-written version where a server watching the base path would load it (TF
Serving ignores directories whose names are not integers).

Python API: `export_model` (a Keras `MultilingualModel`) and `export_model_dir`
(a trainer's model_dir: newest or given checkpoint, its vocabulary, config and
metrics).

A model trained on synthetic languages (``data.corpus=synthetic``) reads each
language's ids shifted into its own range: the export repeats those
transforms inside the text signatures, from ``model_dir/synthetic_languages.json``
(or, for a model_dir written before that file existed, from config.yaml's
languages when they reproduce the model's vocabulary size exactly). When it
cannot, it refuses before writing anything and says so; ``--token_ids_only``
exports the token-id signatures, which need no tokenizer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf
import yaml
from absl import app, flags, logging
from tensorflow.core.framework import types_pb2

from serving import model_card, op_check, warmup
from serving.servable import LANGUAGES_FILE
from serving.signatures import ServingModule
from tf_metaling import checkpoints
from tf_metaling.data.corpora.synthetic_corpus import SyntheticCorpus
from tf_metaling.data.synthetic import SYNTHETIC_LANGUAGES_FILE, SyntheticLanguages
from tf_metaling.languages import LanguageVocabulary

_VERSION_PATTERN = re.compile(r"^\d+$")
TRAINING_CONFIG_FILE = "config.yaml"
# LANGUAGES_FILE: the exported language vocabulary (codes in index order, unknown
# policy), for clients and tools; TF Serving ignores assets.extra beyond the warmup file.
METRICS_FILE = "eval_results.json"


def existing_versions(model_base_path: str) -> list:
    """The integer version directories under a model base path, ascending."""
    if not os.path.isdir(model_base_path):
        return []
    return sorted(
        int(name)
        for name in os.listdir(model_base_path)
        if _VERSION_PATTERN.match(name) and os.path.isdir(os.path.join(model_base_path, name))
    )


def next_version(model_base_path: str) -> int:
    versions = existing_versions(model_base_path)
    return versions[-1] + 1 if versions else 1


def export_model(
    model,
    export_base: str,
    model_name: str,
    version: int | None = None,
    *,
    tokenizer=None,
    unknown_language: str | None = None,
    default_language: str | None = None,
    top_k: int = 5,
    warmup_texts: dict | None = None,
    training_config: str | None = None,
    metrics: dict | None = None,
    source: str | None = None,
    synthetic_languages=None,
) -> str:
    """Exports `model` to ``<export_base>/<model_name>/<version>`` and returns that path.

    Args:
        model: a `MultilingualModel`.
        export_base: the directory that holds one base path per model name.
        model_name: the served model name (a directory name).
        version: a positive integer; default one more than the newest existing version.
        tokenizer: the model's `Tokenizer`; without it only token-id signatures exist.
        unknown_language: ``"error"`` or ``"default"``; default the model's policy.
        default_language: the fallback code when ``unknown_language="default"``.
        top_k: candidates per masked position in ``fill_mask``.
        warmup_texts: optional ``{language: sample text}`` for the warmup requests.
        training_config, metrics, source: recorded in the model card.
        synthetic_languages: the `SyntheticLanguages` a synthetic-language
            model was trained on (text signatures apply their transforms).
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", model_name or ""):
        raise ValueError(f"model_name={model_name!r}: expected letters, digits, '_', '.', '-'.")
    base_path = os.path.join(export_base, model_name)
    if version is None:
        version = next_version(base_path)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version={version!r}: expected a positive integer.")
    final_path = os.path.join(base_path, str(version))
    if os.path.exists(final_path):
        raise FileExistsError(f"{final_path} exists: TF Serving versions are immutable; pick a new version.")

    model_languages = model.language_vocabulary
    policy = unknown_language or model_languages.unknown
    fallback = (
        default_language
        if default_language is not None
        else (model_languages.default_language if policy == model_languages.unknown else None)
    )
    languages = LanguageVocabulary(model_languages.codes, unknown=policy, default_language=fallback)
    module = ServingModule(
        model, tokenizer=tokenizer, languages=languages, top_k=top_k, synthetic_languages=synthetic_languages
    )
    functions = module.signature_functions()

    os.makedirs(base_path, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=base_path)
    try:
        tf.saved_model.save(module, temporary, signatures=functions)
        _set_method_names(temporary, module.method_names())
        logs = warmup.build_warmup_logs(module, model_name, warmup_texts)
        warmup.write_warmup_file(warmup.warmup_path(temporary), logs)
        with open(os.path.join(temporary, LANGUAGES_FILE), "w", encoding="utf-8") as file:
            file.write(languages.to_json())
        card = model_card.render_model_card(
            model,
            module,
            model_name,
            version,
            signature_specs(temporary),
            training_config=training_config,
            metrics=metrics,
            source=source or "a Keras model",
        )
        with open(os.path.join(temporary, model_card.MODEL_CARD_FILE), "w", encoding="utf-8") as file:
            file.write(card)
        os.chmod(temporary, 0o755)  # mkdtemp makes it owner-only; servers may run as another user
        os.rename(temporary, final_path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final_path


def export_model_dir(
    model_dir: str,
    export_base: str,
    model_name: str,
    version: int | None = None,
    *,
    checkpoint_path: str | None = None,
    vocab_file: str | None = None,
    token_ids_only: bool = False,
    **options,
) -> str:
    """Exports a trainer's model_dir (model.json + checkpoint, vocab.txt, config, metrics).

    With `token_ids_only` no tokenizer is exported (token-id signatures only).
    """
    model = checkpoints.restore_model(model_dir, checkpoint_path)
    vocab_file = None if token_ids_only else (vocab_file or checkpoints.vocab_path(model_dir))
    tokenizer = checkpoints.load_tokenizer(vocab_file) if vocab_file else None
    if tokenizer is not None and "synthetic_languages" not in options:
        options["synthetic_languages"] = synthetic_languages_of(model_dir, model, tokenizer)
    config_path = os.path.join(model_dir, TRAINING_CONFIG_FILE)
    if "training_config" not in options and os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as file:
            options["training_config"] = file.read()
    metrics_path = os.path.join(model_dir, METRICS_FILE)
    if "metrics" not in options and os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as file:
            options["metrics"] = json.load(file)
    source = checkpoint_path or checkpoints.latest_checkpoint(model_dir)
    return export_model(model, export_base, model_name, version, tokenizer=tokenizer, source=source, **options)


def synthetic_languages_of(model_dir: str, model, tokenizer):
    """The synthetic languages a model_dir's model was trained on, or None for real languages.

    Raises:
        ValueError: before anything is written, when the model was trained on
            synthetic languages whose definitions cannot be recovered exactly.
    """
    recorded = SyntheticLanguages.load(model_dir)
    if recorded is not None:
        return recorded
    config_path = os.path.join(model_dir, TRAINING_CONFIG_FILE)
    if not os.path.exists(config_path):
        return None
    with open(config_path, encoding="utf-8") as file:
        config = yaml.safe_load(file) or {}
    data = config.get("data") or {}
    size = model.encoder.vocabulary_size
    # Real languages: not a synthetic corpus, a tokenizer that covers the model's ids, or a
    # model fine-tuned from a pretrained preset (its vocabulary is the preset's).
    if data.get("corpus") != "synthetic" or tokenizer.vocab_size == size:
        return None
    if (config.get("finetune") or {}).get("init_preset"):
        return None
    codes = list(data.get("languages") or [])
    if codes and codes == list(model.language_vocabulary.codes):
        rebuilt = SyntheticCorpus.definitions(codes, tokenizer.vocab_size)
        if rebuilt.vocab_size == size:
            return rebuilt
    raise ValueError(
        f"{model_dir} holds a model trained on synthetic languages ({config_path}: data.corpus=synthetic): "
        f"its {size} ids are the tokenizer's {tokenizer.vocab_size} shifted into one range per language, "
        f"and {SYNTHETIC_LANGUAGES_FILE}, which says which range and word order each language uses, is "
        f"missing (config.yaml's languages {codes} do not reproduce {size} ids). Retrain with this version "
        "(it writes that file), or export the token-id signatures only (--token_ids_only), whose callers "
        "send ids already shifted."
    )


def signature_specs(export_dir: str) -> dict:
    """``{signature: (inputs, outputs)}`` as ``"name dtype [shape]"`` strings, from saved_model.pb."""
    meta_graph = op_check.read_saved_model(export_dir).meta_graphs[0]

    def describe(infos):
        described = []
        for key in sorted(infos):
            info = infos[key]
            dims = ["?" if d.size < 0 else str(d.size) for d in info.tensor_shape.dim]
            dtype = types_pb2.DataType.Name(info.dtype)[3:].lower()
            described.append(f"{key} {dtype} [{','.join(dims)}]")
        return described

    return {
        name: (describe(signature.inputs), describe(signature.outputs))
        for name, signature in sorted(meta_graph.signature_def.items())
        if not name.startswith("__")
    }


def _set_method_names(export_dir: str, method_names: dict) -> None:
    # tf.saved_model.save marks every signature "predict"; TF Serving's Classify
    # API only runs signatures whose method name says "classify".
    proto = op_check.read_saved_model(export_dir)
    for meta_graph in proto.meta_graphs:
        for name, method in method_names.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    with open(os.path.join(export_dir, "saved_model.pb"), "wb") as file:
        file.write(proto.SerializeToString())


# ---------------------------------------------------------------------- command line
def define_flags(flag_values=None):
    """Defines the exporter's flags on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("model_dir", None, "A trainer's model_dir (model.json + checkpoints).", flag_values=values)
    flags.DEFINE_string("checkpoint", None, "A ckpt-N prefix in model_dir (default: newest).", flag_values=values)
    flags.DEFINE_string(
        "vocab_file", None, "Tokenizer vocabulary (default: model_dir/vocab.txt if present).", flag_values=values
    )
    flags.DEFINE_string("export_base", None, "Directory holding one base path per model name.", flag_values=values)
    flags.DEFINE_string("model_name", "tf_metaling", "Served model name.", flag_values=values)
    flags.DEFINE_integer("version", None, "Version number (default: next free).", flag_values=values)
    flags.DEFINE_enum(
        "unknown_language",
        None,
        ["error", "default"],
        "Unknown-language policy (default: the model's).",
        flag_values=values,
    )
    flags.DEFINE_string(
        "default_language", None, "Fallback language for --unknown_language=default.", flag_values=values
    )
    flags.DEFINE_integer("top_k", 5, "Candidates per masked position in fill_mask.", flag_values=values)
    flags.DEFINE_bool(
        "token_ids_only", False, "Export without the tokenizer: token-id signatures only.", flag_values=values
    )
    flags.mark_flags_as_required(["model_dir", "export_base"], flag_values=values)


def export_from_flags(values) -> str:
    """Runs the export that parsed flag values describe; returns the version directory."""
    return export_model_dir(
        values.model_dir,
        values.export_base,
        values.model_name,
        values.version,
        checkpoint_path=values.checkpoint,
        vocab_file=values.vocab_file,
        token_ids_only=values.token_ids_only,
        unknown_language=values.unknown_language,
        default_language=values.default_language,
        top_k=values.top_k,
    )


def main(argv):
    del argv
    path = export_from_flags(flags.FLAGS)
    logging.info("exported %s", path)
    print(path)


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
