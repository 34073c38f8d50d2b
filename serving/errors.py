"""Serving errors: one exception type carrying a gRPC status code and its HTTP status.

Every failure a request can meet (bad JSON, unknown model, wrong dtype, a failed
in-graph check, ...) becomes a `ServingError`. The REST front end answers it with
``{"error": message}`` and the HTTP status TF Serving uses for that code
(tensorflow_serving/model_servers/http_server.cc); the gRPC front end aborts the
call with the code itself.
"""

from __future__ import annotations

import re

import grpc

# TF Serving's mapping from canonical status codes to HTTP statuses.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
# Lines TensorFlow adds around an op's own message; they name graph internals
# (nodes, stack dumps), not the caller's mistake.
_TF_NOISE_LINE = re.compile(
    r"^\s*(Graph execution error:|Detected at node|<stack traces unavailable>|File \"|\[\[\{\{node )"
)
_TF_OP_SUFFIX = re.compile(r"\s*(\[\[\{\{node [^\]]*\]\]|\[Op:[^\]]*\]).*$")


class ServingError(Exception):
    """A request failure with its status code (``grpc.StatusCode``) and message.

    Args:
        code: the canonical status code.
        message: what was wrong, naming the input and what was expected.
        http_status: overrides the code's HTTP status (413 for an oversize body).
    """

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status or _HTTP_STATUS.get(self.code, 500)

    def __str__(self):
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def status_code_from_value(value: int) -> grpc.StatusCode:
    """The gRPC code with this numeric value (TensorFlow's error codes use the same numbers)."""
    return _BY_VALUE.get(int(value), grpc.StatusCode.UNKNOWN)


def from_tensorflow_error(error) -> ServingError:
    """A `tf.errors.OpError` as a ServingError with a one-paragraph message."""
    message = clean_tensorflow_message(getattr(error, "message", None) or str(error))
    return ServingError(status_code_from_value(error.error_code), message)


def clean_tensorflow_message(message: str) -> str:
    """Drops node annotations and stack dumps from a TensorFlow error message."""
    kept = []
    for line in message.splitlines():
        if _TF_NOISE_LINE.match(line):
            continue
        line = _TF_OP_SUFFIX.sub("", line).strip()
        if line:
            kept.append(line)
    # Assert prints string data escaped ("\\'de\\'"); callers should read plain quotes.
    return " ".join(kept).replace("\\'", "'")


def one_line(text: str) -> str:
    """Collapses a message to one line (the server logs one line per error)."""
    return " ".join(str(text).split())
