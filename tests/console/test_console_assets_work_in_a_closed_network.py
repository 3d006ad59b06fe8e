"""The console works in a closed network: every asset ships in the Python package (a wheel built from the tree
carries them, so ``pip install`` alone serves the console), nothing refers to another host (no CDN, no external
font), and the two string catalogues hold the same keys."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgefleet.cloud.console.assets import static_dir
from tests.conftest import REPO

STATIC = static_dir()
# Anything that would make the browser reach beyond the controller: absolute URLs, protocol-relative ones,
# CSS imports. (``http://www.w3.org/2000/svg`` would be a namespace, not a fetch; there is none.)
OUTSIDE = re.compile(r"https?://|(?<![\w:])//[\w.-]+\.\w|@import|url\(\s*['\"]?(?!data:)[a-z]+:", re.IGNORECASE)


def assets() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


def test_no_asset_refers_to_another_host() -> None:
    found = {
        str(path.relative_to(STATIC)): OUTSIDE.findall(path.read_text(encoding="utf-8"))
        for path in assets()
        if path.suffix in {".html", ".css", ".js"}
    }
    assert len(found) >= 7, found  # index.html, console.css, four page modules, two catalogues
    assert {name: hits for name, hits in found.items() if hits} == {}


def catalogue_keys(name: str) -> list[str]:
    text = (STATIC / "strings" / name).read_text(encoding="utf-8")
    return re.findall(r'^\s*"([\w.-]+)":', text, re.MULTILINE)


def test_both_languages_have_every_string() -> None:
    english, chinese = catalogue_keys("en.js"), catalogue_keys("zh-CN.js")
    assert len(english) > 50
    assert len(set(english)) == len(english)
    assert sorted(english) == sorted(chinese)


def test_every_string_the_pages_ask_for_is_in_the_catalogue() -> None:
    english = set(catalogue_keys("en.js"))
    asked = set()
    for path in STATIC.glob("*.js"):
        asked |= set(re.findall(r'\bt\(\s*"([\w.-]+)"', path.read_text(encoding="utf-8")))
    assert asked, 'the pages ask for strings with t("key")'
    assert asked - english == set()


@pytest.mark.slow
def test_a_wheel_of_the_tree_carries_every_asset(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("edgefleet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    wanted = {f"edgefleet/cloud/console/static/{p.relative_to(STATIC).as_posix()}" for p in assets()}
    assert wanted - names == set()
