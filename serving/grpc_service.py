"""The gRPC front end: TF Serving's PredictionService and ModelService on grpcio.

PredictionService: Predict, Classify, GetModelMetadata (Regress and
MultiInference answer UNIMPLEMENTED). ModelService: GetModelStatus
(HandleReloadConfigRequest answers UNIMPLEMENTED: this server reloads by
watching the base paths). Requests and responses are the tensorflow-serving-api
protos, so TF Serving's own clients (`PredictionServiceStub`) work unchanged.
"""

from __future__ import annotations

import concurrent.futures

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import (
    classification_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.errors import ServingError, invalid_argument, one_line
from serving.prediction_api import PredictionApi, internal_error
from serving.request_limits import RequestLimits


def model_spec_choice(spec) -> tuple:
    """(name, version or None, label or None) of a ModelSpec."""
    which = spec.WhichOneof("version_choice")
    version = spec.version.value if which == "version" else None
    label = spec.version_label if which == "version_label" else None
    if not spec.name:
        raise invalid_argument("Missing ModelSpec name.")
    return spec.name, version, label


def tensor_proto_to_array(name: str, proto) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # noqa: BLE001 - any malformed TensorProto is the caller's
        raise invalid_argument(f"Input '{name}' is not a valid TensorProto: {one_line(error)}") from None


class _Handler:
    def _call(self, rpc, context, work):
        try:
            return work()
        except ServingError as error:
            logging.warning("gRPC %s -> %s: %s", rpc, error.code.name, one_line(error.message))
            context.abort(error.code, error.message)
        except Exception as error:  # noqa: BLE001 - answered INTERNAL, the server goes on
            wrapped = internal_error(error)
            logging.error("gRPC %s -> INTERNAL: %s", rpc, one_line(wrapped.message))
            context.abort(wrapped.code, wrapped.message)

    @staticmethod
    def _unimplemented(rpc, context, what):
        logging.warning("gRPC %s -> UNIMPLEMENTED: %s", rpc, what)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, what)


class PredictionServicer(_Handler, prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, api: PredictionApi):
        self.api = api

    def Predict(self, request, context):
        def work():
            name, version, label = model_spec_choice(request.model_spec)

            def parse(signature):
                return {key: tensor_proto_to_array(key, proto) for key, proto in request.inputs.items()}

            served, signature_name, outputs = self.api.predict(
                name, version, label, request.model_spec.signature_name or None, parse, list(request.output_filter)
            )
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = served
            response.model_spec.signature_name = signature_name
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

        return self._call("Predict", context, work)

    def Classify(self, request, context):
        def work():
            name, version, label = model_spec_choice(request.model_spec)
            examples = _serialized_examples(request.input)
            served, signature_name, classes, scores = self.api.classify(
                name, version, label, request.model_spec.signature_name or None, examples
            )
            response = classification_pb2.ClassificationResponse()
            response.model_spec.name = name
            response.model_spec.version.value = served
            response.model_spec.signature_name = signature_name
            reference = classes if classes is not None else scores
            for row in range(reference.shape[0]):
                classifications = response.result.classifications.add()
                for column in range(reference.shape[1]):
                    entry = classifications.classes.add()
                    if classes is not None:
                        entry.label = classes[row, column].decode("utf-8", errors="replace")
                    if scores is not None:
                        entry.score = float(scores[row, column])
            return response

        return self._call("Classify", context, work)

    def GetModelMetadata(self, request, context):
        def work():
            name, version, label = model_spec_choice(request.model_spec)
            return self.api.model_metadata(name, version, label, list(request.metadata_field))

        return self._call("GetModelMetadata", context, work)

    def Regress(self, request, context):
        self._unimplemented("Regress", context, "This server does not implement the Regress API.")

    def MultiInference(self, request, context):
        self._unimplemented("MultiInference", context, "This server does not implement the MultiInference API.")


class ModelServicer(_Handler, model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, api: PredictionApi):
        self.api = api

    def GetModelStatus(self, request, context):
        def work():
            name, version, label = model_spec_choice(request.model_spec)
            return self.api.model_status(name, version, label)

        return self._call("GetModelStatus", context, work)

    def HandleReloadConfigRequest(self, request, context):
        self._unimplemented(
            "HandleReloadConfigRequest", context, "Config reloads are not supported; the server watches base paths."
        )


def _serialized_examples(model_input) -> list:
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in model_input.example_list.examples]
    if kind == "example_list_with_context":
        listed = model_input.example_list_with_context
        merged = []
        for example in listed.examples:
            combined = tf.train.Example()
            combined.CopyFrom(listed.context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return merged
    raise invalid_argument("ClassificationRequest.input must hold example_list or example_list_with_context.")


class GrpcService:
    """The gRPC server: both services on `host:port` (port 0: any free port).

    The limits (a `RequestLimits`) are gRPC core's own channel arguments, so
    oversize messages and slow, idle or dead clients are handled below Python: a
    message over `max_request_bytes` is answered RESOURCE_EXHAUSTED; a connection
    must finish its HTTP/2 handshake within `grpc_handshake_timeout_seconds`;
    idle connections are pinged every `grpc_keepalive_time_seconds` and dropped
    when a ping is not answered within `grpc_keepalive_timeout_seconds`, and
    closed after `grpc_max_connection_idle_seconds` without calls; one connection
    carries at most `grpc_max_concurrent_streams` calls at once; beyond
    `grpc_max_concurrent_rpcs` calls in the whole server a new call is answered
    RESOURCE_EXHAUSTED at once instead of queueing.

    Args:
        api: the `PredictionApi`.
        host, port: where to listen.
        limits: the `RequestLimits`; its defaults when None.
        threads: worker threads that run calls.
        grace_seconds: how long `stop` lets in-flight calls finish.
    """

    def __init__(
        self,
        api: PredictionApi,
        host: str = "127.0.0.1",
        port: int = 8500,
        limits: RequestLimits | None = None,
        threads: int = 64,
        grace_seconds: float = 10.0,
    ):
        self.api = api
        self.grace_seconds = float(grace_seconds)
        self.host = host
        self.port = port
        self.limits = limits = limits or RequestLimits()
        self.threads = threads
        # The gRPC-side names of the limits this front end enforces.
        self.max_request_bytes = limits.max_request_bytes
        self.max_concurrent_rpcs = limits.grpc_max_concurrent_rpcs
        self.max_concurrent_streams = limits.grpc_max_concurrent_streams
        self.keepalive_time_seconds = limits.grpc_keepalive_time_seconds
        self.keepalive_timeout_seconds = limits.grpc_keepalive_timeout_seconds
        self.max_connection_idle_seconds = limits.grpc_max_connection_idle_seconds
        self.handshake_timeout_seconds = limits.grpc_handshake_timeout_seconds
        self._server = None

    def channel_options(self) -> list:
        """gRPC core channel arguments of the server."""
        milliseconds = lambda seconds: int(seconds * 1000)  # noqa: E731
        return [
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.keepalive_time_ms", milliseconds(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", milliseconds(self.keepalive_timeout_seconds)),
            ("grpc.max_connection_idle_ms", milliseconds(self.max_connection_idle_seconds)),
            ("grpc.server_handshake_timeout_ms", milliseconds(self.handshake_timeout_seconds)),
        ]

    def start(self) -> int:
        self._server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="grpc"),
            options=self.channel_options(),
            maximum_concurrent_rpcs=self.max_concurrent_rpcs,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self.api), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.api), self._server)
        bound = self._server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:
            raise OSError(f"gRPC could not bind {self.host}:{self.port}.")
        self.port = bound
        self._server.start()
        return bound

    def stop(self):
        """Rejects new calls, lets in-flight calls finish within the grace period."""
        if self._server is not None:
            self._server.stop(self.grace_seconds).wait()
            self._server = None
