"""The state stages: read the listing with the state object, retire the entries
a run's writes would turn into lies before it writes, and record the new state
after it. What an entry is and how the object is encoded is in state.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping

from .errors import RemoteError, StoreError
from .model import Kind, Plan, RemoteObject, Summary
from .rules import HeaderRules
from .state import STATE_NAME, Entry, decode, encode, entries_at_risk, next_state, state_key
from .store import RemoteStore

log = logging.getLogger("drone_s3_sync")


@dataclass(frozen=True)
class Listing:
    """The objects under the target (the state object left out), whether a
    state object exists, and its entries. `unread`: it exists but could not be
    read, so any of its entries may be at risk."""

    remotes: Dict[str, RemoteObject]
    exists: bool = False
    entries: Mapping[str, Entry] = field(default_factory=dict)
    unread: bool = False


def load(store: RemoteStore, target: str, *, use_state: bool) -> Listing:
    """The listing under `target` and the state object's entries."""
    remotes = store.list(target)
    key = state_key(target)
    exists = remotes.pop(key, None) is not None
    if not exists or not use_state:
        return Listing(remotes, exists)
    try:
        return Listing(remotes, True, decode(store.get_bytes(key)))
    except StoreError as exc:
        log.warning("cannot read the state object %s (%s); checking every object instead", key, exc)
        return Listing(remotes, True, {}, unread=True)


def _headers(rules: HeaderRules):
    """The state object is encrypted as the encryption rules say for its name."""
    return rules.headers_for(STATE_NAME)


def retire(plan: Plan, listing: Listing, *, store: RemoteStore, target: str, use_state: bool,
           rules: HeaderRules) -> Mapping[str, Entry]:
    """Before writing, make sure the state object can never vouch for old headers.

    A header copy or a rewritten redirect keeps the object's ETag, and some
    uploads recreate an ETag an entry names (see `entries_at_risk`), so an
    entry describing the old headers would still look valid if this run
    stopped before recording the new state, or could not record it. Such
    entries are dropped first; a state object that could not be read is
    emptied before any write, since any of its entries may be at risk;
    without `state`, the whole object goes.
    Returns the entries the state object now holds.
    """
    key = state_key(target)
    if not use_state:
        if listing.exists and any(a.writes for a in plan.actions):
            failed = store.delete([key])
            if failed:
                raise RemoteError(f"cannot remove the state object {key}, which this run would make "
                                  f"outdated ({failed[0][1]}); nothing was changed")
        return {}
    stored = listing.entries
    if listing.unread:
        at_risk = {a.key for a in plan.of(Kind.UPLOAD, Kind.UPDATE, Kind.REDIRECT)}
    else:
        at_risk = entries_at_risk(plan, stored, listing.remotes)
    if not at_risk:
        return stored
    kept = {k: e for k, e in stored.items() if k not in at_risk}
    try:
        store.put_bytes(key, encode(kept), "application/gzip", _headers(rules))
    except StoreError as exc:
        raise RemoteError(f"cannot update the state object {key} before writing objects it describes "
                          f"({exc}); nothing was changed") from None
    return kept


def save(summary: Summary, listing: Listing, digests, old: Mapping[str, Entry], *, store: RemoteStore,
         target: str, rules: HeaderRules, warn: Callable[[str], None]) -> None:
    """Record what every object now is; written only when that changed. A
    failed write is a warning: the sync itself succeeded, and the next run
    checks the objects with S3 instead."""
    entries = next_state(summary, listing.remotes, digests)
    if entries == dict(old):
        return
    key = state_key(target)
    try:
        store.put_bytes(key, encode(entries), "application/gzip", _headers(rules))
    except StoreError as exc:
        warn(f"cannot write the state object {key}: {exc}")
