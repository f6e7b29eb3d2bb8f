"""The package's layers: every import points down, so there are no cycles and nothing reaches back up.

Imports inside functions count too (a lazy import is still a dependency). The order is the data flow of
docs/architecture.md: read a scan, make datasets, build models, score them, fit them, explain them,
evaluate them, serve predictions, and the command line on top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import braintumor

ROOT = Path(braintumor.__file__).parent
LAYERS = ["io", "data", "models", "metrics", "training", "explain", "evaluation", "inference", "serve", "cli"]


def _imports() -> dict[str, set[tuple[str, str]]]:
    """Per layer: (layer it imports, the importing file) for every braintumor import in its files."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if len(rel.parts) == 1:
            continue  # braintumor/__init__.py: the constants everything may use
        layer = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "braintumor" and len(parts) > 1 and parts[1] != layer:
                    edges[layer].add((parts[1], str(rel)))
    return edges


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"samples", "assets"}
    assert packages == set(LAYERS)


def test_imports_only_point_down() -> None:
    up = [
        f"{where}: {layer} imports {target}"
        for layer, found in _imports().items()
        for target, where in found
        if target in LAYERS and LAYERS.index(target) > LAYERS.index(layer)
    ]
    assert not up, "imports that point up a layer:\n" + "\n".join(sorted(up))


def test_the_service_uses_inference_only() -> None:
    used = {target for target, _ in _imports()["serve"]}
    assert used <= {"inference"}, used


def test_only_the_command_line_reads_the_environment_or_argv() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] != "cli"
        and any(word in path.read_text(encoding="utf-8") for word in ("os.environ", "os.getenv", "sys.argv"))
    ]
    assert not readers, readers
