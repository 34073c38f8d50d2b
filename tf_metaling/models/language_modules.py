"""Per-language modules: one language's LS weights, saved, loaded, or added.

A language module is row l of every language-specific variable of a model
(see `tf_metaling.models.partition`). It can be saved to a file on its own,
loaded into another model of the same shape (under the same or another
language code), and a model can grow a new language, leaving every shared
weight and every other language's weights bit-identical.

File format: a NumPy ``.npz`` holding one array per LS variable (keyed by the
variable's path inside the model) plus a JSON ``__meta__`` entry with the
language code, the LS layout and the shapes, checked on load.
"""

from __future__ import annotations

import json
import numpy as np

from tf_metaling.atomic_files import atomic_path
from tf_metaling.models.partition import partition_variables

FORMAT_VERSION = 1


def _module_keys(model, variables) -> list[str]:
    """Stable keys for LS variables: their paths without the top-level layer's name.

    Inner layer names are fixed by the encoder (``block_0/adapter_ffn/...``);
    only the outermost name is auto-numbered (``multilingual_encoder_3``), so
    dropping it makes the keys equal across models of the same layout.
    """
    keys = [variable.path.split("/", 1)[-1] for variable in variables]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{model.name!r}: language-specific variable paths are ambiguous: {keys}.")
    return keys


def language_module(model, code: str) -> dict:
    """``{variable path: numpy array}`` of language `code`'s LS weights."""
    index = model.language_vocabulary.index(code) if code in model.language_vocabulary else None
    if index is None:
        raise KeyError(f"Language {code!r} is not in {list(model.language_vocabulary.codes)}.")
    partition = partition_variables(model)
    if not partition.language:
        raise ValueError(f"{model.name!r} has no language-specific weights to export.")
    keys = _module_keys(model, partition.language)
    return {key: np.asarray(variable.numpy()[index]) for key, variable in zip(keys, partition.language)}


def save_language_module(model, code: str, path: str) -> str:
    """Writes language `code`'s LS weights to `path` (.npz), atomically. Returns the path."""
    weights = language_module(model, code)
    meta = {
        "format_version": FORMAT_VERSION,
        "language": code,
        "shapes": {name: list(array.shape) for name, array in weights.items()},
        "dtypes": {name: str(array.dtype) for name, array in weights.items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, __meta__=np.array(json.dumps(meta)), **weights)
    return path


def read_language_module(path: str) -> tuple[dict, dict]:
    """Returns ``(meta, weights)`` from a module file, with a clear error if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "__meta__" not in data.files:
                raise ValueError(f"{path}: not a language module (no __meta__ entry).")
            meta = json.loads(str(data["__meta__"]))
            weights = {name: data[name] for name in data.files if name != "__meta__"}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read language module: {error}") from error
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {meta.get('format_version')!r}.")
    return meta, weights


def load_language_module(model, path: str, code: str | None = None) -> str:
    """Loads a module file into `model`'s row for `code` (default: the module's own code).

    Every LS variable of the model must have a matching entry of the same
    shape, and the file must hold nothing else; otherwise nothing is assigned.
    Returns the code the weights were loaded as.
    """
    meta, weights = read_language_module(path)
    code = code or meta["language"]
    if code not in model.language_vocabulary:
        raise KeyError(
            f"{path}: language {code!r} is not in the model's languages "
            f"{list(model.language_vocabulary.codes)}; add it first with add_language()."
        )
    index = model.language_vocabulary.index(code)
    partition = partition_variables(model)
    expected = dict(zip(_module_keys(model, partition.language), partition.language))
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(
            f"{path}: module layout does not match the model: missing {missing}, unexpected {extra}."
        )
    for name, variable in expected.items():
        want = tuple(variable.shape[1:])
        if tuple(weights[name].shape) != want:
            raise ValueError(
                f"{path}: {name} has shape {tuple(weights[name].shape)}, the model expects {want}."
            )
    for name, variable in expected.items():
        stacked = variable.numpy()
        stacked[index] = weights[name]
        variable.assign(stacked)
    return code


def add_language(model, code: str, init_from: str | None = None):
    """A copy of `model` with language `code` appended; nothing existing changes.

    The new language's LS weights are a fresh initialisation, or a copy of
    language `init_from`'s. Shared weights, other languages' weights, and all
    non-trainable state are copied bit for bit.
    """
    vocabulary = model.language_vocabulary
    if code in vocabulary:
        raise ValueError(f"Language {code!r} is already in {list(vocabulary.codes)}.")
    if init_from is not None and init_from not in vocabulary:
        raise KeyError(f"init_from={init_from!r} is not in {list(vocabulary.codes)}.")
    config = model.get_config()
    encoder_config = config["encoder"]["config"] if "encoder" in config else config
    encoder_config["languages"] = vocabulary.extend([code]).get_config()
    grown = model.__class__.from_config(config)
    old_language = {id(v) for v in partition_variables(model).language}
    if len(model.weights) != len(grown.weights):
        raise RuntimeError("add_language: the grown model's structure differs from the original.")
    for old, new in zip(model.weights, grown.weights):
        value = old.numpy()
        if id(old) in old_language:
            extra_row = (
                value[vocabulary.index(init_from)] if init_from is not None else new.numpy()[len(vocabulary)]
            )
            value = np.concatenate([value, extra_row[None]], axis=0)
        if tuple(value.shape) != tuple(new.shape):
            raise RuntimeError(f"add_language: shape mismatch for {old.path}: {value.shape} vs {new.shape}.")
        new.assign(value)
    return grown


__all__ = [
    "add_language",
    "language_module",
    "load_language_module",
    "read_language_module",
    "save_language_module",

]
