"""One loaded model version: its signatures, request validation and execution.

A `Servable` loads a SavedModel version directory with `tf.saved_model.load`,
reads the SignatureDefs from ``saved_model.pb`` (dtypes, shapes and method names
as TF Serving sees them), checks every request against them before running
anything, and runs the signature (through the dynamic batcher when batching is
on). Errors come out as `ServingError` with TF Serving's status codes.

A version directory that is not a complete, consistent export fails to load
with an error naming what is wrong: no ``saved_model.pb``, unreadable
variables, or (for a tf_metaling export, which carries `LANGUAGES_FILE`) a
signature that does not take the ``language`` input every one of them has.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the text signatures' ops, which loading needs)

from serving import op_check, warmup
from serving.batcher import BatchingOptions, DynamicBatcher
from serving.errors import from_tensorflow_error, invalid_argument
from serving.request_limits import RequestLimits

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
# The exported language vocabulary (written by serving.export); its presence marks
# a tf_metaling export, whose signatures all take a ``language`` string per example
# (classify signatures take it as a tf.Example feature).
LANGUAGES_FILE = os.path.join("assets.extra", "languages.json")
LANGUAGE_INPUT = "language"


@dataclasses.dataclass(frozen=True)
class TensorSpecInfo:
    """One signature input or output as declared in the SignatureDef."""

    name: str
    dtype: tf.DType
    shape: tuple | None  # None: unknown rank; -1: unknown dimension

    @property
    def dtype_name(self) -> str:
        return self.dtype.name

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name} ({self.dtype_name}, any shape)"
        dims = ",".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name} ({self.dtype_name} [{dims}])"


@dataclasses.dataclass
class SignatureInfo:
    name: str
    method_name: str
    inputs: dict
    outputs: dict
    function: object

    @property
    def batchable(self) -> bool:
        """Every input and output has a leading batch dimension of unknown size."""
        specs = list(self.inputs.values()) + list(self.outputs.values())
        return all(spec.shape is not None and len(spec.shape) >= 1 and spec.shape[0] < 0 for spec in specs)


def _tensor_dtype(value: np.ndarray):
    """The TensorFlow dtype of a request array (object, bytes and str arrays are strings)."""
    if value.dtype == object or value.dtype.kind in "SU":
        return tf.string
    try:
        return tf.dtypes.as_dtype(value.dtype)
    except TypeError:
        return None


def _spec(name, tensor_info) -> TensorSpecInfo:
    shape = None
    if not tensor_info.tensor_shape.unknown_rank:
        shape = tuple(int(dim.size) for dim in tensor_info.tensor_shape.dim)
    return TensorSpecInfo(name, tf.dtypes.as_dtype(tensor_info.dtype), shape)


class Servable:
    """A loaded version of a model.

    Args:
        model_name: the served name.
        version: the integer version.
        path: the version directory.
        batching: `BatchingOptions` to batch concurrent requests, or None.
        limits: the `RequestLimits` (requests over its `max_request_batch_size`
            examples are rejected); its defaults when None.
    """

    def __init__(
        self,
        model_name: str,
        version: int,
        path: str,
        batching: BatchingOptions | None = None,
        limits: RequestLimits | None = None,
    ):
        self.model_name = model_name
        self.version = int(version)
        self.path = path
        self.limits = limits or RequestLimits()
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(
                f"{path} has no saved_model.pb: not a complete SavedModel version directory "
                "(export to a temporary directory and rename it into place)."
            )
        self.saved_model = op_check.read_saved_model(path)
        self.meta_graph = self.saved_model.meta_graphs[0]
        if os.path.exists(os.path.join(path, LANGUAGES_FILE)):
            check_language_inputs(self.meta_graph, path)
        self.loaded = tf.saved_model.load(path)
        self.signatures = {}
        for name, signature_def in self.meta_graph.signature_def.items():
            if name.startswith("__") or name not in self.loaded.signatures:
                continue
            self.signatures[name] = SignatureInfo(
                name=name,
                method_name=signature_def.method_name,
                inputs={key: _spec(key, info) for key, info in signature_def.inputs.items()},
                outputs={key: _spec(key, info) for key, info in signature_def.outputs.items()},
                function=self.loaded.signatures[name],
            )
        self._batchers = {}
        if batching is not None:
            for name, signature in self.signatures.items():
                if signature.batchable:
                    self._batchers[name] = DynamicBatcher(
                        lambda inputs, signature=signature: self._execute(signature, inputs),
                        batching,
                        name=f"{model_name}-{version}-{name}",
                    )

    # ------------------------------------------------------------------ requests
    def signature(self, name: str | None) -> SignatureInfo:
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise invalid_argument(
                f'Serving signature name: "{name}" not found in signature def; '
                f"model {self.model_name} version {self.version} has {sorted(self.signatures)}."
            )
        return self.signatures[name]

    def predict(self, signature_name: str | None, inputs: dict, output_filter=()) -> dict:
        """Runs a signature on ``{input: numpy array}``; returns ``{output: numpy array}``."""
        signature = self.signature(signature_name)
        self.validate(signature, inputs)
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise invalid_argument(
                f"output tensor alias not found in signature: {', '.join(unknown)}; "
                f'outputs of "{signature.name}" are {sorted(signature.outputs)}.'
            )
        batcher = self._batchers.get(signature.name)
        outputs = batcher.submit(inputs) if batcher is not None else self._execute(signature, inputs)
        if output_filter:
            outputs = {key: outputs[key] for key in output_filter}
        return outputs

    def validate(self, signature: SignatureInfo, inputs: dict) -> None:
        """Raises INVALID_ARGUMENT unless `inputs` match the signature's names, dtypes and ranks."""
        expected, given = set(signature.inputs), set(inputs)
        if expected != given:
            missing, extra = sorted(expected - given), sorted(given - expected)
            parts = [f'input size does not match signature "{signature.name}": {len(given)}!={len(expected)}']
            if missing:
                parts.append(f"missing inputs: {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected inputs: {', '.join(extra)}")
            parts.append("expected " + ", ".join(spec.describe() for spec in signature.inputs.values()))
            raise invalid_argument("; ".join(parts) + ".")
        batch_sizes = {}
        for key, spec in signature.inputs.items():
            value = inputs[key]
            dtype = _tensor_dtype(value)
            if dtype is None:
                raise invalid_argument(f"Input '{key}' has numpy dtype {value.dtype}, which has no TensorFlow dtype.")
            if dtype != spec.dtype:
                raise invalid_argument(f"Expects arg '{key}' to be {spec.dtype_name} but {dtype.name} is provided.")
            if spec.shape is not None:
                if value.ndim != len(spec.shape):
                    raise invalid_argument(
                        f"Input '{key}' must have rank {len(spec.shape)} (expected {spec.describe()}); "
                        f"got shape {list(value.shape)}."
                    )
                for axis, (want, got) in enumerate(zip(spec.shape, value.shape)):
                    if want >= 0 and want != got:
                        raise invalid_argument(
                            f"Input '{key}' dimension {axis} must be {want} (expected {spec.describe()}); "
                            f"got shape {list(value.shape)}."
                        )
                if spec.shape and spec.shape[0] < 0:
                    batch_sizes[key] = value.shape[0]
        if batch_sizes:
            sizes = set(batch_sizes.values())
            if len(sizes) > 1:
                described = ", ".join(f"{key} has {size}" for key, size in sorted(batch_sizes.items()))
                raise invalid_argument(f"Mismatched batch sizes: {described} examples.")
            size = sizes.pop()
            if size == 0:
                raise invalid_argument("Empty batch: the request has no examples.")
            if size > self.limits.max_request_batch_size:
                raise self.limits.too_many_examples(size)

    def classify(self, signature_name: str | None, serialized_examples: list) -> tuple:
        """Runs a Classify-API signature on serialized tf.Examples; returns (classes, scores) arrays."""
        signature = self.signature(signature_name)
        if signature.method_name != CLASSIFY_METHOD:
            raise invalid_argument(
                f"Expected classification signature method_name to be tensorflow/serving/classify. "
                f'Was: {signature.method_name} (signature "{signature.name}").'
            )
        if not serialized_examples:
            raise invalid_argument("Empty batch: the request has no examples.")
        (input_key,) = signature.inputs
        inputs = {input_key: np.asarray(serialized_examples, dtype=object)}
        outputs = self.predict(signature.name, inputs)
        return outputs.get("classes"), outputs.get("scores")

    def warm_up(self) -> int:
        """Replays ``assets.extra/tf_serving_warmup_requests``; returns the number of records run."""
        path = warmup.warmup_path(self.path)
        if not os.path.exists(path):
            return 0
        logs = warmup.read_warmup_file(path)
        for log in logs:
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                self.predict(request.model_spec.signature_name, inputs)
            elif kind == "classify_log":
                request = log.classify_log.request
                examples = [e.SerializeToString() for e in request.input.example_list.examples]
                self.classify(request.model_spec.signature_name, examples)
            else:
                raise ValueError(f"{path}: warmup record of kind {kind!r} is not supported.")
        return len(logs)

    def close(self):
        for batcher in self._batchers.values():
            batcher.stop()
        self._batchers = {}
        self.signatures = {}
        self.loaded = None

    # ------------------------------------------------------------------ execution
    def _execute(self, signature: SignatureInfo, inputs: dict) -> dict:
        try:
            tensors = {
                key: tf.convert_to_tensor(
                    value.astype(object) if value.dtype.kind == "U" else value, dtype=signature.inputs[key].dtype
                )
                for key, value in inputs.items()
            }
            results = signature.function(**tensors)
            return {key: value.numpy() for key, value in results.items()}
        except tf.errors.OpError as error:
            raise from_tensorflow_error(error) from None
        except (TypeError, ValueError) as error:
            raise invalid_argument(str(error)) from None


def check_language_inputs(meta_graph, path: str) -> None:
    """Raises ValueError unless every non-classify signature has a string ``language`` input."""
    for name, signature_def in sorted(meta_graph.signature_def.items()):
        if name.startswith("__") or signature_def.method_name == CLASSIFY_METHOD:
            continue
        info = signature_def.inputs.get(LANGUAGE_INPUT)
        if info is None or tf.dtypes.as_dtype(info.dtype) != tf.string:
            raise ValueError(
                f"{path}: signature '{name}' has no string '{LANGUAGE_INPUT}' input (inputs: "
                f"{sorted(signature_def.inputs)}); every signature of a tf_metaling export "
                f"(it has {LANGUAGES_FILE}) takes one language code per example."
            )


__all__ = ["DEFAULT_SIGNATURE", "LANGUAGES_FILE", "Servable", "SignatureInfo", "TensorSpecInfo"]
