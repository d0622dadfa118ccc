"""Safety guards: refuse a plan that looks like a broken build. Pure.

A build that produced nothing, or a `source` pointing at the wrong folder,
looks to a sync with `delete` like a site whose pages were all removed. The
guards look at the finished plan, before the run writes anything, and return
why it must not go ahead; the pipeline then raises GuardError (exit 3).
"""

from __future__ import annotations

from typing import Optional, Sequence

from .config import Settings
from .model import Kind, Plan

SELECTION_NOTE = ", or include/exclude select none of its files"


def refusal(plan: Plan, settings: Settings, *, local_files: int, remote_objects: int,
            nested: Sequence[str] = ()) -> Optional[str]:
    """Why this plan must not run, or None.

    `local_files`: files the source yielded. `remote_objects`: objects listed
    under the target, the state object not counted. `nested`: the targets of
    other deployments under this one (each has a state object of its own).
    """
    if not settings.delete:
        return None
    deletes = len(plan.of(Kind.DELETE))
    where = f"s3://{settings.bucket}/{settings.target}"
    if nested and not settings.allow_nested_delete:
        theirs = [a.key for a in plan.of(Kind.DELETE) if a.key.startswith(tuple(nested))]
        if theirs:
            inner = sorted({p for p in nested if any(k.startswith(p) for k in theirs)})
            shown = ", ".join(f"s3://{settings.bucket}/{p}" for p in inner[:3]) + (", ..." if len(inner) > 3 else "")
            return (f"this run would delete {_objects(len(theirs))} of {_deployments(len(inner))} nested under "
                    f"{where} ({shown}: each has a state object of its own, so another pipeline publishes it). "
                    f"Nothing was written. Leave them out with exclude (for example '{inner[0][len(settings.target):]}*'), "
                    "or, if this run is to replace them, set allow_nested_delete: true "
                    "(PLUGIN_ALLOW_NESTED_DELETE, --allow-nested-delete).")
    # With delete_grace, what an empty source would delete is only kept for now:
    # the run that would delete it is the one refused.
    if local_files == 0 and not settings.allow_empty_source and (deletes or not settings.delete_grace):
        selection = SELECTION_NOTE if settings.include or settings.exclude else ""
        return (f"the source {settings.source!r} has no files (an empty folder, or a glob that matches nothing"
                f"{selection}), "
                f"and with delete on, deleting would empty {where} ({_objects(deletes)} to delete). "
                "Nothing was written. If an empty source is intended, set allow_empty_source: true "
                "(PLUGIN_ALLOW_EMPTY_SOURCE=true, --allow-empty-source).")
    limit = settings.max_delete
    if limit is None or deletes <= limit.allowed(remote_objects):
        return None
    total = max(remote_objects, deletes)
    allows = f"max_delete is {limit}"
    if limit.percent:
        allows += f" (at most {_objects(limit.allowed(total))} of {total})"
    needed = -(-deletes * 100 // total)  # the smallest whole percentage that allows it
    return (f"this run would delete {_objects(deletes)} of the {total} under {where} "
            f"({_share(deletes, total)}); {allows}. Nothing was written. If these deletes are intended, "
            f"raise max_delete (PLUGIN_MAX_DELETE, --max-delete) to {deletes} or {needed}%, or remove it.")


def _objects(count: int) -> str:
    return f"{count} object" + ("" if count == 1 else "s")


def _deployments(count: int) -> str:
    return "another deployment" if count == 1 else f"{count} other deployments"


def _share(part: int, whole: int) -> str:
    value = part * 100 / whole
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"
