"""TF Serving's API operations, shared by the REST and gRPC front ends.

Each operation resolves the model version a request names (latest, a version
number or a version label), holds it for the duration of the call so a hot swap
cannot unload it mid-request, and returns plain arrays or the
tensorflow-serving-api response protos (GetModelStatusResponse,
GetModelMetadataResponse), which both front ends render.
"""

from __future__ import annotations

import grpc
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.errors import ServingError, invalid_argument
from serving.model_manager import ModelManager

SIGNATURE_DEF_FIELD = "signature_def"
_STATE_VALUES = get_model_status_pb2.ModelVersionStatus.State


class PredictionApi:
    """Predict, Classify, GetModelStatus and GetModelMetadata over a `ModelManager`."""

    def __init__(self, manager: ModelManager):
        self.manager = manager

    def predict(self, name, version, label, signature_name, parse_inputs, output_filter=()):
        """Runs a signature; `parse_inputs(signature_info)` builds the inputs once the signature is known.

        Returns ``(served_version, signature_name, {output: array})``.
        """
        with self.manager.servable(name, version, label) as servable:
            signature = servable.signature(signature_name)
            inputs = parse_inputs(signature)
            outputs = servable.predict(signature.name, inputs, output_filter)
            return servable.version, signature.name, outputs

    def classify(self, name, version, label, signature_name, serialized_examples):
        """Returns ``(served_version, signature_name, classes [B,C] or None, scores [B,C] or None)``."""
        with self.manager.servable(name, version, label) as servable:
            signature = servable.signature(signature_name)
            classes, scores = servable.classify(signature.name, serialized_examples)
            return servable.version, signature.name, classes, scores

    def model_status(self, name, version=None, label=None) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        for served_version, state, error in self.manager.status(name, version, label):
            status = response.model_version_status.add()
            status.version = served_version
            status.state = _STATE_VALUES.Value(state)
            status.status.error_code = error_codes_pb2.UNKNOWN if error else error_codes_pb2.OK
            status.status.error_message = error or ""
        return response

    def model_metadata(self, name, version=None, label=None, fields=(SIGNATURE_DEF_FIELD,)):
        fields = list(fields)
        if not fields:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field.")
        unsupported = sorted(set(fields) - {SIGNATURE_DEF_FIELD})
        if unsupported:
            raise invalid_argument(f"Metadata field {', '.join(unsupported)} is not supported; use signature_def.")
        with self.manager.servable(name, version, label) as servable:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature_def in servable.meta_graph.signature_def.items():
                signature_map.signature_def[key].CopyFrom(signature_def)
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
            return response


def internal_error(error: Exception) -> ServingError:
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
