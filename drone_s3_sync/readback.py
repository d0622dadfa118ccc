"""Servers that ignore what they are sent: some S3-compatible servers take a
PUT and silently drop its ACL or its website redirect (SeaweedFS), or other
headers. After the first write of each kind in a run, that one object is read
back (HeadObject, and GetObjectAcl for an ACL) and compared with what was
sent: a handful of requests for a run that writes, none for a run with
nothing to do."""

from __future__ import annotations

import re
import threading
from typing import Callable, Dict, FrozenSet, List, Sequence, Set, Tuple

from .diff import header_differences
from .errors import StoreError
from .model import Action, Kind, ObjectHeaders, Outcome
from .s3vocab import KEPT_FIELDS
from .store import RemoteStore

# The setting that asks for each kind, for the message.
SETTING = {"redirects": "redirects", "content_encoding": "content_encoding (or compress)"}


def kinds_of(headers: ObjectHeaders) -> Set[str]:
    """The kinds a write with these headers asks the server to keep."""
    found = set()
    for name, field in KEPT_FIELDS.items():
        value = getattr(headers, field)
        if name == "acl":
            if value != "private":  # private is sent as no header at all
                found.add(name)
        elif value:
            found.add(name)
    return found


class Sampler:
    """Remembers, from any thread, the first written object of each kind not
    yet `known` to be kept by this server (the state records what was checked)."""

    def __init__(self, known: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self.known = frozenset(known)
        self._by_kinds: Dict[FrozenSet[str], Action] = {}  # one object per set of kinds: a few dozen at most

    def wrote(self, action: Action) -> None:
        if action.headers is None or action.kind is Kind.DELETE:
            return
        kinds = frozenset(kinds_of(action.headers) - self.known)
        if kinds:
            with self._lock:
                self._by_kinds.setdefault(kinds, action)

    @property
    def samples(self) -> Dict[str, Action]:
        """kind -> the object to read back for it: as few objects as cover every
        kind written (greedy: the object with the most kinds not yet covered)."""
        with self._lock:
            groups = dict(self._by_kinds)
        chosen: Dict[str, Action] = {}
        while True:
            best = max(groups, key=lambda kinds: (len(kinds - set(chosen)), sorted(kinds)), default=None)
            if best is None or not best - set(chosen):
                return chosen
            for kind in best - set(chosen):
                chosen[kind] = groups[best]


def check(samples: Dict[str, Action], store: RemoteStore) -> List[Tuple[str, str, str]]:
    """Reads each sampled object back once; (kind, key, what the server has)
    for each kind it did not keep, compared as the plan compares headers."""
    by_key: Dict[str, List[str]] = {}
    actions: Dict[str, Action] = {}
    for kind, action in samples.items():
        by_key.setdefault(action.key, []).append(kind)
        actions[action.key] = action
    lost = []
    for key, kinds in sorted(by_key.items()):
        try:
            stored = store.details(key, with_acl="acl" in kinds)
        except StoreError as exc:
            lost.extend((kind, key, f"cannot read it back: {exc}") for kind in sorted(kinds))
            continue
        sent = actions[key].headers
        differ = set(header_differences(sent, stored.headers))
        for kind in sorted(kinds):
            field = KEPT_FIELDS[kind]
            if field in differ:
                lost.append((kind, key, f"sent {getattr(sent, field)!r}, it has {getattr(stored.headers, field)!r}"))
    return lost


def describe(lost: Sequence[Tuple[str, str, str]], endpoint: str, ignored: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(errors, warnings): one line per kind the server did not keep."""
    errors, warnings = [], []
    where = endpoint or "S3"
    for kind, key, how in lost:
        text = (f"the server {where} did not keep {SETTING.get(kind, kind)} on {key} ({how}): it ignores what the setting "
                "asks for")
        if kind in ignored:
            warnings.append(text + f"; accepted by ignore_unsupported: {kind}")
        else:
            errors.append(text + f". Use a server that supports it, or set ignore_unsupported: [{kind}] to accept "
                                 "objects without it")
    return errors, warnings


def unkept_keys(written: Sequence[Action], kinds: Set[str]) -> Set[str]:
    """Keys written with any of `kinds`: the state must not vouch for them."""
    return {a.key for a in written if a.headers is not None and kinds_of(a.headers) & kinds}



def verify(sampler: Sampler, store: RemoteStore, written: Sequence[Action], *, endpoint: str,
           ignored: Sequence[str], warn: Callable[[str], None]):
    """Reads the samples back and says what the server did not keep. Returns
    the errors (kinds not in `ignored`), the keys the state must not vouch for,
    and (endpoint, kinds) now known to be kept, for the state to record."""
    lost = check(sampler.samples, store)
    errors, warnings = describe(lost, endpoint, ignored)
    for text in warnings + errors:
        warn(text)
    failed = {kind for kind, _, _ in lost if kind not in ignored}
    kept = set(sampler.known) | (set(sampler.samples) - {kind for kind, _, _ in lost})
    return errors, unkept_keys(written, failed), ((endpoint, tuple(sorted(kept))) if kept else None)


ACL_REFUSALS = re.compile(r"^(NotImplemented|AccessControlListNotSupported|501)\b")


def acl_refusal(failures: Sequence[Outcome], label: str, where: str) -> List[str]:
    """A server or bucket that refuses ACLs (R2 answers 501 NotImplemented; a
    bucket with ACLs disabled, AccessControlListNotSupported) fails each write
    that sends one: one error that says which setting does it, and what to do."""
    refused = [o for o in failures if o.action.headers is not None and o.action.headers.acl != "private"
               and ACL_REFUSALS.search(o.error)]
    if not refused:
        return []
    return [f"{label}: {where} refused the ACL of {len(refused)} object(s) (first {refused[0].action.key}: "
            f"{refused[0].error}); it does not accept ACLs: remove the acl setting (objects are then private, or "
            "public through a bucket policy)"]
