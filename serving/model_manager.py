"""Model versions on disk -> loaded servables, with hot swap and version status.

The manager watches each model's base path (TF Serving's layout: one integer
directory per version). A version the version policy wants is loaded and warmed
up while the current one keeps serving; only then does it become AVAILABLE and
take new requests. A version the policy no longer wants stops taking new
requests at once and is unloaded when its last in-flight request has finished,
so a switch never fails a request. A version that fails to load (no
saved_model.pb, unreadable variables, a signature without the ``language``
input, a failing warmup) is reported (END with its error) and skipped; the
versions already serving stay. It is tried again only when its directory
changes (a copy that was still in progress, a repaired export).

States follow TF Serving's ModelVersionStatus: START, LOADING, AVAILABLE,
UNLOADING, END.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading

from absl import logging
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.batcher import BatchingOptions
from serving.errors import ServingError, not_found, one_line
from serving.request_limits import RequestLimits
from serving.servable import Servable

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
_VERSION_PATTERN = re.compile(r"^\d+$")


@dataclasses.dataclass
class ModelConfig:
    """One served model: TF Serving's ModelConfig fields that this server uses.

    Args:
        name: the model name in requests.
        base_path: the directory holding the integer version directories.
        version_policy: ``"latest"`` (the newest `num_versions`), ``"all"``, or
            ``"specific"`` (the `versions` listed).
        num_versions: versions kept by the ``"latest"`` policy.
        versions: versions served by the ``"specific"`` policy.
        version_labels: ``{label: version}`` for ``/labels/{label}`` requests.
    """

    name: str
    base_path: str
    version_policy: str = "latest"
    num_versions: int = 1
    versions: tuple = ()
    version_labels: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.version_policy not in ("latest", "all", "specific"):
            raise ValueError(
                f"model {self.name}: version_policy={self.version_policy!r}: expected latest, all or specific."
            )
        if self.version_policy == "latest" and self.num_versions < 1:
            raise ValueError(f"model {self.name}: num_versions must be >= 1.")

    def aspired(self, available_on_disk: list) -> set:
        versions = sorted(available_on_disk)
        if self.version_policy == "all":
            return set(versions)
        if self.version_policy == "specific":
            return set(versions) & {int(v) for v in self.versions}
        return set(versions[-self.num_versions :])


class _VersionEntry:
    def __init__(self, version: int, path: str):
        self.version = version
        self.path = path
        self.state = START
        self.error: str | None = None
        self.servable: Servable | None = None
        self.in_flight = 0
        self.fingerprint = None  # of the directory when its load failed


def read_model_config_file(path: str) -> list:
    """`ModelConfig`s from a TF Serving model config file (ModelServerConfig text proto)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {error}") from None
    models = []
    for model in config.model_config_list.config:
        policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
        kwargs = {}
        if policy == "latest":
            kwargs["num_versions"] = model.model_version_policy.latest.num_versions or 1
        elif policy == "specific":
            kwargs["versions"] = tuple(model.model_version_policy.specific.versions)
        if model.model_platform and model.model_platform != "tensorflow":
            raise ValueError(f"{path}: model {model.name}: model_platform {model.model_platform!r} is not served here.")
        models.append(
            ModelConfig(
                name=model.name,
                base_path=model.base_path,
                version_policy=policy,
                version_labels=dict(model.version_labels),
                **kwargs,
            )
        )
    if not models:
        raise ValueError(f"{path}: no model_config_list entries.")
    return models


class ModelManager:
    """Loads, serves and unloads the versions of a set of models.

    Args:
        configs: `ModelConfig`s (names must be unique).
        poll_seconds: how often the base paths are scanned (0: only by `poll`).
        batching: `BatchingOptions` or None.
        limits: the `RequestLimits` passed to servables; its defaults when None.
        unload_timeout_seconds: how long `stop` waits for in-flight requests.
    """

    def __init__(
        self,
        configs: list,
        poll_seconds: float = 1.0,
        batching: BatchingOptions | None = None,
        limits: RequestLimits | None = None,
        unload_timeout_seconds: float = 30.0,
    ):
        names = [config.name for config in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate model names in {names}.")
        self.configs = {config.name: config for config in configs}
        self.poll_seconds = float(poll_seconds)
        self.batching = batching
        self.limits = limits or RequestLimits()
        self.unload_timeout_seconds = unload_timeout_seconds
        self._entries = {name: {} for name in self.configs}
        self._lock = threading.Condition()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        """Loads what is on disk now, then watches the base paths in a thread."""
        self.poll()
        if self.poll_seconds > 0:
            self._watcher = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
            self._watcher.start()

    def stop(self):
        """Stops watching and unloads every version after its in-flight requests finish."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            entries = [
                e
                for versions in self._entries.values()
                for e in versions.values()
                if e.state in (AVAILABLE, UNLOADING) and e.servable is not None
            ]
            for entry in entries:
                entry.state = UNLOADING
            self._lock.wait_for(lambda: all(e.in_flight == 0 for e in entries), timeout=self.unload_timeout_seconds)
        for entry in entries:
            self._unload(entry)

    def _watch(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception as error:  # noqa: BLE001 - keep watching after a bad scan
                logging.error("model watcher: %s", one_line(error))

    def poll(self):
        """Scans every base path once: loads wanted versions, retires unwanted ones."""
        with self._poll_lock:
            for name, config in self.configs.items():
                self._poll_model(name, config)

    def _poll_model(self, name, config):
        on_disk = _versions_on_disk(config.base_path)
        entries = self._entries[name]
        # When a wanted version fails, the policy is applied again without it (the
        # newest good version is then wanted), at most once per version on disk.
        for _ in range(len(on_disk) + 1):
            with self._lock:
                failed = {v: e.fingerprint for v, e in entries.items() if e.state == END and e.error is not None}
            # A failed version stays skipped until its directory changes.
            skipped = {
                v for v, fingerprint in failed.items() if v in on_disk and _fingerprint(on_disk[v]) == fingerprint
            }
            aspired = config.aspired([v for v in on_disk if v not in skipped])
            all_loaded = True
            for version in sorted(aspired):
                with self._lock:
                    entry = entries.get(version)
                    if entry is not None and entry.state in (LOADING, AVAILABLE):
                        continue
                    entry = _VersionEntry(version, on_disk[version])
                    entry.state = LOADING
                    entries[version] = entry
                all_loaded &= self._load(name, entry)
            if all_loaded:
                break
        with self._lock:
            available = {v for v, e in entries.items() if e.state == AVAILABLE}
            # Retire only once something the policy wants is serving, so the model never goes dark.
            if not (available & aspired):
                return
            retiring = [entries[v] for v in available - aspired]
            for entry in retiring:
                entry.state = UNLOADING
                idle = entry.in_flight == 0
                if idle:
                    threading.Thread(target=self._unload, args=(entry,), daemon=True).start()

    def _load(self, name, entry):
        logging.info("loading %s version %d from %s", name, entry.version, entry.path)
        fingerprint = _fingerprint(entry.path)
        servable = None
        try:
            servable = Servable(name, entry.version, entry.path, self.batching, self.limits)
            records = servable.warm_up()
        except Exception as error:  # noqa: BLE001 - a bad version is reported, not fatal
            if servable is not None:
                servable.close()  # its batch threads
            message = one_line(getattr(error, "message", None) or error)
            if entry.path not in message:
                message = f"{entry.path}: {message}"
            logging.error("failed to load %s version %d: %s", name, entry.version, message)
            with self._lock:
                entry.state, entry.error, entry.fingerprint = END, message, fingerprint
            return False
        with self._lock:
            entry.servable = servable
            entry.state = AVAILABLE
            self._lock.notify_all()
        logging.info("serving %s version %d (%d warmup records)", name, entry.version, records)
        return True

    def _unload(self, entry):
        with self._lock:
            servable, entry.servable = entry.servable, None
        if servable is not None:
            servable.close()
        with self._lock:
            entry.state = END
            self._lock.notify_all()
        logging.info("unloaded version %d from %s", entry.version, entry.path)

    # ------------------------------------------------------------------ requests
    @contextlib.contextmanager
    def servable(self, name: str, version: int | None = None, label: str | None = None):
        """The servable a request names (latest AVAILABLE by default), held until the block ends."""
        entry = self._acquire(name, version, label)
        try:
            yield entry.servable
        finally:
            self._release(entry)

    def resolve_label(self, name: str, label: str) -> int:
        config = self._config(name)
        if label not in config.version_labels:
            raise not_found(
                f"Unrecognized servable version label: {label} (model {name} has labels "
                f"{sorted(config.version_labels) or 'none'})."
            )
        return int(config.version_labels[label])

    def _config(self, name):
        if name not in self.configs:
            raise not_found(
                f"Servable not found for request: Latest({name}); this server has models {sorted(self.configs)}."
            )
        return self.configs[name]

    def _acquire(self, name, version, label):
        self._config(name)
        if label is not None:
            version = self.resolve_label(name, label)
        with self._lock:
            entries = self._entries[name]
            if version is None:
                available = [v for v, e in entries.items() if e.state == AVAILABLE]
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name}).")
                entry = entries[max(available)]
            else:
                entry = entries.get(int(version))
                if entry is None or entry.state != AVAILABLE:
                    raise not_found(f"Servable not found for request: Specific({name}, {version}).")
            entry.in_flight += 1
            return entry

    def _release(self, entry):
        with self._lock:
            entry.in_flight -= 1
            finished = entry.in_flight == 0 and entry.state == UNLOADING and not self._stop.is_set()
            self._lock.notify_all()
        if finished:
            threading.Thread(target=self._unload, args=(entry,), daemon=True).start()

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list:
        """``[(version, state, error or None)]`` of a model (one version when given)."""
        self._config(name)
        if label is not None:
            version = self.resolve_label(name, label)
        with self._lock:
            entries = self._entries[name]
            if version is not None:
                if int(version) not in entries:
                    raise not_found(f"Could not find version {version} of model {name}.")
                chosen = [entries[int(version)]]
            else:
                chosen = [entries[v] for v in sorted(entries)]
                if not chosen:
                    raise not_found(f"Could not find any versions of model {name}.")
            return [(e.version, e.state, e.error) for e in chosen]

    def wait_for_version(self, name: str, version: int, timeout: float = 60.0) -> bool:
        """Blocks until `version` of `name` is AVAILABLE (True) or the timeout passes (False)."""

        def ready():
            entry = self._entries[name].get(int(version))
            return entry is not None and entry.state == AVAILABLE

        with self._lock:
            return self._lock.wait_for(ready, timeout=timeout)


def _versions_on_disk(base_path: str) -> dict:
    """``{version: path}`` for the integer directories (TF Serving's version layout).

    A version directory without saved_model.pb counts: it fails to load and is
    reported, rather than being ignored in silence. Exports appear complete (they
    are renamed into place from a hidden temporary directory, which never counts).
    """
    if not os.path.isdir(base_path):
        return {}
    found = {}
    for name in os.listdir(base_path):
        path = os.path.join(base_path, name)
        if _VERSION_PATTERN.match(name) and os.path.isdir(path):
            found[int(name)] = path
    return found


def _fingerprint(path: str) -> tuple:
    """Names, sizes and modification times of every file under `path` (changes when its contents do)."""
    entries = []
    for root, _, files in os.walk(path):
        for file_name in files:
            file_path = os.path.join(root, file_name)
            try:
                stat = os.stat(file_path)
            except OSError:
                continue
            entries.append((os.path.relpath(file_path, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


__all__ = [
    "AVAILABLE",
    "END",
    "LOADING",
    "UNLOADING",
    "ModelConfig",
    "ModelManager",
    "ServingError",
    "read_model_config_file",
]
