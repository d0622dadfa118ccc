"""What the README's "Install" section relies on: one version everywhere, and a
pyproject.toml that only says how to build (setup.cfg holds the metadata)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import drone_s3_sync

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_one_version_in_the_package_the_readme_and_the_action_tag() -> None:
    version = drone_s3_sync.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{version} is not a release version"
    major = version.split(".")[0]
    assert f"Version {version}." in README
    assert f'"version": "{version}"' in README  # the JSON report example
    assert set(re.findall(r"drone-s3-sync@v(\d[\d.]*)", README)) <= {major, version}
    assert set(re.findall(r"drone-s3-sync:(\d+)\b", README)) == {major}  # image tags


def test_pyproject_only_names_the_build_backend() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    tables = re.findall(r"^\[([^\]]+)\]", text, re.MULTILINE)
    assert tables == ["build-system"]
    assert 'build-backend = "setuptools.build_meta"' in text
    assert re.search(r'requires = \["setuptools>=(\d+)"\]', text)
    assert int(re.search(r"setuptools>=(\d+)", text).group(1)) >= 64  # editable installs (PEP 660)


def test_setup_cfg_stays_the_metadata_source() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert cfg["metadata"]["version"] == "attr: drone_s3_sync.__version__"
    assert "drone-s3-sync = drone_s3_sync.cli:main" in cfg["options.entry_points"]["console_scripts"]


def test_the_dockerfile_builds_with_the_pyproject() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^COPY pyproject.toml setup.cfg setup.py README.md LICENSE \./$", dockerfile, re.MULTILINE)
