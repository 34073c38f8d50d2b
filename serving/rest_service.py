"""The REST front end: TF Serving's RESTful API on aiohttp.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or columnar tensors
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify   tf.Examples as JSON

Bodies and errors are shaped as TF Serving documents them (``{"error": ...}``
with the status code's HTTP status; 413 for a body over the size limit, 415 for
a body that is not JSON, 408 for a body that does not arrive in time). The
event loop only moves bytes: parsing, running the model and writing JSON happen
on a thread pool, where concurrent requests can also meet in the batcher.

Slow or idle clients cannot hold the server (the limits are a `RequestLimits`):
a connection must deliver a request's complete headers within
`rest_header_timeout_seconds` of opening or of its previous answer (aiohttp's
keep-alive timer, which a trickle of bytes does not reset), its body within
`rest_body_timeout_seconds`, and beyond `rest_max_connections` open connections
a new one is answered 503 and closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading

import grpc
import numpy as np
from absl import logging
from aiohttp import web
from google.protobuf import json_format

from serving import tensor_json
from serving.errors import ServingError, invalid_argument, not_found, one_line
from serving.prediction_api import PredictionApi, internal_error
from serving.request_limits import RequestLimits

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>[^/:]+)|/(?P<subresource>[^/:]+))?$"
)
_VERBS = ("predict", "classify", "regress")
# JSON strings (escapes included), removed before brackets are counted.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


class RestService:
    """Serves the REST API on `host:port` from a background thread.

    Args:
        api: the `PredictionApi`.
        host, port: where to listen (port 0: any free port; see `port` after `start`).
        limits: the `RequestLimits` (body size, JSON depth, header and body
            timeouts, open connections); its defaults when None.
        threads: worker threads that run requests.
        grace_seconds: how long `stop` waits for in-flight requests.
    """

    def __init__(
        self,
        api: PredictionApi,
        host: str = "127.0.0.1",
        port: int = 8501,
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
        # The REST-side names of the limits this front end enforces.
        self.max_request_bytes = limits.max_request_bytes
        self.max_json_depth = limits.max_json_depth
        self.header_timeout_seconds = limits.rest_header_timeout_seconds
        self.body_timeout_seconds = limits.rest_body_timeout_seconds
        self.max_connections = limits.rest_max_connections
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rest")
        self._loop = None
        self._runner = None
        self._thread = None

    def start(self) -> int:
        ready = threading.Event()
        failure = []

        def serve():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open())
            except BaseException as error:  # noqa: BLE001 - reported to start()
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="rest-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.port

    async def _open(self):
        app = web.Application(client_max_size=self.max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.grace_seconds,
            # aiohttp closes a connection whose next request's headers are not complete this long
            # after it opened or answered; bytes trickling in do not restart the timer.
            keepalive_timeout=self.header_timeout_seconds,
            # After answering a request whose body did not fully arrive (408, 413), aiohttp reads and
            # drops the rest this long so the client sees the answer; kept short for slow senders.
            lingering_time=2.0,
        )
        await self._runner.setup()
        site = _LimitedTCPSite(self._runner, self.host, self.port, self.limits)
        await site.start()
        self.port = site.bound_port

    def stop(self):
        """Stops accepting, lets in-flight requests finish (up to the grace period), closes."""
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            future.result(timeout=self.grace_seconds + 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._executor.shutdown(wait=True)
            self._loop = None

    # ------------------------------------------------------------------ requests
    async def _handle(self, request: web.Request) -> web.Response:
        method, path = request.method, request.path
        try:
            if request.content_length is not None and request.content_length > self.max_request_bytes:
                raise self.limits.too_large(request.content_length)
            try:
                async with asyncio.timeout(self.body_timeout_seconds):
                    body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise self.limits.too_large(None) from None
            except TimeoutError:
                raise self.limits.body_too_late() from None
            content_type = request.headers.get("Content-Type")
            loop = asyncio.get_running_loop()
            payload = await loop.run_in_executor(self._executor, self._dispatch, method, path, body, content_type)
            return web.Response(body=payload, status=200, content_type="application/json")
        except ServingError as error:
            logging.warning(
                "REST %s %s -> %d %s: %s", method, path, error.http_status, error.code.name, one_line(error.message)
            )
            return _error_response(error)
        except Exception as error:  # noqa: BLE001 - any failure answers 500, the server goes on
            wrapped = internal_error(error)
            logging.error("REST %s %s -> 500 INTERNAL: %s", method, path, one_line(wrapped.message))
            return _error_response(wrapped)

    def _dispatch(self, method: str, path: str, body: bytes, content_type: str | None = None) -> bytes:
        match = _PATH.match(path)
        if not path.startswith("/v1/"):
            raise not_found(f"No such path: {path}; the API lives under /v1/models/.")
        if match is None:
            raise invalid_argument(f"Malformed request: {method} {path}")
        name, label, verb, subresource = match["name"], match["label"], match["verb"], match["subresource"]
        version = None
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid_argument(f"Failed to convert version: {match['version']} to numeric.")
            version = int(match["version"])
        if method == "GET" and verb is None and subresource in (None, "metadata"):
            if subresource == "metadata":
                response = self.api.model_metadata(name, version, label)
            else:
                response = self.api.model_status(name, version, label)
            return _proto_json(response)
        if method == "POST" and verb in _VERBS and subresource is None:
            _check_content_type(content_type)
            document = _parse_json(body, self.limits)
            if verb == "predict":
                return self._predict(name, version, label, document)
            if verb == "classify":
                return self._classify(name, version, label, document)
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "This server does not implement the Regress API.")
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _predict(self, name, version, label, document) -> bytes:
        if not isinstance(document, dict):
            raise invalid_argument("The request body must be a JSON object.")
        signature_name = document.get("signature_name")
        if signature_name is not None and not isinstance(signature_name, str):
            raise invalid_argument('"signature_name" must be a string.')
        formats = []

        def parse(signature):
            inputs, fmt = tensor_json.parse_predict_body(document, signature)
            formats.append(fmt)
            return inputs

        _, _, outputs = self.api.predict(name, version, label, signature_name, parse)
        return _dumps(tensor_json.make_predict_response(outputs, formats[0]))

    def _classify(self, name, version, label, document) -> bytes:
        signature_name, examples = tensor_json.parse_classify_body(document)
        _, _, classes, scores = self.api.classify(name, version, label, signature_name, examples)
        return _dumps({"result": tensor_json.classification_result(classes, scores)})


def _check_content_type(header: str | None) -> None:
    """Predict/classify/regress bodies are JSON: no Content-Type (curl's default) or application/json."""
    if header is None:
        return
    media_type, *parameters = (part.strip() for part in header.split(";"))
    if media_type.lower() != "application/json":
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Content-Type {header!r} is not supported: the request body must be JSON (application/json).",
            http_status=415,
        )
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Content-Type {header!r}: charset {value.strip()} is not supported; send UTF-8 JSON.",
                http_status=415,
            )


def json_nesting_depth(body: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in `body`, counted without parsing it."""
    brackets = np.frombuffer(_JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS), np.uint8)
    steps = np.isin(brackets, (ord("["), ord("{"))).astype(np.int32) * 2 - 1
    return int(np.cumsum(steps).max()) if steps.size else 0


def _parse_json(body: bytes, limits: RequestLimits):
    # Python's JSON parser recurses once per level; a deep body would reach the
    # interpreter's recursion limit (a RecursionError), so the depth is checked first.
    max_depth = limits.max_json_depth
    if body.count(b"[") + body.count(b"{") > max_depth and (depth := json_nesting_depth(body)) > max_depth:
        raise limits.too_deep(depth)
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise invalid_argument(
            f"JSON Parse error: the body is not valid UTF-8 (byte {error.start}: {error.reason})."
        ) from None
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise limits.too_deep(None) from None


def _dumps(document) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _proto_json(message) -> bytes:
    document = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(document, indent=1).encode("utf-8")


def _error_response(error: ServingError) -> web.Response:
    return web.Response(
        body=json.dumps({"error": error.message}).encode("utf-8"),
        status=error.http_status,
        content_type="application/json",
    )


class _LimitedTCPSite(web.TCPSite):
    """aiohttp's TCP site, answering 503 to connections beyond `rest_max_connections` open ones."""

    def __init__(self, runner, host, port, limits: RequestLimits):
        super().__init__(runner, host, port, reuse_address=True)
        self.limits = limits
        self.refused = 0

    @property
    def bound_port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    async def start(self):
        await web.BaseSite.start(self)  # registers the site with the runner (stopped by cleanup)
        server = self._runner.server

        def protocol():
            if len(server.connections) >= self.limits.rest_max_connections:
                self.refused += 1
                return _Refuse(self.limits.too_many_connections())
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


class _Refuse(asyncio.Protocol):
    """Answers one 503 with a JSON error and closes (the connection limit is reached)."""

    def __init__(self, message: str):
        self.message = message

    def connection_made(self, transport):
        body = json.dumps({"error": self.message}).encode("utf-8")
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
            + body
        )
        transport.close()
