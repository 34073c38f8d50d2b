"""Language layers as portable files: some languages' LS weights, saved, checked, loaded, or added.

A language module is row l of every language-specific variable of an encoder
(see `tf_metaling.models.partition`): its adapters, or LS attention,
feed-forward, layer norms and language embedding, whatever kinds it has. The
LS layers of one or more languages are saved to a small file with a manifest
and loaded into another encoder on the same base model (in another run, or
under another task head), as language adapters are shared in MAD-X: a
language the encoder lacks is added (`add_language`), one it has is
replaced, and every shared weight and every other language stays
bit-identical.

File format: a NumPy ``.npz`` written atomically (temporary name, then
rename), holding per LS variable one array stacked over the file's languages
(keyed by the variable's path inside the encoder, `partition.variable_key`)
and a JSON ``__meta__`` manifest:

- ``languages``: the codes, in the arrays' order;
- ``language_specific``: the LS kinds (slots), the blocks that have them,
  adapter size and activation, language embeddings; ``variables``: each
  array's per-language shape and dtype;
- ``base``: the base model's identity: its architecture (sizes, activation,
  layer-norm epsilon, positions, segments, padding id), the shapes of its
  shared weights and a SHA-256 fingerprint of their values;
- ``provenance``: what the caller says produced the weights (run directory,
  checkpoint, step, config), with the time of saving and the library version.

Loading checks the file against the encoder first and refuses a different
base, listing every difference; nothing is assigned unless all checks pass.
"""

from __future__ import annotations

import datetime
import hashlib
import json

import numpy as np

from tf_metaling import __version__
from tf_metaling.atomic_files import atomic_path
from tf_metaling.models.multilingual_encoder import MultilingualEncoder
from tf_metaling.models.partition import language_specific_variables, variable_key

FORMAT_VERSION = 2
MANIFEST_ENTRY = "__meta__"
# The encoder arguments that fix the shared computation (the base model's architecture).
ARCHITECTURE_FIELDS = (
    "vocabulary_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim", "max_sequence_length",
    "activation", "normalize_first", "layer_norm_epsilon", "num_segments", "pad_token_id",
)  # fmt: skip
# The encoder arguments that fix the LS layers' layout.
LANGUAGE_SPECIFIC_FIELDS = ("language_specific", "language_specific_layers", "adapter_dim", "adapter_activation",
                            "language_embedding")  # fmt: skip


def _encoder(model) -> MultilingualEncoder:
    encoder = getattr(model, "encoder", model)
    if not isinstance(encoder, MultilingualEncoder):
        raise TypeError(f"{model.name!r}: expected a MultilingualEncoder or a model with one (.encoder).")
    return encoder


def _codes(languages) -> list[str]:
    codes = [languages] if isinstance(languages, str) else list(languages)
    if not codes or len(set(codes)) != len(codes):
        raise ValueError(f"languages={languages!r}: expected one code or a list of distinct codes.")
    return codes


def _layout(encoder) -> tuple[dict, list, list]:
    """``({key: LS variable}, shared keys, shared variables)`` of `encoder`, frozen variables included."""
    language = language_specific_variables(encoder)
    if not language:
        raise ValueError(f"{encoder.name!r} has no language-specific layers.")
    routed = {id(variable) for variable in language}
    keyed = {variable_key(variable): variable for variable in language}
    shared = [variable for variable in encoder.weights if id(variable) not in routed]
    return keyed, [variable_key(variable) for variable in shared], shared


def _config_value(value):
    return list(value) if isinstance(value, tuple) else value


def base_identity(model) -> dict:
    """The base model an encoder's LS layers belong to: architecture, shared shapes, fingerprint."""
    encoder = _encoder(model)
    _, keys, shared = _layout(encoder)
    config = encoder.get_config()
    digest = hashlib.sha256()
    # float32 bytes in key order: the same weights give the same fingerprint in any dtype.
    for key, variable in sorted(zip(keys, shared), key=lambda pair: pair[0]):
        digest.update(key.encode("utf-8") + b"\0")
        digest.update(np.ascontiguousarray(variable.numpy(), dtype="<f4").tobytes())
    return {
        "architecture": {field: _config_value(config[field]) for field in ARCHITECTURE_FIELDS},
        "shared_shapes": {key: list(variable.shape) for key, variable in zip(keys, shared)},
        "fingerprint": "sha256:" + digest.hexdigest(),
    }


def language_module(model, languages) -> dict:
    """``{variable key: array [n, ...]}`` of the LS weights of `languages` (a code or a list), in that order."""
    encoder = _encoder(model)
    codes = _codes(languages)
    vocabulary = encoder.language_vocabulary
    missing = [code for code in codes if code not in vocabulary]
    if missing:
        raise KeyError(f"Languages {missing} are not in {list(vocabulary.codes)}.")
    rows = [vocabulary.index(code) for code in codes]
    keyed, _, _ = _layout(encoder)
    return {key: np.asarray(variable.numpy()[rows]) for key, variable in keyed.items()}


def save_language_module(model, languages, path, provenance: dict | None = None) -> str:
    """Writes the LS layers of `languages` (a code or a list) to `path` (.npz), atomically; returns the path.

    Args:
        model: a `MultilingualEncoder`, or a model with one (``.encoder``).
        languages: the language code(s) to save.
        path: the file to write.
        provenance: JSON-serialisable facts about how the weights were
            trained (run directory, checkpoint, step, config, data); the
            time of saving and the library version are added.
    """
    encoder = _encoder(model)
    codes = _codes(languages)
    weights = language_module(encoder, codes)
    config = encoder.get_config()
    manifest = {
        "format": "tf_metaling language layers",
        "format_version": FORMAT_VERSION,
        "languages": codes,
        "language_specific": {field: _config_value(config[field]) for field in LANGUAGE_SPECIFIC_FIELDS},
        "variables": {
            key: {"shape": list(array.shape[1:]), "dtype": str(array.dtype)} for key, array in weights.items()
        },  # fmt: skip
        "base": base_identity(encoder),
        "provenance": {
            **(provenance or {}),
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "tf_metaling_version": __version__,
        },
    }
    manifest_json = json.dumps(manifest)  # fails here, before any file exists, if provenance is not JSON
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **{MANIFEST_ENTRY: np.array(manifest_json)}, **weights)
    return str(path)


def read_language_module(path) -> tuple[dict, dict]:
    """``(manifest, {variable key: array [n, ...]})`` of a language-layers file; errors name the file."""
    path = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if MANIFEST_ENTRY not in data.files:
                raise ValueError(f"no {MANIFEST_ENTRY} entry; not a language-layers file")
            manifest = json.loads(str(data[MANIFEST_ENTRY]))
            weights = {name: data[name] for name in data.files if name != MANIFEST_ENTRY}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: cannot read language layers: {error}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r}; this library reads {FORMAT_VERSION} (version 1 files hold "
            "no base-model identity: save the layers again from the model they came from)."
        )
    languages = manifest.get("languages")
    base = manifest.get("base")
    if (
        not isinstance(languages, list)
        or not all(isinstance(code, str) for code in languages)
        or not isinstance(manifest.get("language_specific"), dict)
        or not isinstance(base, dict)
        or not all(
            isinstance(base.get(key), kind)
            for key, kind in (("architecture", dict), ("shared_shapes", dict), ("fingerprint", str))
        )  # fmt: skip
    ):
        raise ValueError(
            f"{path}: the manifest lacks languages, language_specific or base (architecture, shared_shapes, "
            "fingerprint); the file is damaged."
        )
    for key, array in weights.items():
        if array.ndim < 1 or array.shape[0] != len(languages):
            raise ValueError(f"{path}: {key} holds {array.shape[:1]} rows for the languages {languages}.")
    return manifest, weights


def _first(lines, what, count=8):
    return lines[:count] + ([f"... and {len(lines) - count} more {what}"] if len(lines) > count else [])


def compare_base(manifest: dict, weights: dict, model) -> list[str]:
    """Every difference between a language-layers file and `model`'s encoder; empty when it fits."""
    encoder = _encoder(model)
    config = encoder.get_config()
    differences = []
    for section, fields in (
        ("architecture", ARCHITECTURE_FIELDS),
        ("language_specific", LANGUAGE_SPECIFIC_FIELDS),
    ):
        saved = (
            manifest["base"]["architecture"] if section == "architecture" else manifest["language_specific"]
        )
        for field in fields:
            if saved.get(field) != _config_value(config[field]):
                differences.append(
                    f"{field}: file {saved.get(field)!r}, model {_config_value(config[field])!r}"
                )
    keyed, _, _ = _layout(encoder)
    layer_differences = []
    for key in sorted(set(weights) | set(keyed)):
        if key not in keyed:
            layer_differences.append(f"LS weight {key}: in the file, not in the model")
        elif key not in weights:
            layer_differences.append(f"LS weight {key}: in the model, not in the file")
        elif tuple(weights[key].shape[1:]) != tuple(keyed[key].shape[1:]):
            layer_differences.append(
                f"LS weight {key}: file shape {list(weights[key].shape[1:])}, model {list(keyed[key].shape[1:])}"
            )
    identity = base_identity(encoder)
    saved_shapes = manifest["base"]["shared_shapes"]
    shape_differences = [
        f"shared weight {key}: file {saved_shapes.get(key)}, model {identity['shared_shapes'].get(key)}"
        for key in sorted(set(saved_shapes) | set(identity["shared_shapes"]))
        if saved_shapes.get(key) != identity["shared_shapes"].get(key)
    ]
    differences += _first(layer_differences, "LS weights") + _first(shape_differences, "shared weights")
    if manifest["base"]["fingerprint"] != identity["fingerprint"]:
        differences.append(
            f"shared weights' fingerprint: file {manifest['base']['fingerprint']}, model {identity['fingerprint']} "
            "(the base model's weights differ)"
        )
    return differences


def load_language_module(model, path, languages=None, *, rename: dict | None = None):
    """Loads a language-layers file into `model`; returns the model (a grown copy if languages were added).

    Args:
        model: a `MultilingualEncoder`, or a model with one (``.encoder``).
        path: a file written by `save_language_module`.
        languages: which of the file's languages to load (default: all).
        rename: ``{code in the file: code in the model}``, e.g. to load
            ``sw`` layers as ``swc``.

    A language the model has is replaced; one it lacks is added first with
    `add_language` (so the returned model is a new object; the given one is
    unchanged). The file must come from the same base model (architecture,
    LS layout, shared shapes and weights' fingerprint); otherwise a
    `ValueError` lists every difference and nothing is assigned.
    """
    path = str(path)
    manifest, weights = read_language_module(path)
    file_codes = list(manifest["languages"])
    selected = file_codes if languages is None else _codes(languages)
    unknown = [code for code in selected if code not in file_codes]
    if unknown:
        raise KeyError(f"{path}: languages {unknown} are not in the file, which holds {file_codes}.")
    rename = dict(rename or {})
    stray = sorted(set(rename) - set(selected))
    if stray:
        raise KeyError(f"{path}: rename names {stray}, which are not among the languages loaded {selected}.")
    targets = [rename.get(code, code) for code in selected]
    if len(set(targets)) != len(targets):
        raise ValueError(
            f"{path}: languages {selected} renamed to {targets} load two languages into one row."
        )
    differences = compare_base(manifest, weights, model)
    if differences:
        raise ValueError(
            f"{path}: these language layers were saved from a different base model than "
            f"{_encoder(model).name!r}:\n  - " + "\n  - ".join(differences)
        )
    new = [code for code in targets if code not in _encoder(model).language_vocabulary]
    if new:
        model = add_language(model, new)
    encoder = _encoder(model)
    keyed, _, _ = _layout(encoder)
    for key, variable in keyed.items():
        stacked = variable.numpy()
        for code, target in zip(selected, targets):
            stacked[encoder.language_vocabulary.index(target)] = weights[key][file_codes.index(code)]
        variable.assign(stacked)
    return model


def add_language(model, languages, init_from: str | None = None):
    """A copy of `model` with `languages` (a code or a list) appended; nothing existing changes.

    The new languages' LS weights are a fresh initialisation, or copies of
    language `init_from`'s. Shared weights, other languages' weights, and all
    non-trainable state are copied bit for bit.
    """
    codes = _codes(languages)
    vocabulary = _encoder(model).language_vocabulary
    present = [code for code in codes if code in vocabulary]
    if present:
        raise ValueError(f"Languages {present} are already in {list(vocabulary.codes)}.")
    if init_from is not None and init_from not in vocabulary:
        raise KeyError(f"init_from={init_from!r} is not in {list(vocabulary.codes)}.")
    config = model.get_config()
    encoder_config = config["encoder"]["config"] if "encoder" in config else config
    encoder_config["languages"] = vocabulary.extend(codes).get_config()
    grown = model.__class__.from_config(config)
    old_language = {id(v) for v in language_specific_variables(model)}
    if len(model.weights) != len(grown.weights):
        raise RuntimeError("add_language: the grown model's structure differs from the original.")
    for old, new in zip(model.weights, grown.weights):
        value = old.numpy()
        if id(old) in old_language:
            if init_from is not None:
                extra_rows = np.repeat(value[vocabulary.index(init_from)][None], len(codes), axis=0)
            else:
                extra_rows = new.numpy()[len(vocabulary) :]
            value = np.concatenate([value, extra_rows], axis=0)
        if tuple(value.shape) != tuple(new.shape):
            raise RuntimeError(f"add_language: shape mismatch for {old.path}: {value.shape} vs {new.shape}.")
        new.assign(value)
        new.trainable = old.trainable
    return grown


__all__ = [
    "add_language",
    "base_identity",
    "compare_base",
    "language_module",
    "load_language_module",
    "read_language_module",
    "save_language_module",
]
