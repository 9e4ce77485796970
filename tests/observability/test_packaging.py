"""The wheel holds every app with its migrations, templates, static files and translations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["governance", "consent", "dsr", "audit", "oversight"]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    # built from a copy of the tree, so the shared working tree gets no build/ or egg-info
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        path = ROOT / name
        if path.is_file() and not name.startswith(("tests/", "bench/", "var/")):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("mamoru-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _apps_with(part: str) -> set[str]:
    return {path.parent.relative_to(ROOT).as_posix() for path in ROOT.glob(f"**/{part}")
            if ".venv" not in path.parts and "tests" not in path.parts and path.parent.name != "var"}


def test_every_app_is_in_the_wheel(wheel_names):
    for app in APPS:
        assert f"{app}/__init__.py" in wheel_names, app
    for apps_py in ROOT.glob("**/apps.py"):
        if ".venv" in apps_py.parts or "tests" in apps_py.parts:
            continue
        assert apps_py.relative_to(ROOT).as_posix() in wheel_names


def test_migrations_templates_static_and_translations_are_in_the_wheel(wheel_names):
    for pattern in ("**/migrations/0001_*.py", "**/templates/**/*.html", "**/static/**/*.*",
                    "**/locale/*/LC_MESSAGES/django.mo", "**/locale/*/LC_MESSAGES/django.po"):
        expected = {
            path.relative_to(ROOT).as_posix() for path in ROOT.glob(pattern)
            if path.relative_to(ROOT).parts[0] in APPS and not path.name.startswith(".")
        }
        assert expected, pattern
        missing = expected - wheel_names
        assert not missing, (pattern, sorted(missing)[:10])
