"""The ACL scrub: an ACL changed with PutObjectAcl alone leaves the listing as
it was (same ETag, same LastModified), so the state would vouch for the old
one forever. A run that writes (it holds the lock and writes the state
anyway) re-checks the ACL of a rotating slice of the objects the state
vouches for, `acl_scrub` of them, continuing where the last such run
stopped: every object is checked within ceil(100 / N%) writing runs. Runs
with nothing to do stay at one listing and one GET."""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from .diff import acl_matches
from .errors import StoreError
from .model import Kind, Plan
from .parsers import DeleteLimit
from .state import Entry
from .store import RemoteStore

MIN_SLICE = 100  # a percentage checks at least this many objects
DEFAULT = DeleteLimit(Decimal(2), percent=True)


def limit_of(setting: Optional[DeleteLimit], acl_rules: Sequence[Tuple[str, str]]) -> DeleteLimit:
    """The `acl_scrub` setting, or by default 2% where the settings grant ACLs
    (the bucket has them enabled) and nothing otherwise: on a bucket with ACLs
    disabled, the default since 2023, no ACL can be changed by hand."""
    if setting is not None:
        return setting
    return DEFAULT if any(acl != "private" for _, acl in acl_rules) else DeleteLimit(Decimal(0))


def slice_of(keys: Sequence[str], start: int, limit: DeleteLimit) -> Tuple[List[str], int]:
    """The keys to check this run (sorted `keys`, from `start`, wrapping), and
    where the next run begins."""
    total = len(keys)
    if not total or not limit.value:
        return [], start
    count = max(limit.allowed(total), MIN_SLICE) if limit.percent else int(limit.value)
    count = min(count, total)
    start %= total
    return [keys[(start + i) % total] for i in range(count)], (start + count) % total


def changed(store: RemoteStore, keys: Sequence[str], entries: Mapping[str, Entry]) -> List[str]:
    """The keys whose ACL is not the one their entry records (or cannot be read)."""
    found = []
    for key in keys:
        try:
            acl = store.acl(key)
        except StoreError:
            found.append(key)
            continue
        if not acl_matches(entries[key].headers.acl, acl):
            found.append(key)
    return found


def scrub(store: RemoteStore, plan: Plan, listing, settings, *, notify: Callable[[str], None]) -> Tuple[List[str], int]:
    """Checks this run's slice of the objects the plan leaves to the state;
    returns the keys whose ACL changed, and where the next run begins."""
    vouched = [] if settings.verify else sorted(a.key for a in plan.of(Kind.SKIP) if a.key in listing.entries)
    keys, following = slice_of(vouched, listing.scrub, limit_of(settings.acl_scrub, settings.acl))
    wrong = changed(store, keys, listing.entries)
    if wrong:
        notify(f"acl_scrub: {len(wrong)} of {len(keys)} object(s) checked have another ACL than recorded "
               f"(first {wrong[0]}): checked again")
    return wrong, following
