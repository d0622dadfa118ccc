"""The shape of the package: no import circle between its modules (imports
inside functions included), the SDK imported only at the S3 boundary, and no
module grown past what a newcomer can read."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

PACKAGE = Path(__file__).resolve().parents[2] / "drone_s3_sync"
SDK = ("boto3", "botocore", "s3transfer", "awscrt")
# The S3 boundary; crtupload and crtretry (PutObject on awscrt, with botocore's rules) are apart from remote for its size.
SDK_MODULES = {"remote", "credentials", "crtupload", "crtretry"}
# Modules still over the size the rest keep to; each is to be split, not to grow.
LONG = {"remote": 440}
MAX_LINES = 410  # "about 400"


def imports_of(path: Path) -> Set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    names.add(node.module.split(".")[0])
                else:
                    names.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def graph() -> Dict[str, Set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {name: {i for i in imports_of(path) if i in modules and i != name} for name, path in modules.items()}


def test_no_module_imports_itself_back_through_others():
    edges = graph()
    state: Dict[str, int] = {}
    cycles = []

    def visit(name: str, path: list) -> None:
        state[name] = 1
        for nxt in sorted(edges[name]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [name, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_sdk_is_imported_only_at_the_s3_boundary():
    users = {p.stem for p in PACKAGE.glob("*.py")
             if any(i.split(".")[0] in SDK for i in imports_of(p))}
    assert users == SDK_MODULES


def test_modules_stay_short():
    sizes = {p.stem: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    too_long = {name: n for name, n in sizes.items() if n > LONG.get(name, MAX_LINES)}
    assert too_long == {}
