"""An installed (non-editable) gateway carries its browser client: the page is package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_pages_and_every_file_they_load(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ behind in whatever tree it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(
        PROJECT_ROOT / "gateway", source / "gateway", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (PROJECT_ROOT / "gateway" / "static").iterdir()}
    assert {"index.html", "moderation.html", "app.js", "app.css"} <= shipped
    assert {f"gateway/static/{name}" for name in shipped} <= names
    assert not any(name.startswith("tests/") for name in names)
