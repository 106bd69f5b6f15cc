"""environment.yml (conda) must list exactly the dependencies of pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted.update(_split(r) for r in extra)
    wanted = {CONDA_NAMES.get(k, k): v for k, v in wanted.items()}

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and not dep.startswith(("python=", "pip")):
            name, spec = _split(dep)
            listed[name] = spec.split("=cpu")[0]  # the build string is conda-only
        elif isinstance(dep, dict):  # the pip: section, for what conda-forge does not package
            listed.update(_split(r) for r in dep.get("pip", []) if not r.startswith("-e"))
    assert listed == wanted


def test_torch_pin_is_the_cpu_build() -> None:
    env = (ROOT / "environment.yml").read_text()
    assert "pytorch==2.13.0=cpu_*" in env
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
    assert "torchvision" not in (ROOT / "pyproject.toml").read_text()
