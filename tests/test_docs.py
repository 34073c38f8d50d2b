"""Every command and example in the docs runs, or names only flags, experiments and files that exist.

- Python blocks run as written; a line ``print(...)  # prints: TEXT`` asserts what it printed.
  A block whose first line is ``# needs: ...`` (a download) is compiled and its imports checked.
- Shell commands: ``python -m MODULE`` / ``tf-metaling-*`` entry points are parsed with the
  module's own flags (absl ``define_flags``, or the argparse options its source declares); the
  trainers' commands are resolved to their configuration (registered names, override keys,
  flags a study cannot use); ``make`` targets exist in the Makefile; ``python benchmarks/X.py``
  options exist in the script; ``curl`` requests name a REST route and carry valid JSON;
  ``docker`` commands mount files of the repository.
"""

from __future__ import annotations

import ast
import contextlib
import glob
import importlib
import io
import json
import os
import re
import shlex

import pytest
from absl import flags

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "BUILD.md"] + sorted(os.path.relpath(p, REPOSITORY)
                                           for p in glob.glob(os.path.join(REPOSITORY, "docs", "*.md")))
CONSOLE_SCRIPTS = {"tf-metaling-export": "serving.export", "tf-metaling-server": "serving.server",
                   "tf-metaling-client": "serving.client", "tf-metaling-pretrain": "trainers.pretrain",
                   "tf-metaling-finetune": "trainers.finetune", "tf-metaling-experiments": "trainers.experiments",
                   "tf-metaling-analyze": "trainers.analyze", "tf-metaling-smoke": "tf_metaling.smoke"}
# Shell lines that are not commands of the project (set-up of a fresh clone, timing).
SHELL_BUILTINS = ("cd", "d=$(mktemp", "git", "python3.11 -m venv", ".venv/bin/python -m pip", "export")


def _blocks(page: str, language: str) -> list:
    with open(os.path.join(REPOSITORY, page), encoding="utf-8") as file:
        text = file.read()
    return [match.group(1) for match in re.finditer(rf"```{language}\n(.*?)```", text, flags=re.S)]


def _python_examples():
    return [pytest.param(page, index, block, id=f"{page}-python{index}")
            for page in PAGES for index, block in enumerate(_blocks(page, "python"))]


def _commands():
    commands = []
    for page in PAGES:
        for block in _blocks(page, "bash"):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    commands.append(pytest.param(page, line, id=f"{page}: {line[:70]}"))
    return commands


def test_the_docs_have_examples_and_commands():
    assert len(_python_examples()) >= 6 and len(_commands()) >= 30
    assert {"docs/training.md", "docs/studies.md", "docs/corpus.md", "docs/layers.md", "docs/serving.md",
            "docs/synthetic_control.md", "docs/benchmarks.md", "docs/results.md",
            "docs/checkpoints.md"} <= set(PAGES)


@pytest.mark.parametrize("page, index, block", _python_examples())
def test_python_example_runs_and_prints_what_it_says(page, index, block, tmp_path, monkeypatch):
    tree = ast.parse(block)
    if block.startswith("# needs:"):
        for node in ast.walk(tree):  # the names it imports exist
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{page}: {node.module}.{alias.name} does not exist"
        return
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    expected = [line.split("# prints:", 1)[1].strip() for line in block.splitlines() if "# prints:" in line]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(tree, f"{page} python block {index}", "exec"), {"__name__": f"docs_{index}"})
    printed = [line.strip() for line in output.getvalue().splitlines() if line.strip()]
    assert printed[-len(expected):] if expected else True, f"{page}: the example printed nothing"
    if expected:
        assert printed[-len(expected):] == expected


def _argparse_options(path: str) -> set:
    """The option strings a script's source gives argparse (``add_argument("--name", ...)``)."""
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    options = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            options |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)
                        and str(arg.value).startswith("-")}
    return options


def _check_argparse(path: str, arguments: list, where: str):
    known = _argparse_options(path)
    for argument in arguments:
        if argument.startswith("-"):
            name = argument.split("=", 1)[0]
            assert name in known, f"{where}: {name} is not an option of {os.path.relpath(path, REPOSITORY)}"


def _check_module(module_name: str, arguments: list, where: str):
    if module_name == "pytest":  # the test paths it names exist
        paths = [a.split("::")[0] for a in arguments if a.startswith("tests")]
        assert all(os.path.exists(os.path.join(REPOSITORY, p)) for p in paths), f"{where}: no such tests"
        return
    module = importlib.import_module(module_name)
    if not hasattr(module, "define_flags"):  # an argparse entry point
        path = module.__file__
        if path.endswith("__init__.py"):
            path = os.path.join(os.path.dirname(path), "__main__.py")
        _check_argparse(path, arguments, where)
        return
    values = flags.FlagValues()
    module.define_flags(values)
    try:
        values([module_name, *arguments])
    except flags.Error as error:
        raise AssertionError(f"{where}: {error}") from None
    config_files_exist = all(os.path.exists(path) for path in getattr(values, "config_file", []))
    if module_name == "trainers.experiments" and not values.list_experiments and config_files_exist:
        from trainers import experiments

        with contextlib.redirect_stderr(io.StringIO()):
            experiments.resolve_study(values)  # registered names, override keys, flags the study can use
    if module_name in ("trainers.pretrain", "trainers.finetune"):
        from trainers import flags_common

        if config_files_exist:  # not a documented run's own config.yaml, written when it runs
            flags_common.resolve_config(values, init_preset=getattr(values, "init_preset", None))


@pytest.mark.parametrize("page, command", _commands())
def test_documented_command_names_what_exists(page, command):
    where = f"{page}: {command}"
    if command.startswith("time "):
        command = command[5:]
    if command.startswith(SHELL_BUILTINS):
        return
    words = shlex.split(command, comments=True)
    program, arguments = words[0], words[1:]
    if program == "make":
        with open(os.path.join(REPOSITORY, "Makefile"), encoding="utf-8") as file:
            targets = set(re.findall(r"^([\w-]+):", file.read(), flags=re.M))
        assert all(a in targets or "=" in a for a in arguments), f"{where}: not a Makefile target"
    elif program in ("python", ".venv/bin/python") and arguments[0] == "-c":  # a one-liner: it compiles
        compile(arguments[1], where, "exec")
    elif program in ("python", ".venv/bin/python") and arguments[0] == "-m":
        _check_module(arguments[1], arguments[2:], where)
    elif program in ("python", ".venv/bin/python") and arguments[0].endswith(".py"):
        path = os.path.join(REPOSITORY, arguments[0])
        assert os.path.exists(path), f"{where}: no such script"
        _check_argparse(path, arguments[1:], where)
    elif program in CONSOLE_SCRIPTS:
        _check_module(CONSOLE_SCRIPTS[program], arguments, where)
    elif program == "curl":
        url = next(a for a in arguments if a.startswith("http"))
        assert re.match(r"http://127\.0\.0\.1:\d+/(v1/models/[^/:]+(/versions/\d+)?(:predict|:classify|/metadata)?"
                        r"|monitoring/prometheus/metrics)$", url), f"{where}: not a route of the REST API"
        if "-d" in arguments:
            body = json.loads(arguments[arguments.index("-d") + 1])
            assert "instances" in body or "inputs" in body or "examples" in body
    elif program == "docker":
        for argument in arguments:
            match = re.search(r"source=\$PWD/([^,]+)", argument)
            if match and not match.group(1).startswith("runs/"):
                assert os.path.exists(os.path.join(REPOSITORY, match.group(1))), f"{where}: {match.group(1)} missing"
    else:
        raise AssertionError(f"{where}: not a command the docs test knows how to check ({program})")
