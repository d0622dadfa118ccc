"""The state object: encoding, validation against the listing, and what the
next run records. Pure functions, no server."""

from __future__ import annotations

import gzip
from dataclasses import replace

import pytest

from drone_s3_sync import diff, needs
from drone_s3_sync.config import Settings
from drone_s3_sync.digest import Digest
from drone_s3_sync.model import (Action, Kind, LocalFile, ObjectHeaders, Outcome, Plan, Reason, RemoteObject,
                                 Summary)
from drone_s3_sync.state import EMPTY_XXH, Entry, decode, encode, entries_at_risk, next_state, state_key

HTML = ObjectHeaders(content_type="text/html; charset=utf-8", cache_control="max-age=60",
                     metadata=(("site", "demo"),))
PNG = ObjectHeaders(content_type="image/png", acl="public-read")


def entry(etag="aa", size=3, xxh="x1", headers=HTML):
    return Entry(etag=etag, size=size, xxh=xxh, headers=headers)


def local(rel, size=3):
    return LocalFile(rel=rel, key=rel, path="/src/" + rel, size=size, mtime_ns=0)


def test_state_key_sits_under_the_target():
    assert state_key("") == ".drone-s3-sync-state.json.gz"
    assert state_key("site/") == "site/.drone-s3-sync-state.json.gz"


def test_encode_decode_round_trip_and_is_deterministic():
    entries = {"b.html": entry(), "a.png": entry("bb-2", 9 * 1024 * 1024, "x2", PNG), "c.html": entry("cc")}
    data = encode(entries)
    assert decode(data) == entries
    assert encode(dict(reversed(list(entries.items())))) == data  # same entries, same bytes
    # Header sets are stored once and referenced, so a big site stays small.
    assert gzip.decompress(data).count(b"max-age=60") == 1


@pytest.mark.parametrize("data", [b"", b"not gzip", gzip.compress(b"{}"), gzip.compress(b"[1,2]"),
                                  gzip.compress(b'{"format": 99, "headers": [], "objects": {}}'),
                                  gzip.compress(b'{"format": 1, "headers": [], "objects": {"a": ["e", 1, null, 5]}}')])
def test_unreadable_state_is_treated_as_absent(data):
    assert decode(data) == {}


def test_damaged_deflate_stream_is_treated_as_absent():
    data = bytearray(encode({"a.html": entry(), "b.html": entry("bb")}))
    for position in range(10, len(data) - 8):  # every byte of the deflate stream
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        assert decode(bytes(damaged)) == {}  # gzip's CRC catches every change; never an exception


def test_entry_describes_only_the_listed_object_it_was_written_for():
    e = entry("aa", 3)
    assert e.describes(RemoteObject("k", 3, "aa"))
    assert not e.describes(RemoteObject("k", 3, "ab"))  # rewritten by someone else
    assert not e.describes(RemoteObject("k", 4, "aa"))
    assert not e.describes(None)


def test_valid_entry_settles_content_by_xxh_whatever_the_etag():
    remote = RemoteObject("k", 3, "0123456789abcdef0123456789abcdef-2")  # multipart or KMS: not an MD5
    e = entry(remote.etag, 3, "same")
    assert needs.hash_needs(local("k"), remote, e) == (False, [])  # no MD5, no part sizes
    assert diff.content_matches(remote, Digest(xxh="same"), None, e) is True
    assert diff.content_matches(remote, Digest(xxh="other"), None, e) is False
    stale = entry("ffff", 3, "same")  # the listing shows another object now
    assert diff.content_matches(RemoteObject("k", 3, "aaaa"), Digest(md5="aaaa", xxh="same"), None, stale) is True
    # A different MD5 with unknown details: only the object's metadata could still tell.
    assert diff.content_matches(RemoteObject("k", 3, "aaaa"), Digest(md5="bbbb", xxh="same"), None, stale) is None


def test_known_details_come_only_from_valid_entries():
    remotes = {"a": RemoteObject("a", 3, "aa"), "b": RemoteObject("b", 3, "changed")}
    state = {"a": entry("aa"), "b": entry("bb"), "gone": entry("cc")}
    known = diff.known_details(remotes, state)
    assert set(known) == {"a"} and known["a"].headers == HTML
    settings = Settings(bucket="bkt")
    heads = {k for k in ("a", "b") if needs.next_need(local(k), remotes[k], state[k], Digest(xxh="x", md5="m"),
                                                     known.get(k)) == needs.Need(needs.HEAD)}
    assert heads == {"b"}


def test_plan_with_state_skips_without_any_object_details():
    settings = Settings(bucket="bkt", cache_control=((".html", "max-age=60"),), metadata=(("*", (("site", "demo"),)),))
    remote = RemoteObject("index.html", 3, "9" * 32)
    state = {"index.html": entry("9" * 32, 3, "x1")}
    plan = diff.make_plan([local("index.html")], {"index.html": remote}, {"index.html": Digest(xxh="x1")},
                          diff.known_details({"index.html": remote}, state), settings, state=state)
    assert [(a.kind, a.reason) for a in plan.actions] == [(Kind.SKIP, Reason.UNCHANGED)]
    changed = settings.with_changes(cache_control=((".html", "max-age=600"),))
    plan = diff.make_plan([local("index.html")], {"index.html": remote}, {"index.html": Digest(xxh="x1")},
                          diff.known_details({"index.html": remote}, state), changed, state=state)
    assert [(a.kind, a.detail) for a in plan.actions] == [(Kind.UPDATE, "cache_control")]


def test_next_state_records_the_etags_writes_returned_and_keeps_only_what_is_verified():
    up = Action(Kind.UPLOAD, "new.html", Reason.NEW, local("new.html"), HTML, 3)
    upd = Action(Kind.UPDATE, "upd.html", Reason.HEADERS, local("upd.html"), HTML, 3)
    red = Action(Kind.REDIRECT, "old", Reason.NEW, headers=replace(HTML, redirect="/"))
    skip = Action(Kind.SKIP, "same.png", Reason.UNCHANGED, local("same.png"), PNG, 3)
    unverified = Action(Kind.SKIP, "err.png", Reason.CONTENT, local("err.png"), PNG, 3)
    failed = Action(Kind.UPLOAD, "fail.html", Reason.NEW, local("fail.html"), HTML, 3)
    gone = Action(Kind.DELETE, "gone.html", Reason.ORPHAN, size=3)
    plan = Plan([up, upd, red, skip, unverified, failed, gone])
    summary = Summary(plan=plan, outcomes=[Outcome(up, True, etag="n1"), Outcome(upd, True, etag="u1"),
                                           Outcome(red, True, etag="d41d8cd98f00b204e9800998ecf8427e"),
                                           Outcome(failed, False, "boom"), Outcome(gone, True)])
    remotes = {"same.png": RemoteObject("same.png", 3, "s1"), "upd.html": RemoteObject("upd.html", 3, "u0"),
               "err.png": RemoteObject("err.png", 3, "e1"), "gone.html": RemoteObject("gone.html", 3, "g1")}
    digests = {"new.html": Digest(xxh="n"), "upd.html": Digest(xxh="u"), "same.png": Digest(xxh="s")}
    entries = next_state(summary, remotes, digests)
    assert set(entries) == {"new.html", "upd.html", "old", "same.png"}
    assert entries["new.html"] == Entry("n1", 3, "n", HTML)
    assert entries["upd.html"].etag == "u1"  # the copy's ETag, not the listed one
    assert entries["same.png"] == Entry("s1", 3, "s", PNG)
    assert entries["old"].xxh == EMPTY_XXH and entries["old"].size == 0


def test_entries_at_risk_are_those_a_write_could_make_lie():
    """Entries whose ETag a write of this run keeps or may recreate with other headers."""
    other = replace(HTML, cache_control="no-cache")
    stored = {key: entry(etag="e-" + key) for key in
              ("copy.html", "redirect.html", "big.html", "new-bytes.html", "replaced.html", "same-headers.html",
               "gone.html", "skip.html", "deleted.html")}
    listed = {key: RemoteObject(key, 3, "e-" + key) for key in stored}
    listed["replaced.html"] = RemoteObject("replaced.html", 3, "by-another-tool")
    listed["same-headers.html"] = RemoteObject("same-headers.html", 3, "by-another-tool")
    del listed["gone.html"]
    plan = Plan([
        Action(Kind.UPDATE, "copy.html", Reason.HEADERS, local("copy.html"), other, 3),
        Action(Kind.REDIRECT, "redirect.html", Reason.REDIRECT_CHANGED, headers=replace(HTML, redirect="/x")),
        # above CopyObject's limit a header change uploads the same bytes again: same ETag
        Action(Kind.UPLOAD, "big.html", Reason.HEADERS, local("big.html"), other, 3),
        Action(Kind.UPLOAD, "new-bytes.html", Reason.CONTENT, local("new-bytes.html"), other, 3),
        # the entry no longer describes the object: the upload may recreate its ETag
        Action(Kind.UPLOAD, "replaced.html", Reason.CONTENT, local("replaced.html"), other, 3),
        Action(Kind.UPLOAD, "same-headers.html", Reason.CONTENT, local("same-headers.html"), HTML, 3),
        Action(Kind.UPLOAD, "gone.html", Reason.NEW, local("gone.html"), other, 3),
        Action(Kind.SKIP, "skip.html", Reason.UNCHANGED, local("skip.html"), HTML, 3),
        Action(Kind.DELETE, "deleted.html", Reason.ORPHAN, size=3),
        Action(Kind.UPLOAD, "no-entry.html", Reason.NEW, local("no-entry.html"), other, 3),
    ])
    assert entries_at_risk(plan, stored, listed) == {"copy.html", "redirect.html", "big.html", "replaced.html",
                                                     "gone.html"}


# ---------------------------------------------------------------- headers rows across versions

WEB = ObjectHeaders(content_type="application/pdf", content_disposition="attachment", content_language="en",
                    expires="Tue, 01 Jan 2030 00:00:00 GMT", storage_class="STANDARD_IA", encryption="aws:kms",
                    kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k")


def _document(data: bytes) -> dict:
    import json
    return json.loads(gzip.decompress(data))


def test_headers_with_every_field_round_trip():
    entries = {"a.pdf": entry(headers=WEB), "b.pdf": entry("bb", headers=replace(WEB, kms_key_id=None)),
               "c.html": entry("cc"), "d.txt": entry("dd", headers=ObjectHeaders("text/plain", expires="x"))}
    assert decode(encode(entries)) == entries
    rows = _document(encode(entries))["headers"]
    # Each row has the six fields of the first format, then the later ones up to the last one set.
    assert sorted(len(row) for row in rows) == [6, 9, 11, 12]


def test_state_written_before_the_web_header_fields_still_decodes():
    # Bytes as the previous release wrote them: six fields a row.
    import json
    old = {"format": 1, "tool": "drone-s3-sync",
           "headers": [["text/html; charset=utf-8", None, "max-age=60", [["site", "demo"]], "private", None]],
           "objects": {"index.html": ["aa", 3, "x1", 0]}}
    data = gzip.compress(json.dumps(old, separators=(",", ":")).encode(), compresslevel=6, mtime=0)
    decoded = decode(data)
    assert decoded == {"index.html": entry()}  # missing fields are unset
    headers = decoded["index.html"].headers
    assert (headers.content_disposition, headers.content_language, headers.expires, headers.storage_class,
            headers.encryption, headers.kms_key_id) == (None,) * 6
    # An unchanged site writes the very same bytes again: no state rewrite after an upgrade.
    assert encode(decoded) == data
