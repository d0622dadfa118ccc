"""The names of the tool's own objects next to the files. Pure; imports
nothing of the project."""

from __future__ import annotations

STATE_NAME = ".drone-s3-sync-state.json.gz"
LOCK_NAME = ".drone-s3-sync-lock"
OWN_NAMES = (STATE_NAME, LOCK_NAME)  # objects of the tool's own, never synced or deleted as files


def state_key(target: str) -> str:
    """The state object of the deployment at `target` (a prefix ending in / or "")."""
    return target + STATE_NAME


def lock_key(target: str) -> str:
    """The deploy lock of the deployment at `target`."""
    return target + LOCK_NAME
