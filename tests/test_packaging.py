"""Packaging: pyproject.toml and environment.yml agree, the design card's layout exists, the quick start installs viz.

pyproject.toml is the one source of the dependency list; environment.yml must
name the same packages with the same version bounds: the core dependencies
plus the extras its header comment says it mirrors (``pip install -e ".[...]"``).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT_TOML = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PYPROJECT = PYPROJECT_TOML["project"]
ENVIRONMENT_TEXT = (REPO / "environment.yml").read_text(encoding="utf-8")
ENVIRONMENT = yaml.safe_load(ENVIRONMENT_TEXT)
# The top level fixed by the design card (shared/DESIGN.md, "Layout").
LAYOUT_FOLDERS = ("abm", "kernels", "viz", "configs", "tests", "benchmarks", "docs")
LAYOUT_FILES = ("environment.yml", "pyproject.toml", "README.md", ".ci/run")
PYTHON_PACKAGES = ("abm", "kernels", "viz")


def _bounds(requirements: list[str]) -> dict[str, SpecifierSet]:
    """Package name (canonical) -> version specifier set, from PEP 508 / conda match strings."""
    parsed = [Requirement(text) for text in requirements]
    return {canonicalize_name(requirement.name): requirement.specifier for requirement in parsed}


def _mirrored_extras() -> list[str]:
    """The extras named in environment.yml's header comment, e.g. ``["viz", "dev"]``."""
    header = "".join(line for line in ENVIRONMENT_TEXT.splitlines(keepends=True) if line.startswith("#"))
    match = re.search(r'pip install -e "\.\[([\w,]+)\]"', header)
    assert match, 'environment.yml: the header comment must say which `pip install -e ".[extras]"` it mirrors'
    return match.group(1).split(",")


def _conda_entries() -> tuple[list[str], list[str]]:
    """(conda match strings, pip lines) of environment.yml."""
    conda = [entry for entry in ENVIRONMENT["dependencies"] if isinstance(entry, str)]
    pip = [line for entry in ENVIRONMENT["dependencies"] if isinstance(entry, dict) for line in entry.get("pip", [])]
    return conda, pip


def test_environment_lists_the_dependencies_of_pyproject():
    """Same packages, same bounds: core dependencies plus the mirrored extras."""
    extras = _mirrored_extras()
    optional = PYPROJECT["optional-dependencies"]
    assert set(extras) <= set(optional), f"environment.yml mirrors unknown extras {set(extras) - set(optional)}"
    expected = _bounds(PYPROJECT["dependencies"] + [text for extra in extras for text in optional[extra]])
    conda, _ = _conda_entries()
    listed = _bounds([entry for entry in conda if Requirement(entry).name not in ("python", "pip")])
    assert listed == expected


def test_environment_python_matches_requires_python():
    """The conda python bound is pyproject's requires-python."""
    conda, _ = _conda_entries()
    python = [Requirement(entry) for entry in conda if Requirement(entry).name == "python"]
    assert len(python) == 1
    assert python[0].specifier == SpecifierSet(PYPROJECT["requires-python"])


def test_environment_installs_the_project_itself():
    """The pip section installs this project in editable mode, so ``tme`` exists in the environment."""
    conda, pip = _conda_entries()
    assert "pip" in conda
    assert pip == ["-e ."]


def test_gpu_note_matches_the_gpu_extra():
    """The header's CuPy line has the version bound of the ``gpu`` extra (conda and pip names differ)."""
    header = "".join(line for line in ENVIRONMENT_TEXT.splitlines(keepends=True) if line.startswith("#"))
    match = re.search(r"`(cupy[^`]*)`", header)
    assert match, "environment.yml: the header comment must say which cupy to add for a GPU"
    (gpu,) = (Requirement(text) for text in PYPROJECT["optional-dependencies"]["gpu"])
    assert gpu.name.startswith("cupy")
    assert Requirement(match.group(1)).specifier == gpu.specifier


def test_tme_console_script_is_declared():
    """``tme`` runs :func:`abm.cli.main`."""
    assert PYPROJECT["scripts"] == {"tme": "abm.cli:main"}
    from abm import cli

    assert callable(cli.main)


def test_design_layout_exists():
    """Every top-level folder and file of the design card's layout is in the repository."""
    missing = [name for name in LAYOUT_FOLDERS if not (REPO / name).is_dir()]
    missing += [name for name in LAYOUT_FILES if not (REPO / name).is_file()]
    assert missing == []


def test_python_packages_are_packaged():
    """abm, kernels and viz are packages, and setuptools is told to include each."""
    include = PYPROJECT_TOML["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in PYTHON_PACKAGES:
        assert (REPO / package / "__init__.py").is_file(), f"{package}/ has no __init__.py"
        assert f"{package}*" in include, f"pyproject.toml does not package {package}"


def test_quick_start_installs_what_its_next_command_needs():
    """README's quick start is two commands: set up and run the default config with the viz extra (so the `tme plot`
    it names next works), and set up and run the tests."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```\n(.*?)\n```$", section, flags=re.MULTILINE | re.DOTALL)
    assert len(commands) == 2, commands
    run, tests = commands
    assert re.search(r'pip install -q -e "\.\[viz\]"', run) and "tme run configs/default.yaml --out runs/demo" in run
    assert "viz" in PYPROJECT["optional-dependencies"]
    assert "tme plot runs/demo" in section
    assert re.search(r'pip install -q -e "\.\[dev\]"', tests) and tests.endswith("-m pytest -q")
