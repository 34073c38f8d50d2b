"""Which TensorFlow ops an exported signature runs, and which of them are not core ops.

Stock TF Serving can load a signature only if every op in it is registered in
its binary: core TensorFlow ops, plus the tensorflow-text ops it links (an older
release; see ``tf_text_2_12_ops.txt``). `signature_op_types` reads the op types a
signature reaches straight from ``saved_model.pb`` (following function calls,
conditionals and loops through the function library), and
`ops_not_in_core_tensorflow` asks a fresh Python process that imports only
TensorFlow which of them it does not know.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tensorflow.core.protobuf import saved_model_pb2

ALLOWLIST_FILE = os.path.join(os.path.dirname(__file__), "tf_text_2_12_ops.txt")


def read_saved_model(export_dir: str) -> saved_model_pb2.SavedModel:
    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as file:
        proto.ParseFromString(file.read())
    return proto


def read_allowlist(path: str = ALLOWLIST_FILE) -> set:
    """The op names of an allow-list file (one per line, '#' comments)."""
    names = set()
    with open(path, encoding="utf-8") as file:
        for line in file:
            name = line.split("#", 1)[0].strip()
            if name:
                names.add(name)
    return names


def signature_op_types(export_dir: str, signature_name: str) -> set:
    """The op types that running `signature_name` of the SavedModel may execute."""
    meta_graph = read_saved_model(export_dir).meta_graphs[0]
    if signature_name not in meta_graph.signature_def:
        raise KeyError(f"{export_dir}: no signature {signature_name!r}; has {sorted(meta_graph.signature_def)}.")
    signature = meta_graph.signature_def[signature_name]
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    functions = {function.signature.name: function for function in meta_graph.graph_def.library.function}
    ops, seen_nodes, seen_functions = set(), set(), set()
    pending = [info.name.split(":")[0] for info in signature.outputs.values()]
    while pending:  # walk the main graph backwards from the outputs
        name = pending.pop().lstrip("^").split(":")[0]
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        pending.extend(node.input)
        # A node may call a library function by using the function's name as its op.
        if node.op in functions:
            _collect_function_ops([node.op], functions, ops, seen_functions)
        else:
            ops.add(node.op)
        _collect_function_ops(_called_functions(node), functions, ops, seen_functions)
    return ops


def _called_functions(node) -> list:
    called = []
    for value in node.attr.values():
        if value.HasField("func"):
            called.append(value.func.name)
        called.extend(function.name for function in value.list.func)
    return called


def _collect_function_ops(names, functions, ops, seen):
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name].node_def:
            if node.op in functions:
                pending.append(node.op)
            else:
                ops.add(node.op)
            pending.extend(_called_functions(node))


def ops_not_in_core_tensorflow(op_types) -> set:
    """The op types that TensorFlow alone (no tensorflow-text) does not register.

    Runs in a fresh interpreter: in this one, tensorflow-text may already have
    registered its ops.
    """
    program = (
        "import json, sys\n"
        "import tensorflow\n"
        "from tensorflow.python.framework import op_def_registry\n"
        "ops = json.loads(sys.stdin.read())\n"
        "print(json.dumps(sorted(op for op in ops if op_def_registry.get(op) is None)))\n"
    )
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(sorted(op_types)),
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))
