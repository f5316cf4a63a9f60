"""Packaging: environment.yml mirrors pyproject.toml, and the `labkit` console script exists."""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points

import yaml
from conftest import LABKIT_SCRIPT, ROOT


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_requirements_as_pyproject() -> None:
    project = pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    listed = [r for r in pip_sections[0] if not r.startswith("-e")]
    assert sorted(listed) == sorted(wanted)
    assert "-e ." in pip_sections[0]
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"] and project["requires-python"] == ">=3.11"


def test_console_script_is_declared_and_installed() -> None:
    assert pyproject()["project"]["scripts"]["labkit"] == "labkit.cli:main"
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "labkit"]
    assert script.value == "labkit.cli:main" and callable(script.load())
    assert LABKIT_SCRIPT.exists()


def test_only_labkit_is_packaged() -> None:
    assert pyproject()["tool"]["setuptools"]["packages"]["find"]["include"] == ["labkit*"]
