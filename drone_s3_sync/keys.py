"""The names of the tool's own objects next to the files. Pure; imports
nothing of the project."""

from __future__ import annotations

STATE_NAME = ".drone-s3-sync-state.json.gz"


def state_key(target: str) -> str:
    """The state object of the deployment at `target` (a prefix ending in / or "")."""
    return target + STATE_NAME
