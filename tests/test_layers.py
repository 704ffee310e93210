"""The layers hold (docs/architecture.md): no package imports one above it, and installing d4d
claims the name ``d4d`` only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The ground floor: modules directly in d4d/ that every package may use.
GROUND = {"files", "lpips", "measures", "options", "progress", "storage", "untrusted", "video", "weights"}
#: Package -> the d4d packages it may import (besides itself and the ground floor).
MAY_IMPORT = {
    "rendering": set(),
    "curation": {"rendering"},
    "shards": {"rendering"},
    "pipelines": {"curation", "shards", "rendering"},
    "training": {"shards", "rendering"},
    "reconstruction": {"shards", "rendering"},
    "evaluation": {"training", "reconstruction", "shards", "rendering"},
    "inspection": {"curation", "shards", "pipelines", "training", "reconstruction", "evaluation", "rendering"},
}
#: Top-floor modules of d4d/ that may import everything: the demo and the test fixtures.
TOP = {"demo", "testing"}


def d4d_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first name after "d4d.") of every absolute import of d4d's own code in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "d4d" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_no_package_imports_one_above_it():
    violations = []
    for package, allowed in MAY_IMPORT.items():
        folder = REPO / package
        assert folder.is_dir(), f"{folder}: the layout names a package that is not there"
        for path in sorted(folder.rglob("*.py")):
            for line, target in d4d_imports(path):
                if target not in allowed | GROUND | {package}:
                    violations.append(f"{path.relative_to(REPO)}:{line} imports d4d.{target}")
    for path in sorted((REPO / "d4d").glob("*.py")):
        if path.stem in GROUND:
            violations += [f"{path.relative_to(REPO)}:{line} imports d4d.{target}" for line, target in d4d_imports(path) if target not in GROUND]
    assert not violations, "layer violations (docs/architecture.md):\n" + "\n".join(violations)


def test_every_package_and_module_has_a_layer():
    folders = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()} - {"d4d", "benchmarks"}  # benchmarks: scripts, not installed
    assert folders == set(MAY_IMPORT), "a package folder without a place in the layers (or a layer without its folder)"
    modules = {p.stem for p in (REPO / "d4d").glob("*.py")} - {"__init__"} | {p.name for p in (REPO / "d4d").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules <= GROUND | TOP, f"d4d/ holds {sorted(modules - GROUND - TOP)}, neither ground floor nor top floor"


def test_installing_d4d_claims_only_its_own_name(tmp_path):
    """From outside the repository, ``import training`` must not find d4d's code (it would shadow,
    or be shadowed by, any other package of that name); ``import d4d.training`` must."""
    script = (
        "import importlib.util, sys\n"
        "generic = ['rendering', 'curation', 'shards', 'pipelines', 'training', 'reconstruction', 'inspection', 'evaluation']\n"
        "print([n for n in generic if importlib.util.find_spec(n) is not None])\n"
        "import d4d.rendering.contract, d4d.pipelines.runner\n"
        "print(d4d.rendering.contract.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found, contract = done.stdout.splitlines()
    assert found == "[]" and Path(contract) == REPO / "rendering" / "contract.py"
