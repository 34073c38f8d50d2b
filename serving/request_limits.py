"""Every per-request and per-connection limit of the model server, in one frozen dataclass.

`RequestLimits` holds each limit's default and one-line meaning (the server's
absl flags are generated from its fields: flag name = field name), validates
them, and builds the error a client meets when a limit is hit. REST and gRPC
take these errors from here, so both report the same limit with the same words,
each in its own protocol's status (413 / RESOURCE_EXHAUSTED for an oversize
body, INVALID_ARGUMENT / 400 for too many examples or too deep JSON, 408 for a
late body, 503 beyond the REST connection limit). Limits that gRPC core or
grpcio enforce below Python (the message size, calls, streams, keepalive,
handshake) answer in their own words; for an oversize message gRPC core says
"Received message larger than max (size vs. max_request_bytes)".
"""

from __future__ import annotations

import dataclasses

import grpc
from absl import flags

from serving.errors import ServingError, invalid_argument


def _limit(default, meaning: str):
    return dataclasses.field(default=default, metadata={"meaning": meaning})


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """The limits a request or connection must stay within; every one must be positive.

    Example:
    >>> limits = RequestLimits(max_request_bytes=1 << 20, rest_max_connections=64)
    >>> limits.too_large(2 << 20).message
    "2097152 bytes is over this server's limit of 1048576 bytes per request (max_request_bytes)."
    """

    max_request_bytes: int = _limit(
        8 << 20, "Largest request body / gRPC message; larger ones get 413 / RESOURCE_EXHAUSTED."
    )
    max_request_batch_size: int = _limit(1024, "Most examples in one request; more get 400 / INVALID_ARGUMENT.")
    max_json_depth: int = _limit(64, "REST: JSON bodies nested deeper than this get 400.")
    rest_header_timeout_seconds: float = _limit(
        10.0,
        "REST: close a connection whose request headers are not complete this long after it opened or "
        "answered (also the idle keep-alive timeout).",
    )
    rest_body_timeout_seconds: float = _limit(
        30.0, "REST: 408 when a body has not arrived this long after its headers."
    )
    rest_max_connections: int = _limit(512, "REST: open connections beyond this get 503 and are closed.")
    grpc_max_concurrent_rpcs: int = _limit(256, "gRPC: calls beyond this in the server get RESOURCE_EXHAUSTED.")
    grpc_max_concurrent_streams: int = _limit(100, "gRPC: most calls at once on one connection.")
    grpc_keepalive_time_seconds: float = _limit(60.0, "gRPC: ping a connection after this long without activity.")
    grpc_keepalive_timeout_seconds: float = _limit(
        20.0, "gRPC: drop a connection whose ping is not answered in this time."
    )
    grpc_max_connection_idle_seconds: float = _limit(
        300.0, "gRPC: close a connection without calls for this long."
    )
    grpc_handshake_timeout_seconds: float = _limit(
        10.0, "gRPC: close a connection whose HTTP/2 handshake takes longer."
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            integral = isinstance(field.default, int)
            kind = (int,) if integral else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
                expected = "a positive integer" if integral else "a positive number"
                meaning = field.metadata["meaning"].rstrip(".")
                raise ValueError(f"RequestLimits.{field.name}={value!r}: expected {expected} ({meaning}).")
            if not integral:
                object.__setattr__(self, field.name, float(value))

    # ------------------------------------------------------------------ what a client sees
    def too_large(self, size: int | None) -> ServingError:
        """A body over `max_request_bytes` (`size` None: its length was not announced)."""
        described = f"{size} bytes" if size is not None else "The request body"
        return ServingError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{described} is over this server's limit of {self.max_request_bytes} bytes per request "
            "(max_request_bytes).",
            http_status=413,
        )

    def too_many_examples(self, size: int) -> ServingError:
        """A request with more than `max_request_batch_size` examples."""
        return invalid_argument(
            f"Batch of {size} examples is over this server's limit of {self.max_request_batch_size} "
            "examples per request (max_request_batch_size)."
        )

    def too_deep(self, depth: int | None) -> ServingError:
        """A JSON body nested deeper than `max_json_depth` (`depth` None: found by the parser's recursion)."""
        described = f"nests arrays/objects {depth} levels deep" if depth is not None else "nests too deeply"
        return invalid_argument(
            f"JSON Parse error: the body {described}; this server's limit is {self.max_json_depth} levels "
            "(max_json_depth)."
        )

    def body_too_late(self) -> ServingError:
        """A REST body not complete `rest_body_timeout_seconds` after its headers."""
        return ServingError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "The request body did not arrive within this server's limit of "
            f"{self.rest_body_timeout_seconds:g} seconds (rest_body_timeout_seconds).",
            http_status=408,
        )

    def too_many_connections(self) -> str:
        """The 503 message to a connection beyond `rest_max_connections`."""
        return (
            f"This server has its limit of {self.rest_max_connections} open connections "
            "(rest_max_connections); retry later."
        )


# ---------------------------------------------------------------------- command line
def define_flags(flag_values) -> None:
    """One absl flag per limit: the field's name, default and meaning."""
    definers = {int: flags.DEFINE_integer, float: flags.DEFINE_float}
    for field in dataclasses.fields(RequestLimits):
        define = definers[type(field.default)]
        define(field.name, field.default, field.metadata["meaning"], flag_values=flag_values)


def from_flags(flag_values) -> RequestLimits:
    """The `RequestLimits` that the flags of `define_flags` hold."""
    names = [field.name for field in dataclasses.fields(RequestLimits)]
    return RequestLimits(**{name: getattr(flag_values, name) for name in names})


__all__ = ["RequestLimits", "define_flags", "from_flags"]
