"""Vendored front-end packages: the committed files are exactly the ones the manifest pins."""

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "static" / "vendor"
MANIFEST = json.loads((VENDOR / "MANIFEST.json").read_text())
PACKAGES = MANIFEST["packages"]


def sri_sha384(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


@pytest.mark.parametrize("entry", PACKAGES, ids=lambda entry: entry["package"])
def test_the_committed_file_matches_the_manifest_hash(entry):
    assert sri_sha384(VENDOR / entry["file"]) == entry["sha384"]


@pytest.mark.parametrize("entry", PACKAGES, ids=lambda entry: entry["package"])
def test_each_package_keeps_its_license(entry):
    license_text = (VENDOR / entry["license_file"]).read_text()

    assert entry["license"] in {"0BSD", "MIT"}
    assert len(license_text) > 100
    assert entry["file"].startswith(f"{entry['package']}-{entry['version']}/")


def test_the_versions_are_the_pinned_majors():
    versions = {entry["package"]: entry["version"] for entry in PACKAGES}

    # npm's `latest` htmx.org is 4.x, a rewrite with other defaults; the dashboard is built on 2.x.
    assert versions["htmx.org"].startswith("2.")
    assert versions["chart.js"].startswith("4.")


def test_the_refresh_script_pins_the_same_versions():
    script = (VENDOR / "vendor.sh").read_text()

    for entry in PACKAGES:
        assert re.search(rf'"{re.escape(entry["package"])} {re.escape(entry["version"])} ', script)


def test_the_base_template_loads_the_manifest_htmx():
    htmx = next(entry for entry in PACKAGES if entry["package"] == "htmx.org")

    assert f"vendor/{htmx['file']}" in (ROOT / "templates" / "base.html").read_text()
