"""What the Dockerfile relies on, checked without Docker (it cannot run here).

The image is `pip wheel .` in a builder stage over the files the Dockerfile
COPYs, then `pip install` of that wheel in a slim final stage that runs the
console script as a non-root user. So: the Dockerfile's own instructions are
read and checked, and the wheel is built from exactly the files the builder
stage copies (less what .dockerignore keeps out of the build context), offline,
and installed into a scratch folder where its entry point must run.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import drone_s3_sync

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

Instruction = Tuple[str, str]  # ("RUN", "pip install ...")


# ---------------------------------------------------------------- reading the Dockerfile


def dockerfile_stages() -> List[List[Instruction]]:
    """Instructions per stage (continuation lines joined, comments dropped); each stage starts with its FROM."""
    logical: List[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: List[List[Instruction]] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        assert stages, f"instruction before the first FROM: {line}"
        stages[-1].append((keyword, rest.strip()))
    return stages


def final_stage() -> List[Instruction]:
    return dockerfile_stages()[-1]


def stage_named(name: str) -> List[Instruction]:
    for stage in dockerfile_stages():
        if re.search(rf"\bAS\s+{re.escape(name)}\s*$", stage[0][1], re.IGNORECASE):
            return stage
    raise AssertionError(f"no stage named {name!r} in the Dockerfile")


def args_of(instructions: List[Instruction], keyword: str) -> List[str]:
    return [rest for kw, rest in instructions if kw == keyword]


def console_scripts() -> Dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    scripts = {}
    for line in cfg.get("options.entry_points", "console_scripts").strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


# ---------------------------------------------------------------- reading .dockerignore


def _ignore_regex(pattern: str) -> "re.Pattern[str]":
    # Docker's rules (Go filepath.Match plus "**"), enough for the patterns used here.
    pattern = pattern.strip().lstrip("/").rstrip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignore_patterns() -> List[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    # Exceptions ("!pattern") would need the full rules; none are used.
    assert not any(p.startswith("!") for p in patterns), "teach ignored() about '!' exceptions"
    return patterns


def ignored(rel_path: str) -> bool:
    """True if Docker leaves `rel_path` (or a folder above it) out of the build context."""
    parts = rel_path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    regexes = [_ignore_regex(p) for p in ignore_patterns()]
    return any(rx.match(prefix) for rx in regexes for prefix in prefixes)


def build_context_copy(dest: Path) -> List[str]:
    """Copy what the builder stage COPYs from the build context into `dest`; returns the COPY sources."""
    sources: List[str] = []
    for rest in args_of(stage_named("builder"), "COPY"):
        words = [w for w in rest.split() if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in rest.split()), rest
        sources.extend(words[:-1])
    for source in sources:
        path = ROOT / source.rstrip("/")
        assert path.exists(), f"Dockerfile copies {source}, which does not exist"
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if ignored(rel):
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dest / rel)
    return sources


# ---------------------------------------------------------------- the Dockerfile


def test_entrypoint_is_the_console_script_declared_in_setup_cfg() -> None:
    entrypoints = args_of(final_stage(), "ENTRYPOINT")
    assert len(entrypoints) == 1, entrypoints
    command = json.loads(entrypoints[0])  # the exec form: no shell in between, signals reach the tool
    assert command == ["drone-s3-sync"]
    assert console_scripts().get(command[0]) == "drone_s3_sync.cli:main"
    # Drone and Woodpecker give a plugin its settings only through the environment.
    assert args_of(final_stage(), "CMD") == []


def test_final_stage_runs_as_a_non_root_user_created_there() -> None:
    stage = final_stage()
    users = args_of(stage, "USER")
    assert users, "the final stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The USER comes after the last RUN (which needs root to install) and names
    # an account made in this stage.
    keywords = [kw for kw, _ in stage]
    assert max(i for i, kw in enumerate(keywords) if kw == "RUN") < keywords.index("USER")
    runs = " ".join(args_of(stage, "RUN"))
    made = re.search(r"\buseradd\b[^&;]*?\s(\S+)\s*(?:&&|;|$)", runs)
    assert made and made.group(1) == user, runs
    uid = re.search(r"--uid\s+(\d+)", runs)
    assert uid and int(uid.group(1)) != 0


def test_final_stage_is_slim_and_has_no_build_tools_or_caches() -> None:
    stage = final_stage()
    assert re.match(r"python:3\.\d+-slim\b", stage[0][1]), stage[0][1]
    text = " ".join(rest for _, rest in stage)
    for tool in ("gcc", "g++", "build-essential", "make ", "apt-get install", "apk add"):
        assert tool not in text, f"{tool!r} in the final stage"
    for rest in args_of(stage, "RUN"):
        for install in re.findall(r"pip install[^&;]*", rest):
            assert "--no-cache-dir" in install, install
            # Only the wheels built in the builder stage: nothing fetched at this point.
            assert "--no-index" in install, install
    # Nothing from the build context lands in the image: wheels come from the builder.
    for rest in args_of(stage, "COPY") + args_of(stage, "ADD"):
        assert "--from=" in rest, f"the final stage copies from the build context: {rest}"


def test_builder_copies_only_what_the_build_needs(tmp_path: Path) -> None:
    sources = build_context_copy(tmp_path)
    allowed = {"setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE", "drone_s3_sync/", "drone_s3_sync"}
    assert set(sources) <= allowed, f"dev files copied into the build: {set(sources) - allowed}"
    assert not list(tmp_path.rglob("__pycache__"))


@pytest.mark.parametrize("path", [
    ".git", ".git/config", ".venv/bin/python", "tests", "tests/conftest.py", "scripts/bench.py",
    "example/site/index.html", ".ci/run", "drone_s3_sync/__pycache__/cli.cpython-311.pyc",
    ".pytest_cache/v", ".hypothesis/examples", ".ruff_cache/x", "build/lib/x.py", "dist/x.whl",
    "drone_s3_sync.egg-info/PKG-INFO", ".bench/x", ".demo/x",
])
def test_dockerignore_keeps_dev_files_out_of_the_build_context(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize("path", ["setup.cfg", "setup.py", "README.md", "LICENSE", "drone_s3_sync/cli.py"])
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not ignored(path)


# ---------------------------------------------------------------- the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from the builder stage's files only."""
    context = tmp_path_factory.mktemp("context")
    build_context_copy(context)
    out = tmp_path_factory.mktemp("wheels")
    # --no-build-isolation: the venv's setuptools builds it, so no download.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "-w", str(out), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("drone_s3_sync-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_only_the_package_and_its_metadata(wheel: Path) -> None:
    version = drone_s3_sync.__version__
    assert wheel.name.startswith(f"drone_s3_sync-{version}-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(f"drone_s3_sync-{version}.dist-info/entry_points.txt").decode()
        metadata = zf.read(f"drone_s3_sync-{version}.dist-info/METADATA").decode()
        licenses = [zf.read(n).decode() for n in names if n.startswith(f"drone_s3_sync-{version}.dist-info/")
                    and n.endswith("/LICENSE")]
    # The licence travels with every copy of the package.
    assert len(licenses) == 1 and "Apache License" in licenses[0] and "Version 2.0" in licenses[0]
    tops = {name.split("/")[0] for name in names}
    assert tops == {"drone_s3_sync", f"drone_s3_sync-{version}.dist-info"}, tops
    # Every module of the package, and nothing else.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "drone_s3_sync").rglob("*.py")}
    assert {n for n in names if n.startswith("drone_s3_sync/")} == modules
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert dict(parser["console_scripts"]) == {"drone-s3-sync": "drone_s3_sync.cli:main"}
    requires = {re.split(r"[\s<>=!~;\[(]", line.split(":", 1)[1].strip())[0].lower()
                for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert requires == {"boto3", "s3transfer", "awscrt", "tqdm", "xxhash", "pyyaml"}


def test_installed_wheel_runs_its_entry_point(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The wheel's package, with the venv's dependencies (boto3, ...) behind it.
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONDONTWRITEBYTECODE="1")
    probe = subprocess.run(
        [sys.executable, "-c", "import drone_s3_sync.cli, drone_s3_sync.pipeline; print(drone_s3_sync.__file__)"],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).resolve().is_relative_to(target.resolve()), probe.stdout
    # The console script pip wrote (the image's ENTRYPOINT), run as the image would.
    script = target / "bin" / "drone-s3-sync"
    assert script.is_file()
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=env,
                             cwd=str(tmp_path), timeout=60)
    assert version.returncode == 0, version.stderr
    import botocore
    import s3transfer

    assert version.stdout.strip() == (f"drone-s3-sync {drone_s3_sync.__version__} "
                                      f"(botocore {botocore.__version__}, s3transfer {s3transfer.__version__})")


def test_default_working_directory_is_an_empty_folder_not_the_root() -> None:
    # The default source is ".": without -w, a container started in / would
    # publish the image's whole filesystem.
    workdirs = args_of(final_stage(), "WORKDIR")
    assert workdirs and workdirs[-1].strip() not in ("/", ""), workdirs
