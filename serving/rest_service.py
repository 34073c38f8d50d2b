"""The REST front end: TF Serving's RESTful API on aiohttp.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or columnar tensors
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:classify   tf.Examples as JSON

Bodies and errors are shaped as TF Serving documents them (``{"error": ...}``
with the status code's HTTP status; 413 for a body over the size limit). The
event loop only moves bytes: parsing, running the model and writing JSON happen
on a thread pool, where concurrent requests can also meet in the batcher.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading

import grpc
from absl import logging
from aiohttp import web
from google.protobuf import json_format

from serving import tensor_json
from serving.errors import ServingError, invalid_argument, not_found, one_line
from serving.prediction_api import PredictionApi, internal_error

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>[^/:]+)|/(?P<subresource>[^/:]+))?$"
)
_VERBS = ("predict", "classify", "regress")


class RestService:
    """Serves the REST API on `host:port` from a background thread.

    Args:
        api: the `PredictionApi`.
        host, port: where to listen (port 0: any free port; see `port` after `start`).
        max_request_bytes: bodies over this size get 413.
        threads: worker threads that run requests.
        grace_seconds: how long `stop` waits for in-flight requests.
    """

    def __init__(
        self,
        api: PredictionApi,
        host: str = "127.0.0.1",
        port: int = 8501,
        max_request_bytes: int = 8 << 20,
        threads: int = 64,
        grace_seconds: float = 10.0,
    ):
        self.api = api
        self.grace_seconds = float(grace_seconds)
        self.host = host
        self.port = port
        self.max_request_bytes = int(max_request_bytes)
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
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.grace_seconds)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

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
                raise _too_large(request.content_length, self.max_request_bytes)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise _too_large(None, self.max_request_bytes) from None
            loop = asyncio.get_running_loop()
            payload = await loop.run_in_executor(self._executor, self._dispatch, method, path, body)
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

    def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
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
            document = _parse_json(body)
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


def _too_large(size, limit) -> ServingError:
    described = f"{size} bytes" if size is not None else "The request body"
    return ServingError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{described} is over this server's limit of {limit} bytes per request.",
        http_status=413,
    )


def _parse_json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid_argument(f"JSON Parse error: {error}") from None


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
