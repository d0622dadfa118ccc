"""The state stages: read the listing with the state object, retire the entries
a run's writes would turn into lies before it writes, and record the new state
after it. What an entry is and how the object is encoded is in state.py.

An entry vouches for an object only while the listing proves it is the object
the entry was written for: the same ETag and size, and not written after the
state object (both times from the server's clock, which S3 keeps to the
second). A run records the state after its last write, so its own objects are
never newer than the state; any later write by anyone (a copy, a re-upload of
the same bytes with other headers, an edit in the console) makes the object
newer than the state, and that object is checked with S3 again. What the
second's resolution cannot show is a write by another tool within the very
second the state was written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import AbstractSet, Callable, Dict, Mapping, Optional, Tuple

from .errors import RemoteError, StoreError
from .model import Kind, Plan, RemoteObject, Summary
from .rules import HeaderRules
from .keys import lock_key
from .state import STATE_NAME, Document, Entry, encode_document, entries_at_risk, next_state, read, state_key
from .store import PRECONDITION_FAILED, RemoteStore

log = logging.getLogger("drone_s3_sync")


@dataclass(frozen=True)
class Listing:
    """The objects under the target (the state object left out), whether a
    state object exists, and the entries that vouch for their objects.
    `unread`: it exists but could not be read, so any of its entries may be at
    risk. `refresh`: entries were left out because their objects changed after
    the state was written, or the state belongs elsewhere: it must be written
    again even if this run's entries come out the same."""

    remotes: Dict[str, RemoteObject]
    state: Optional[RemoteObject] = None  # the state object as listed
    entries: Mapping[str, Entry] = field(default_factory=dict)
    unread: bool = False
    refresh: bool = False
    conditional_writes: bool = False  # the state says the server honours conditional writes
    removed: Mapping[str, float] = field(default_factory=dict)  # delete_grace: when each was first seen removed
    verified: Optional[Tuple[str, Tuple[str, ...]]] = None  # (endpoint, kinds) the server was seen to keep
    scrub: int = 0  # where the next ACL scrub begins

    @property
    def exists(self) -> bool:
        return self.state is not None


def load(store: RemoteStore, bucket: str, target: str, *, use_state: bool,
         warn: Callable[[str], None] = log.warning) -> Listing:
    """The listing under `target` and the state object's trustworthy entries."""
    remotes = store.list(target)
    key = state_key(target)
    stored = remotes.pop(key, None)
    remotes.pop(lock_key(target), None)
    if stored is None or not use_state:
        return Listing(remotes, stored)
    try:
        fetched = store.fetch(key)
    except StoreError as exc:
        log.warning("cannot read the state object %s (%s); checking every object instead", key, exc)
        return Listing(remotes, stored, {}, unread=True)
    # What was read decides the condition of the next write of the state.
    stored = replace(stored, etag=fetched.etag)
    entries, owner, conditional, removed, verified, scrub = read(fetched.body)
    if owner is not None and owner != (bucket, target):
        warn(f"the state object {key} was written for s3://{owner[0]}/{owner[1]}, not for s3://{bucket}/{target} "
             "(copied from another deployment?); it is ignored and every object is checked with S3")
        return Listing(remotes, stored, {}, refresh=True)
    # Only an entry that still describes its object can vouch for something
    # another writer changed; the others vouch for nothing already.
    trusted = {k: e for k, e in entries.items()
               if not (e.describes(remotes.get(k)) and written_after(remotes.get(k), stored))}
    if len(trusted) < len(entries):
        log.debug("state: %d object(s) written after the state object are checked with S3",
                  len(entries) - len(trusted))
    return Listing(remotes, stored, trusted, refresh=len(trusted) < len(entries), conditional_writes=conditional,
                   removed=removed, verified=verified, scrub=scrub)


def current(store: RemoteStore, listing: Listing, *, target: str, use_state: bool) -> bool:
    """Whether the bucket is still as `listing` saw it, as far as another run
    of this tool can have changed it: every run that writes writes the state
    object last, so its ETag tells (one HeadObject). Without the state, the
    target is listed again."""
    if use_state:
        return store.head_etag(state_key(target)) == (listing.state.etag if listing.state else None)
    fresh = store.list(target)
    fresh.pop(state_key(target), None)
    fresh.pop(lock_key(target), None)
    return fresh == listing.remotes


def written_after(remote: Optional[RemoteObject], state: RemoteObject) -> bool:
    """True when the listing shows `remote` written in a later second than the
    state object. A server that gives no times cannot tell: False."""
    return remote is not None and bool(remote.modified and state.modified) and remote.modified > state.modified


def _headers(rules: HeaderRules):
    """The state object is encrypted as the encryption rules say for its name."""
    return rules.headers_for(STATE_NAME)


def retire(plan: Plan, listing: Listing, *, store: RemoteStore, bucket: str, target: str, use_state: bool,
           rules: HeaderRules) -> "Retired":
    """Before writing, make sure the state object can never vouch for old headers.

    A header copy or a rewritten redirect keeps the object's ETag, and some
    uploads recreate an ETag an entry names (see `entries_at_risk`), so an
    entry describing the old headers would still look valid if this run
    stopped before recording the new state, or could not record it. Such
    entries are dropped first; a state object that could not be read is
    emptied before any write, since any of its entries may be at risk;
    without `state`, the whole object goes.
    Returns the entries the state object now holds, and its ETag.
    """
    key = state_key(target)
    if not use_state:
        if listing.exists and any(a.writes for a in plan.actions):
            failed = store.delete([key])
            if failed:
                raise RemoteError(f"cannot remove the state object {key}, which this run would make "
                                  f"outdated ({failed[0][1]}); nothing was changed")
        return Retired({}, None)
    stored = listing.entries
    etag = listing.state.etag if listing.state else None
    if listing.unread:
        at_risk = {a.key for a in plan.of(Kind.UPLOAD, Kind.UPDATE, Kind.REDIRECT)}
    else:
        at_risk = entries_at_risk(plan, stored, listing.remotes)
    if not at_risk:
        return Retired(stored, etag)
    kept = {k: e for k, e in stored.items() if k not in at_risk}
    try:
        etag = _put(store, key, encode_document(Document(kept, (bucket, target), listing.conditional_writes,
                                                         dict(listing.removed), listing.verified, listing.scrub)),
                    rules, etag, listing.exists)
    except StoreError as exc:
        if exc.code == PRECONDITION_FAILED:
            raise RemoteError(f"the state object {key} was written by another run since this one read it; "
                              "nothing was changed: run again (with the deploy lock on, runs wait for each other)"
                              ) from None
        raise RemoteError(f"cannot update the state object {key} before writing objects it describes "
                          f"({exc}); nothing was changed") from None
    return Retired(kept, etag)


@dataclass(frozen=True)
class Retired:
    """The entries the state object holds before the writes, and its ETag
    (None: there is none)."""

    entries: Mapping[str, Entry]
    etag: Optional[str]


def _put(store: RemoteStore, key: str, body: bytes, rules: HeaderRules, etag: Optional[str], exists: bool) -> str:
    """Writes the state only over the one this run read (or where there was none)."""
    return store.put_bytes(key, body, "application/gzip", _headers(rules), if_match=etag if exists else None,
                           if_none_match=not exists)


def save(summary: Summary, listing: Listing, digests, old: Retired, *, store: RemoteStore,
         bucket: str, target: str, rules: HeaderRules, warn: Callable[[str], None],
         conditional_writes: bool = False, distrust: AbstractSet[str] = frozenset(),
         verified: Optional[Tuple[str, Tuple[str, ...]]] = None, scrub: Optional[int] = None) -> None:
    """Record what every object now is; written when that changed, when the
    state must be refreshed, or when the run wrote any object (so that the
    state is never older than an object it vouches for). Entries of
    keys this run did not plan (outside its include/exclude, say) are kept
    while the listing still vouches for them. A failed write is a warning:
    the sync itself succeeded, and the next run checks the objects with S3."""
    entries = next_state(summary, listing.remotes, digests)
    entries.update(kept_entries(listing, {a.key for a in summary.plan.actions}))
    for key in distrust:  # written with headers the server did not keep
        entries.pop(key, None)
    wrote = {o.action.key for o in summary.outcomes if o.ok and o.action.kind is not Kind.DELETE}
    new = Document(entries, (bucket, target), conditional_writes, summary.removed, verified,
                   listing.scrub if scrub is None else scrub)
    before = Document(dict(old.entries), (bucket, target), listing.conditional_writes, dict(listing.removed),
                      listing.verified, listing.scrub)
    if new == before and not listing.refresh and not wrote:
        return
    key = state_key(target)
    exists = listing.exists or old.etag is not None
    try:
        _put(store, key, encode_document(new), rules, old.etag, exists)
        return
    except StoreError as exc:
        if exc.code != PRECONDITION_FAILED:
            warn(f"cannot write the state object {key}: {exc}")
            return
    # Another run wrote the state since this one read it (no deploy lock, or a
    # server that ignores it): neither run's entries can be trusted for the
    # keys either of them wrote, so those are left out and checked next time.
    try:
        theirs = store.fetch(key)
    except StoreError as exc:
        warn(f"cannot write the state object {key}: another run wrote it meanwhile, and it cannot be read ({exc})")
        return
    their_entries = read(theirs.body).entries
    before = dict(old.entries)
    changed = {k for k in set(their_entries) | set(before) if their_entries.get(k) != before.get(k)}
    merged = new._replace(entries={k: e for k, e in entries.items() if k not in wrote and k not in changed})
    warn(f"another run wrote to this target at the same time: {len(wrote | changed)} object(s) written by either "
         "run are checked with S3 by the next run")
    try:
        _put(store, key, encode_document(merged), rules, theirs.etag, True)
    except StoreError as exc:
        warn(f"cannot write the state object {key}: {exc}")


def kept_entries(listing: Listing, planned: AbstractSet[str]) -> Dict[str, Entry]:
    """Entries of keys the run did not plan that the listing still vouches for."""
    return {k: e for k, e in listing.entries.items() if k not in planned and e.describes(listing.remotes.get(k))}
