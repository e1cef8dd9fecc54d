"""The house's layering (docs/DESIGN.md, ARCHITECTURE.md): imports inside boxpose point down only.

Every ``import`` of every module (module level or inside a function) is read from the source, so a lazy
import that points up is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "boxpose"

# What each part of the package may import (besides itself). Anything not listed is an upward edge.
BELOW_ENGINE = {"codec", "data", "detect", "evaluation", "keypoints", "models", "nn", "ops", "paper", "viz"}
ALLOWED = {
    "keypoints": set(),
    "paper": set(),
    "detect": set(),  # person detectors: images -> boxes, no pose
    "ops": set(),
    "nn": {"ops"},
    "models": {"nn", "ops", "keypoints"},
    "codec": {"keypoints"},
    "evaluation": {"keypoints"},
    "viz": {"keypoints"},
    "data": {"codec", "evaluation", "keypoints"},
    "engine": BELOW_ENGINE,
    "config": {"data", "models"},  # composing and checking configs (the registered datasets and models)
    "builders": BELOW_ENGINE | {"engine", "config"},  # config -> objects
    "cli": BELOW_ENGINE | {"engine", "config", "builders"},
    "demo": BELOW_ENGINE | {"engine", "config", "builders", "cli"},
    "train": {"cli"},
    "evaluate": {"cli"},
}


def _part(module: str) -> str | None:
    """The part of boxpose a dotted module name belongs to ("boxpose.data.mpii" -> "data")."""
    parts = module.split(".")
    if parts[0] != "boxpose" or len(parts) == 1:
        return None
    return parts[1]


def import_edges() -> set[tuple[str, str, str]]:
    """(importing part, imported part, file) for every import between two parts of boxpose."""
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = _part(module)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                target = _part(name)
                if source and target and target != source:
                    edges.add((source, target, str(path.relative_to(PACKAGE.parent))))
    return edges


def test_every_part_is_placed_in_a_layer() -> None:
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert parts - set(ALLOWED) == set(), "place the new part in ALLOWED (tests/test_layering.py)"


def test_imports_point_down() -> None:
    upward = sorted(f"{file}: {source} -> {target}" for source, target, file in import_edges()
                    if target not in ALLOWED.get(source, set()))  # fmt: skip
    assert upward == [], "imports that point up:\n" + "\n".join(upward)


def test_the_checker_sees_imports() -> None:
    """The graph is not empty: known edges (nn -> ops, data -> codec, cli -> engine) are found."""
    pairs = {(source, target) for source, target, _ in import_edges()}
    assert {("nn", "ops"), ("data", "codec"), ("cli", "engine"), ("models", "nn")} <= pairs
