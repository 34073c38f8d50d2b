"""A model server speaking TF Serving's REST and gRPC APIs, for local use and tests.

    tf-metaling-server --model_name=metaling --model_base_path=/tmp/exports/metaling \
        [--port=8500] [--rest_api_port=8501] [--enable_batching --max_batch_size=32]

or ``--model_config_file`` with a TF Serving ModelServerConfig (several models,
version policies, version labels). It binds 127.0.0.1 unless told otherwise
(``--host``), watches the base paths for new versions (hot swap without failed
requests), optionally batches concurrent requests, rejects bodies over
``--max_request_bytes`` and requests over ``--max_request_batch_size`` examples,
logs one line per failed request, and on SIGTERM/SIGINT stops accepting, lets
in-flight requests finish (``--grace_seconds``) and unloads the models. Slow,
idle or too many clients are cut off by the ``--rest_*`` and ``--grpc_*``
limits (header/body timeouts, connection and call limits, keepalive). Every
request and connection limit is a field of `RequestLimits`, and its flag is
generated from that field.

The real `tensorflow_model_server` serves the same exports; see docs/serving.md.
"""

from __future__ import annotations

import os
import signal
import threading

from absl import app, flags, logging

from serving import request_limits
from serving.batcher import BatchingOptions
from serving.grpc_service import GrpcService
from serving.model_manager import ModelConfig, ModelManager, read_model_config_file
from serving.prediction_api import PredictionApi
from serving.request_limits import RequestLimits
from serving.rest_service import RestService

DEFAULT_HOST = "127.0.0.1"


class ModelServer:
    """The manager plus both front ends.

    Args:
        models: `ModelConfig`s.
        host: the address both front ends bind (loopback by default).
        grpc_port, rest_port: ports; 0 picks a free port, None disables that front end.
        poll_seconds: base-path scan interval (0: no watching).
        batching: `BatchingOptions` to enable dynamic batching.
        limits: the `RequestLimits` of both front ends and the servables (body
            size, examples per request, JSON depth, timeouts, connection and call
            limits); its defaults when None.
        threads: worker threads per front end.
        grace_seconds: how long `stop` lets in-flight requests finish.

    Example:
    >>> server = ModelServer([ModelConfig("metaling", "/tmp/exports/metaling")], grpc_port=0, rest_port=0)
    >>> server.start()  # doctest: +SKIP
    >>> server.rest_port, server.grpc_port  # doctest: +SKIP
    """

    def __init__(
        self,
        models: list,
        host: str = DEFAULT_HOST,
        grpc_port: int | None = 8500,
        rest_port: int | None = 8501,
        poll_seconds: float = 1.0,
        batching: BatchingOptions | None = None,
        limits: RequestLimits | None = None,
        threads: int = 64,
        grace_seconds: float = 10.0,
    ):
        if grpc_port is None and rest_port is None:
            raise ValueError("Enable at least one of the gRPC and REST front ends.")
        self.limits = limits = limits or RequestLimits()
        self.manager = ModelManager(models, poll_seconds, batching, limits)
        self.api = PredictionApi(self.manager)
        self.host = host
        self._grpc = (
            GrpcService(self.api, host, grpc_port, limits, threads, grace_seconds) if grpc_port is not None else None
        )
        self._rest = (
            RestService(self.api, host, rest_port, limits, threads, grace_seconds) if rest_port is not None else None
        )
        self._stopped = threading.Event()
        self._finished = threading.Event()

    @property
    def grpc_port(self):
        return self._grpc.port if self._grpc else None

    @property
    def rest_port(self):
        return self._rest.port if self._rest else None

    def start(self) -> ModelServer:
        self.manager.start()
        if self._grpc:
            self._grpc.start()
            logging.info("gRPC PredictionService / ModelService on %s:%d", self.host, self._grpc.port)
        if self._rest:
            self._rest.start()
            logging.info("REST API on http://%s:%d/v1/models/", self.host, self._rest.port)
        return self

    def stop(self):
        """Graceful: new requests are refused, in-flight ones finish, then models unload."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        front_ends = [f for f in (self._rest, self._grpc) if f is not None]
        threads = [threading.Thread(target=f.stop) for f in front_ends]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.manager.stop()
        logging.info("server stopped")
        self._finished.set()

    def wait(self):
        """Blocks until `stop` (e.g. from a signal handler) has finished."""
        self._finished.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------- command line
def define_flags(flag_values=None):
    """Defines the server's flags (TF Serving's names where it has them) on `flag_values`."""
    values = flag_values if flag_values is not None else flags.FLAGS
    flags.DEFINE_string("host", DEFAULT_HOST, "Address to bind (default loopback only).", flag_values=values)
    flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port; -1: no gRPC).", flag_values=values)
    flags.DEFINE_integer("rest_api_port", 8501, "REST port (0: any free port; -1: no REST).", flag_values=values)
    flags.DEFINE_string("model_name", "default", "Model name (with --model_base_path).", flag_values=values)
    flags.DEFINE_string(
        "model_base_path", None, "Directory with the model's integer version directories.", flag_values=values
    )
    flags.DEFINE_string(
        "model_config_file", None, "TF Serving ModelServerConfig text proto (several models).", flag_values=values
    )
    flags.DEFINE_float(
        "file_system_poll_wait_seconds", 1.0, "Base-path scan interval (0: load once).", flag_values=values
    )
    flags.DEFINE_bool("enable_batching", False, "Batch concurrent requests to the same signature.", flag_values=values)
    flags.DEFINE_integer("max_batch_size", 32, "Most examples in one merged batch.", flag_values=values)
    flags.DEFINE_integer("batch_timeout_micros", 2000, "Longest wait for a batch to fill.", flag_values=values)
    flags.DEFINE_integer("num_batch_threads", 1, "Threads running merged batches, per signature.", flag_values=values)
    flags.DEFINE_integer(
        "max_enqueued_batches", 64, "Queue limit (in batches) before RESOURCE_EXHAUSTED.", flag_values=values
    )
    flags.DEFINE_integer("threads", 64, "Worker threads per front end.", flag_values=values)
    flags.DEFINE_float("grace_seconds", 10.0, "How long shutdown waits for in-flight requests.", flag_values=values)
    request_limits.define_flags(values)


def server_from_flags(flags_values) -> ModelServer:
    if flags_values.model_config_file:
        models = read_model_config_file(flags_values.model_config_file)
    elif flags_values.model_base_path:
        models = [ModelConfig(flags_values.model_name, flags_values.model_base_path)]
    else:
        raise ValueError("Give --model_base_path (with --model_name) or --model_config_file.")
    batching = None
    if flags_values.enable_batching:
        batching = BatchingOptions(
            max_batch_size=flags_values.max_batch_size,
            batch_timeout_micros=flags_values.batch_timeout_micros,
            num_batch_threads=flags_values.num_batch_threads,
            max_enqueued_batches=flags_values.max_enqueued_batches,
        )
    return ModelServer(
        models,
        host=flags_values.host,
        grpc_port=None if flags_values.port < 0 else flags_values.port,
        rest_port=None if flags_values.rest_api_port < 0 else flags_values.rest_api_port,
        poll_seconds=flags_values.file_system_poll_wait_seconds,
        batching=batching,
        limits=request_limits.from_flags(flags_values),
        threads=flags_values.threads,
        grace_seconds=flags_values.grace_seconds,
    )


def main(argv):
    del argv
    server = server_from_flags(flags.FLAGS).start()
    # Printed (not only logged) so scripts can read the bound ports.
    print(f"serving gRPC={server.grpc_port} REST={server.rest_port}", flush=True)

    def shutdown(signum, frame):
        del frame
        logging.info("signal %d: shutting down", signum)
        threading.Thread(target=server.stop).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.wait()


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
