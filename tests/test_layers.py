"""The import graph has no cycle and nothing imports upward: the layers contract in
pyproject.toml, checked by import-linter, and the kernels' own imports (installed from
kernels/ as npvae.kernels, where import-linter does not look)."""

import ast
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_layers_contract_is_kept():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: pip install -e '.[test]' brings import-linter")
    result = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def _npvae_imports(path):
    """The npvae modules that ``path`` (a file under kernels/) imports, absolute."""
    package = ["npvae", "kernels", *path.relative_to(ROOT / "kernels").parent.parts]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            yield ".".join(base + ([node.module] if node.module else []))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            yield from (n for n in names if n.split(".")[0] == "npvae")


def test_the_kernels_import_nothing_of_npvae_but_its_constants():
    files = sorted((ROOT / "kernels").rglob("*.py"))
    assert len(files) > 10
    upward = {f"{f.relative_to(ROOT)}: {m}" for f in files for m in _npvae_imports(f)
              if not (m == "npvae.constants" or m.startswith("npvae.kernels"))}
    assert not upward, upward
