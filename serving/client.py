"""Clients for the served models: Python helpers and a command line, over REST and gRPC.

    tf-metaling-client --server=127.0.0.1:8501 --model_name=metaling \
        --signature=embed --text="Habari ya asubuhi" --language=sw
    tf-metaling-client --protocol=grpc --server=127.0.0.1:8500 --model_name=metaling \
        --signature=fill_mask --text="the [MASK] sat" --language=en

`RestClient` speaks TF Serving's REST API (http.client, one keep-alive
connection per client); `GrpcClient` uses tensorflow-serving-api's
`PredictionServiceStub` and `ModelServiceStub`. Both offer `predict` (any
signature, ``{input: array}``), `predict_text(signature, texts, languages)` for
text + language requests, `classify`, `status` and `metadata`. Both work with
the real TF Serving as well.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse

import grpc
from absl import app, flags
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import warmup


class ServerError(Exception):
    """An error answer from the server: HTTP status or gRPC code, and its message."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def text_inputs(texts, languages) -> dict:
    """``{"text": ..., "language": ...}`` arrays; one language string applies to every text."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if isinstance(languages, str):
        languages = [languages] * len(texts)
    languages = list(languages)
    if len(languages) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(languages)} languages.")
    return {
        "text": np.asarray([t.encode("utf-8") for t in texts], dtype=object),
        "language": np.asarray([code.encode("utf-8") for code in languages], dtype=object),
    }


def _model_path(model_name, version=None, label=None) -> str:
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label, safe='')}"
    return path


def _json_value(array: np.ndarray):
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(array).tolist()
    return array.tolist()


class RestClient:
    """TF Serving REST API client.

    Args:
        server: ``host:port`` (or ``http://host:port``).
        model_name: the served model.
        timeout: seconds per request.
    """

    def __init__(self, server: str, model_name: str, timeout: float = 60.0):
        server = server.split("://", 1)[-1].rstrip("/")
        self.host, _, port = server.rpartition(":")
        self.port = int(port)
        self.model_name = model_name
        self.timeout = timeout
        self._connection = None
        self._single_outputs = {}

    def request(self, method: str, path: str, document=None):
        """Sends one request; returns the decoded JSON answer or raises `ServerError`.

        `document` is a JSON-serializable value, or bytes already encoded as JSON.
        """
        if isinstance(document, bytes):
            body = document
        else:
            body = None if document is None else json.dumps(document).encode("utf-8")
        for attempt in range(2):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        answer = json.loads(payload.decode("utf-8")) if payload else {}
        if response.status != 200:
            raise ServerError(response.status, answer.get("error", payload.decode("utf-8", "replace")))
        return answer

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def predict(self, inputs: dict, signature_name=None, version=None, label=None, columnar=True):
        """Runs a signature; returns ``{output: value}`` (columnar) or the row-format predictions."""
        document = {"signature_name": signature_name} if signature_name else {}
        columns = {key: _json_value(np.asarray(value)) for key, value in inputs.items()}
        if columnar:
            document["inputs"] = columns
        else:
            count = len(next(iter(columns.values())))
            document["instances"] = [{key: columns[key][i] for key in columns} for i in range(count)]
        answer = self.request("POST", _model_path(self.model_name, version, label) + ":predict", document)
        if not columnar:
            return answer["predictions"]
        outputs = answer["outputs"]
        if isinstance(outputs, dict):
            return outputs
        # TF Serving drops the name of a signature's only output; the metadata has it.
        return {self._single_output_name(signature_name, version, label): outputs}

    def predict_text(self, signature_name: str, texts, languages, **options) -> dict:
        return self.predict(text_inputs(texts, languages), signature_name, **options)

    def _single_output_name(self, signature_name, version, label) -> str:
        key = (signature_name or "serving_default", version, label)
        if key not in self._single_outputs:
            signatures = self.metadata(version, label)["metadata"]["signature_def"]["signature_def"]
            (self._single_outputs[key],) = signatures[key[0]]["outputs"]
        return self._single_outputs[key]

    def classify(self, texts, languages, signature_name="classify", version=None, label=None) -> list:
        """``[[(label, score), ...] per text]`` from the Classify API."""
        inputs = text_inputs(texts, languages)
        examples = [
            {"text": t.decode("utf-8"), "language": code.decode("utf-8")}
            for t, code in zip(inputs["text"], inputs["language"])
        ]
        answer = self.request(
            "POST",
            _model_path(self.model_name, version, label) + ":classify",
            {"signature_name": signature_name, "examples": examples},
        )
        return [[(label_, score) for label_, score in row] for row in answer["result"]]

    def status(self, version=None, label=None) -> dict:
        return self.request("GET", _model_path(self.model_name, version, label))

    def metadata(self, version=None, label=None) -> dict:
        return self.request("GET", _model_path(self.model_name, version, label) + "/metadata")


class GrpcClient:
    """TF Serving gRPC client (PredictionService + ModelService stubs).

    Args:
        server: ``host:port``.
        model_name: the served model.
        timeout: seconds per call.
        max_message_bytes: largest response accepted.
    """

    def __init__(self, server: str, model_name: str, timeout: float = 60.0, max_message_bytes: int = 64 << 20):
        self.channel = grpc.insecure_channel(
            server,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.model_name = model_name
        self.timeout = timeout

    def close(self):
        self.channel.close()

    def _spec(self, spec, signature_name=None, version=None, label=None):
        spec.name = self.model_name
        if signature_name:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServerError(error.code(), error.details()) from None

    def predict_request(self, inputs: dict, signature_name=None, version=None, label=None, output_filter=()):
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name, version, label)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        request.output_filter.extend(output_filter)
        return request

    def predict(self, inputs: dict, signature_name=None, version=None, label=None, output_filter=()) -> dict:
        """Runs a signature; returns ``{output: numpy array}``."""
        response = self.predict_response(inputs, signature_name, version, label, output_filter)
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

    def predict_response(self, inputs: dict, signature_name=None, version=None, label=None, output_filter=()):
        """The PredictResponse proto (with the served version in model_spec)."""
        return self.send(self.predict_request(inputs, signature_name, version, label, output_filter))

    def send(self, request):
        """Sends a prepared `PredictRequest` (from `predict_request`); returns the PredictResponse."""
        return self._call(self.prediction.Predict, request)

    def predict_text(self, signature_name: str, texts, languages, **options) -> dict:
        return self.predict(text_inputs(texts, languages), signature_name, **options)

    def classify(self, texts, languages, signature_name="classify", version=None, label=None) -> list:
        request = classification_pb2.ClassificationRequest()
        self._spec(request.model_spec, signature_name, version, label)
        inputs = text_inputs(texts, languages)
        for text, code in zip(inputs["text"], inputs["language"]):
            example = warmup.make_example(True, text.decode("utf-8"), code.decode("utf-8"))
            request.input.example_list.examples.append(example)
        response = self._call(self.prediction.Classify, request)
        return [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]

    def status(self, version=None, label=None):
        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, None, version, label)
        return self._call(self.models.GetModelStatus, request)

    def metadata(self, version=None, label=None):
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec, None, version, label)
        request.metadata_field.append("signature_def")
        return self._call(self.prediction.GetModelMetadata, request)


# ---------------------------------------------------------------------- command line
def define_flags(flag_values=None):
    """Defines the client's flags on `flag_values` (default: absl's global FLAGS)."""
    values = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "API to use.", flag_values=values)
    flags.DEFINE_string("server", "127.0.0.1:8501", "host:port of the server.", flag_values=values)
    flags.DEFINE_string("model_name", "tf_metaling", "Served model name.", flag_values=values)
    flags.DEFINE_integer("version", None, "Model version (default: latest).", flag_values=values)
    flags.DEFINE_string(
        "signature", "embed", "Signature to call, or 'status' / 'metadata' / 'classify'.", flag_values=values
    )
    flags.DEFINE_multi_string("text", [], "Input text (repeat for a batch).", flag_values=values)
    flags.DEFINE_multi_string("language", [], "Language code per text (one code applies to all).", flag_values=values)
    flags.DEFINE_float("timeout", 60.0, "Seconds per request.", flag_values=values)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return _json_value(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def query_from_flags(FLAGS) -> int:
    """Sends the request that parsed flag values describe, prints the JSON answer; returns an exit code."""
    client_type = RestClient if FLAGS.protocol == "rest" else GrpcClient
    client = client_type(FLAGS.server, FLAGS.model_name, timeout=FLAGS.timeout)
    try:
        if FLAGS.signature in ("status", "metadata"):
            answer = getattr(client, FLAGS.signature)(version=FLAGS.version)
            if not isinstance(answer, dict):
                answer = json_format.MessageToDict(answer, preserving_proto_field_name=True)
        else:
            if not FLAGS.text or not FLAGS.language:
                raise SystemExit("--text and --language are required for a prediction.")
            languages = FLAGS.language[0] if len(FLAGS.language) == 1 else FLAGS.language
            if FLAGS.signature == "classify":
                answer = client.classify(FLAGS.text, languages, version=FLAGS.version)
            else:
                answer = client.predict_text(FLAGS.signature, FLAGS.text, languages, version=FLAGS.version)
    except ServerError as error:
        print(json.dumps({"error": error.message, "status": str(error.status)}), file=sys.stderr)
        return 1
    finally:
        client.close()
    print(json.dumps(_jsonable(answer), indent=1))
    return 0


def main(argv):
    del argv
    return query_from_flags(flags.FLAGS)


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
