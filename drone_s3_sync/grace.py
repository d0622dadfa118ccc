"""Delete grace: an object whose file was removed from the source is kept for
`delete_grace` after a run first saw it gone, so that pages still cached in
browsers and CDNs keep finding their assets; a later run deletes it. Pure:
the state object carries the times (`removed`), the pipeline the clock.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Dict, List, Mapping, Tuple

from .model import Action, Kind, Plan, Reason


def when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def apply(plan: Plan, removed: Mapping[str, float], *, grace: float, now: float) -> Tuple[Plan, Dict[str, float]]:
    """The plan with the deletes whose grace has not run out turned into
    SKIP (Reason.GRACE, `detail` says until when), and the removal times the
    state is to record: for every key still to be deleted later. A key that
    is no longer a delete (its file came back) loses its record."""
    if grace <= 0:
        return plan, {}
    actions: List[Action] = []
    pending: Dict[str, float] = {}
    for action in plan.actions:
        if action.kind is not Kind.DELETE:
            actions.append(action)
            continue
        first_seen = removed.get(action.key, now)
        if now - first_seen >= grace:
            actions.append(replace(action, detail=f"removed from the source {when(first_seen)}, delete_grace over"))
        else:
            pending[action.key] = first_seen
            actions.append(replace(action, kind=Kind.SKIP, reason=Reason.GRACE,
                                   detail=f"deleted after {when(first_seen + grace)}"))
    return Plan(actions), pending


def kept(plan: Plan) -> List[Action]:
    return [a for a in plan.actions if a.kind is Kind.SKIP and a.reason is Reason.GRACE]
