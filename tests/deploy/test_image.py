"""The Dockerfile and its build context, checked without a Docker engine.

The build context is computed by the docker SDK's own .dockerignore logic
(the code ``images.build`` uses), so what is asserted here is what an engine
would receive.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def context() -> set[str]:
    """Paths (relative, POSIX) an engine would receive as the build context."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {Path(p).as_posix() for p in exclude_paths(str(ROOT), patterns, "Dockerfile")}


def _packages(pyproject: dict[str, Any]) -> list[str]:
    """Regular packages matching pyproject's packages.find.include, as setuptools finds them."""
    include: list[str] = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    found: list[str] = []
    pending = [d for d in sorted(ROOT.iterdir()) if (d / "__init__.py").is_file()]
    while pending:
        folder = pending.pop()
        name = folder.relative_to(ROOT).as_posix().replace("/", ".")
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
            continue
        found.append(name)
        pending += [d for d in sorted(folder.iterdir()) if (d / "__init__.py").is_file()]
    return found


def test_context_holds_what_pip_install_needs(context: set[str], pyproject: dict[str, Any]) -> None:
    assert {"Dockerfile", "pyproject.toml", "README.md"} <= context
    packages = _packages(pyproject)
    assert {"mesh", "discovery", "edge", "sidecar", "demo", "meshgate"} <= set(packages)
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        for file in folder.iterdir():
            if file.suffix in {".py", ".lua", ".yaml"}:
                rel = file.relative_to(ROOT).as_posix()
                assert rel in context, f"{rel} is part of the package but not of the build context"


def test_context_leaves_out_the_rest(context: set[str]) -> None:
    tops = {p.split("/", 1)[0] for p in context}
    for unwanted in (".git", ".venv", ".tools", "tests", "bench", "deploy", "docker-compose.yml"):
        assert unwanted not in tops
    assert not [p for p in context if "__pycache__" in p or p.endswith(".pyc")]


def _final_stage(text: str) -> str:
    return re.split(r"(?im)^FROM\s", text)[-1]


def test_dockerfile_base_user_and_entrypoint(pyproject: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b)
        for b in re.findall(r"(?im)^FROM\s+(\S+)", text)
    ]
    assert bases and all(b == "python:3.11-slim" for b in bases)

    final = _final_stage(text)
    users = re.findall(r"(?im)^USER\s+(\S+)", final)
    assert users, "the runtime stage must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}

    entrypoint = re.findall(r"(?im)^ENTRYPOINT\s+(.+)$", final)
    assert entrypoint == ['["meshgate"]']
    assert "meshgate" in pyproject["project"]["scripts"]


def test_dockerfile_installs_the_project_with_pip() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"pip install [^\n]*\s\.(\s|$)", text), "expected `pip install ... .`"
    # Classic builder compatible (the SDK's images.build uses it): no BuildKit-only syntax.
    assert "--mount=" not in text
    assert not re.search(r"(?m)^# ?syntax=", text)
