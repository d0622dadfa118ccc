"""The order of a run's writes, in waves: what pages need goes up before the
pages, so that no page a reader loads refers to an asset not there yet.

By default three waves: every file that is not a page, then the pages
(`.html`/`.htm`, or a Content-Type of text/html), then the redirects. With
the `order` setting, one wave per pattern (the syntax of the header rules:
an extension or a glob), in the order given, then the files that match none
of them, then the pages and the redirects. `order: none` writes everything in
one wave. Each wave ends (every request answered) before the next begins;
deletes come after all of them. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from .model import Action, Kind
from .rules import RuleSet

NO_ORDER = ("none",)  # the `order` setting that writes everything in one wave
PAGE_SUFFIXES = (".html", ".htm")
WRITES = (Kind.UPLOAD, Kind.UPDATE, Kind.REDIRECT)


@dataclass(frozen=True)
class Wave:
    name: str
    actions: Tuple[Action, ...]


def is_page(action: Action) -> bool:
    if action.key.lower().endswith(PAGE_SUFFIXES):
        return True
    return action.headers is not None and action.headers.content_type.lower().startswith("text/html")


def waves(actions: Sequence[Action], order: Sequence[str], target: str) -> List[Wave]:
    """The writes among `actions`, in waves; empty waves are left out."""
    writes = [a for a in actions if a.kind in WRITES]
    if tuple(order) == NO_ORDER:
        return [Wave("all", tuple(writes))] if writes else []
    patterns = list(order)
    rules = RuleSet([(pattern, index) for index, pattern in enumerate(patterns)])
    names = patterns + ["files", "pages", "redirects"]
    slots: List[List[Action]] = [[] for _ in names]
    for action in writes:
        if action.kind is Kind.REDIRECT:
            slot = len(names) - 1
        else:
            rel = action.local.rel if action.local is not None else action.key[len(target):]
            slot = rules.first(rel)
            if slot is None:
                slot = len(patterns) + (1 if is_page(action) else 0)
        slots[slot].append(action)
    return [Wave(name, tuple(group)) for name, group in zip(names, slots) if group]
