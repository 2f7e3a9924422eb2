"""Locate and load the requirement files of ``aws-durable-execution-conformance-tests``.

The requirement YAMLs are never vendored into this repository. At test time they
are looked up, in order, in:

1. ``$DURASCOPE_CONFORMANCE_DIR`` - a directory that is either the
   ``test_requirements`` folder itself, or any folder below which one exists
   (an unzipped wheel, a source checkout, ...);
2. the cache directory ``~/.cache/durascope/conformance`` (overridable with
   ``$DURASCOPE_CONFORMANCE_CACHE``);
3. otherwise the wheel is fetched into the cache with
   ``pip download --no-deps --python-version 3.14 --only-binary=:all:
   aws-durable-execution-conformance-tests==1.0.0`` and unzipped there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "aws-durable-execution-conformance-tests"
VERSION = "1.0.0"
SUITES = (
    "step",
    "wait",
    "child",
    "callback",
    "invoke",
    "wait_for_condition",
    "wait_for_callback",
    "parallel",
    "map",
    "plugin",
)


class RequirementsNotFound(RuntimeError):
    """The requirement files could not be located or downloaded."""


def _cache_dir() -> Path:
    override = os.environ.get("DURASCOPE_CONFORMANCE_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "durascope" / "conformance"


def _find_requirements_root(base: Path) -> Path | None:
    """Return the ``test_requirements`` directory at or below ``base``."""
    if not base.is_dir():
        return None
    if base.name == "test_requirements" and any(base.glob("*/*.yaml")):
        return base
    # Prefer the wheel layout, then anything else called test_requirements.
    candidates = sorted(base.rglob("test_requirements"), key=lambda p: len(p.parts))
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*/*.yaml")):
            return candidate
    return None


def _download_into(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--python-version",
            "3.14",
            "--only-binary=:all:",
            f"{PACKAGE}=={VERSION}",
            "-d",
            str(cache),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            msg = f"pip download of {PACKAGE}=={VERSION} failed:\n{proc.stdout}\n{proc.stderr}"
            raise RequirementsNotFound(msg)
        wheels = sorted(cache.glob(f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"))
        if not wheels:
            msg = f"pip download produced no wheel in {cache}"
            raise RequirementsNotFound(msg)
    target = cache / f"unzipped-{VERSION}"
    with zipfile.ZipFile(wheels[-1]) as zf:
        members = [m for m in zf.namelist() if "/test_requirements/" in m]
        zf.extractall(target, members=members)
    root = _find_requirements_root(target)
    if root is None:
        msg = f"wheel {wheels[-1]} contains no test_requirements directory"
        raise RequirementsNotFound(msg)
    return root


@lru_cache(maxsize=1)
def requirements_dir() -> Path:
    """Directory holding ``<suite>/<n-m>.yaml`` files (see module docstring)."""
    env = os.environ.get("DURASCOPE_CONFORMANCE_DIR")
    if env:
        root = _find_requirements_root(Path(env).expanduser())
        if root is None:
            msg = f"$DURASCOPE_CONFORMANCE_DIR={env} holds no test_requirements/<suite>/*.yaml"
            raise RequirementsNotFound(msg)
        return root
    cache = _cache_dir()
    root = _find_requirements_root(cache / f"unzipped-{VERSION}")
    if root is not None:
        return root
    return _download_into(cache)


def _sort_key(req_id: str) -> tuple[int, int]:
    major, minor = req_id.split("-")
    return int(major), int(minor)


@dataclass(frozen=True)
class Requirement:
    """One requirement file, parsed."""

    suite: str
    req_id: str  # "1-11"
    path: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def key(self) -> str:
        """Test id, e.g. ``step/1-11``."""
        return f"{self.suite}/{self.req_id}"

    @property
    def description(self) -> str:
        return str(self.data.get("description", ""))

    @property
    def variables(self) -> dict[str, Any]:
        return dict(self.data.get("Variables") or {})

    @property
    def input(self) -> Any:
        return self.data.get("Input")

    @property
    def expected_history(self) -> list[dict[str, Any]]:
        return list(self.data.get("ExpectedExecutionHistory") or [])

    @property
    def expected_result(self) -> dict[str, Any] | None:
        return self.data.get("ExpectedResult") or None

    @property
    def callback_actions(self) -> list[dict[str, Any]]:
        return list(self.data.get("CallbackActions") or [])

    @property
    def expected_logs(self) -> list[dict[str, Any]]:
        return list(self.data.get("ExpectedLogs") or [])

    @property
    def optional(self) -> bool:
        return bool(self.data.get("optional", False))


def load_requirements() -> list[Requirement]:
    """All requirements, ordered by suite (as in SUITES) then numerically."""
    root = requirements_dir()
    found: list[Requirement] = []
    suites = [s for s in SUITES if (root / s).is_dir()]
    suites += sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in SUITES)
    for suite in suites:
        files = sorted((root / suite).glob("*.yaml"), key=lambda p: _sort_key(p.stem))
        for path in files:
            with path.open(encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
            found.append(Requirement(suite=suite, req_id=path.stem, path=path, data=data))
    return found
