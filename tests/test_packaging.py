"""The distribution: wheel contents, entry points, and an engine free of Scipion imports."""

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, cwd=out)
    wheels = list(out.glob("scipion_em_deepqs-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ["deepqs/__init__.py", "deepqs/cli.py", "deepqs/io/maps.py", "deepqs/simulate/__init__.py",
                     "deepqs_plugin/__init__.py", "deepqs_plugin/bibtex.py", "deepqs_plugin/protocols.conf",
                     "deepqs_plugin/deepqs_logo.png", "deepqs_plugin/protocols/__init__.py",
                     "deepqs_plugin/viewers/__init__.py", "deepqs_headless.py"]:
        assert required in names, required
    # Shipped weights (deepqs/weights/*.pt + model cards) are package data too.
    for path in (REPO / "deepqs" / "weights").glob("*.pt") if (REPO / "deepqs" / "weights").exists() else []:
        assert f"deepqs/weights/{path.name}" in names
        card = path.with_suffix(".md")
        if card.exists():
            assert f"deepqs/weights/{card.name}" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pyworkflow.plugin]" in text and "deepqs_plugin = deepqs_plugin" in text
    assert "[console_scripts]" in text and "deepqs = deepqs.cli:main" in text


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_engine_never_imports_scipion():
    offenders = [f"{p.relative_to(REPO)}: {name}" for p in (REPO / "deepqs").rglob("*.py")
                 for name in _imports(p) if name.split(".")[0] in ("pyworkflow", "pwem", "tensorflow")]
    assert offenders == []
    code = ("import sys, deepqs.cli, deepqs.io, deepqs.simulate, deepqs.info; deepqs.cli.build_parser(); "
            "bad = [m for m in ('pyworkflow', 'pwem', 'tensorflow') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
