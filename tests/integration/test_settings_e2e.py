"""End-to-end tests of the settings contract.

Every test runs the real installed `drone-s3-sync` command the way Drone does:
the step's `settings:` become PLUGIN_* environment variables (maps as JSON with
their keys sorted, as Go's json.Marshal writes them; booleans as "true" /
"false"), against the session's moto server. The bucket is then read back with
recording paused and exact header / ACL values are asserted. Where the number or
kind of requests proves something (a dry run writes nothing, a bad setting is
refused before any request), the server's request log is asserted too.

Request economy, change detection, delete safety, CloudFront paths and special
characters are covered by test_sync_e2e.py, not here.
"""

from __future__ import annotations

import collections
import json
import re
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Set

import pytest
from drone_run import assert_refused

from conftest import STATE_NAME, is_state_key, state_key

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
READ_ONLY_OPS = {"ListObjectsV2", "HeadObject", "GetObjectAcl"}

# The credentials printed in the plugin's documentation.
DOCS_ACCESS_KEY = "a50d28f4dd477bc184fbd10b376de753"
DOCS_SECRET_KEY = "bc5785d3ece6a9cdefa42eb99b58986f9095ff1c"


# ---------------------------------------------------------------- helpers


def drone_env(settings: Mapping[str, Any]) -> Dict[str, str]:
    """What Drone makes of a step's `settings:` block: PLUGIN_<NAME> variables.

    Maps (and lists) become JSON with sorted keys and no spaces (Go's
    json.Marshal), booleans "true"/"false", everything else its string form.
    """
    env = {}
    for name, value in settings.items():
        var = "PLUGIN_" + name.upper()
        if isinstance(value, bool):
            env[var] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            env[var] = json.dumps(value, sort_keys=True, separators=(",", ":"))
        else:
            env[var] = str(value)
    return env


def keys_in(s3: Any, s3_server: Any, bucket: str, prefix: str = "", with_state: bool = False) -> Set[str]:
    """Keys in the bucket; without the product's state object unless `with_state`."""
    with s3_server.paused():
        found = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update(o["Key"] for o in page.get("Contents", ()))
    return found if with_state else {k for k in found if not is_state_key(k)}


def head(s3: Any, s3_server: Any, bucket: str, key: str) -> Dict[str, Any]:
    with s3_server.paused():
        return s3.head_object(Bucket=bucket, Key=key)


def body(s3: Any, s3_server: Any, bucket: str, key: str) -> bytes:
    with s3_server.paused():
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def meta(response: Mapping[str, Any]) -> Dict[str, str]:
    return {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}


def grants(s3: Any, s3_server: Any, bucket: str, key: str) -> Set[tuple]:
    """The object's grants other than the owner's FULL_CONTROL, as (grantee, permission)."""
    with s3_server.paused():
        acl = s3.get_object_acl(Bucket=bucket, Key=key)
    owner = acl["Owner"]["ID"]
    out = set()
    for grant in acl["Grants"]:
        grantee = grant["Grantee"]
        if grantee.get("Type") == "CanonicalUser" and grantee.get("ID") == owner and grant["Permission"] == "FULL_CONTROL":
            continue
        out.add((grantee.get("URI") or grantee.get("ID"), grant["Permission"]))
    return out


def put(s3: Any, s3_server: Any, bucket: str, key: str, data: bytes = b"", **extra: Any) -> None:
    with s3_server.paused():
        s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)


def write_ops(s3_server: Any, bucket: Optional[str] = None) -> list:
    return sorted(r.op for r in s3_server.writes(bucket))


def writes_by_key(s3_server: Any, bucket: str) -> list:
    """(op, key) of every write, in the order the server received them."""
    return [(r.op, r.key) for r in s3_server.writes(bucket)]


def assert_ok(proc: Any) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def output_line(proc: Any, *needles: str) -> str:
    """The one stdout line containing all needles."""
    lines = [line for line in proc.stdout.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, (needles, proc.stdout)
    return lines[0]


SITE = {
    "index.html": "<h1>home</h1>",
    "css/site.css": "body{}",
    "js/app.js": "console.log(1)",
    "img/logo.png": b"\x89PNG-logo",
    "img/deep/nested/pic.png": b"\x89PNG-pic",
    "img/icon.svg": "<svg/>",
    "LICENSE": "MIT",
}


# ---------------------------------------------------------------- the docs page, as written

DOCS_ARCHIVE = {
    "index.html": "<h1>docs</h1>",
    "public/logo.png": b"\x89PNG-public",
    "public/app.js": "var a=1",
    "private/secret.txt": "secret",
    "css/site.css": "p{}",
    "img/icon.svg": "<svg/>",
    "img/deep/nested/pic.png": b"\x89PNG-nested",
}


def docs_settings(bucket: str, **more: Any) -> Dict[str, Any]:
    # `bucket:` is written twice in every example; in YAML the later one wins.
    settings = {
        "access_key": DOCS_ACCESS_KEY,
        "secret_key": DOCS_SECRET_KEY,
        "region": "us-east-1",
        "bucket": f"{bucket}.s3-website-us-east-1.amazonaws.com",
        "source": "folder/to/archive",
        "target": "/target/location",
    }
    settings.update(more)
    return settings


@pytest.fixture
def docs_workspace(make_tree: Any) -> Path:
    return make_tree({"folder/to/archive/" + rel: data for rel, data in DOCS_ARCHIVE.items()})


def docs_keys() -> Set[str]:
    return {"target/location/" + rel for rel in DOCS_ARCHIVE}


def assert_no_secret(proc: Any, secret: str) -> None:
    assert secret not in proc.stdout
    assert secret not in proc.stderr


def test_docs_simple_example(run_sync, s3_server, s3, bucket, docs_workspace):
    proc = run_sync(drone_env(docs_settings(bucket)), cwd=docs_workspace)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == docs_keys()
    # The state object is written next to the files, and nothing else is.
    assert keys_in(s3, s3_server, bucket, with_state=True) == docs_keys() | {state_key("target/location/")}
    assert STATE_NAME not in proc.stdout  # never an action line
    assert body(s3, s3_server, bucket, "target/location/index.html") == b"<h1>docs</h1>"
    assert_no_secret(proc, DOCS_SECRET_KEY)


def test_docs_from_secret_example(run_sync, s3_server, s3, bucket, docs_workspace):
    # `from_secret` values reach the plugin as plain variables, often with the
    # trailing newline of the file the secret was pasted from.
    settings = docs_settings(bucket, access_key=DOCS_ACCESS_KEY + "\n", secret_key=DOCS_SECRET_KEY + "\n")
    proc = run_sync(drone_env(settings), cwd=docs_workspace)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == docs_keys()
    assert_no_secret(proc, DOCS_SECRET_KEY)


def test_docs_delete_example(run_sync, s3_server, s3, bucket, docs_workspace):
    put(s3, s3_server, bucket, "target/location/removed-locally.txt", b"old")
    put(s3, s3_server, bucket, "elsewhere/keep.txt", b"keep")
    proc = run_sync(drone_env(docs_settings(bucket, delete=True)), cwd=docs_workspace)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == docs_keys() | {"elsewhere/keep.txt"}
    assert keys_in(s3, s3_server, bucket, with_state=True) == (
        docs_keys() | {"elsewhere/keep.txt", state_key("target/location/")})

    # A second delete run: the state object is not "not in source".
    s3_server.reset()
    proc = run_sync(drone_env(docs_settings(bucket, delete=True)), cwd=docs_workspace)
    assert_ok(proc)
    assert s3_server.writes(bucket) == []
    assert state_key("target/location/") in keys_in(s3, s3_server, bucket, with_state=True)


def test_docs_cloudfront_example(run_sync, s3_server, s3, bucket, docs_workspace, distribution):
    proc = run_sync(drone_env(docs_settings(bucket, cloudfront_distribution=distribution)), cwd=docs_workspace)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == docs_keys()
    assert s3_server.ops()["CreateInvalidation"] == 1


def test_docs_acl_content_type_encoding_cache_control_example(run_sync, s3_server, s3, bucket, docs_workspace):
    settings = docs_settings(
        bucket,
        acl={"public/*": "public-read", "private/*": "private"},
        content_type={".svg": "image/svg+xml"},
        content_encoding={".js": "gzip", ".css": "gzip"},
        cache_control="public, max-age: 31536000",  # sic, as the docs write it
    )
    env = drone_env(settings)
    assert env["PLUGIN_ACL"] == '{"private/*":"private","public/*":"public-read"}'
    proc = run_sync(env, cwd=docs_workspace)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == docs_keys()

    t = "target/location/"
    assert grants(s3, s3_server, bucket, t + "public/logo.png") == {(ALL_USERS, "READ")}
    assert grants(s3, s3_server, bucket, t + "public/app.js") == {(ALL_USERS, "READ")}
    assert grants(s3, s3_server, bucket, t + "private/secret.txt") == set()
    assert grants(s3, s3_server, bucket, t + "index.html") == set()

    assert head(s3, s3_server, bucket, t + "img/icon.svg")["ContentType"] == "image/svg+xml"
    assert head(s3, s3_server, bucket, t + "index.html")["ContentType"] == "text/html; charset=utf-8"

    assert head(s3, s3_server, bucket, t + "public/app.js").get("ContentEncoding") == "gzip"
    assert head(s3, s3_server, bucket, t + "css/site.css").get("ContentEncoding") == "gzip"
    assert head(s3, s3_server, bucket, t + "index.html").get("ContentEncoding") is None
    assert head(s3, s3_server, bucket, t + "public/logo.png").get("ContentEncoding") is None

    for key in docs_keys():
        assert head(s3, s3_server, bucket, key)["CacheControl"] == "public, max-age: 31536000", key


def test_docs_metadata_flat_example(run_sync, s3_server, s3, bucket, docs_workspace):
    proc = run_sync(drone_env(docs_settings(bucket, metadata={"custom-meta": "abc123"})), cwd=docs_workspace)
    assert_ok(proc)
    for key in docs_keys():
        assert meta(head(s3, s3_server, bucket, key)) == {"custom-meta": "abc123"}, key


def test_docs_metadata_glob_example(run_sync, s3_server, s3, bucket, docs_workspace):
    env = drone_env(docs_settings(bucket, metadata={"*.png": {"CustomMeta": "abc123"}}))
    assert env["PLUGIN_METADATA"] == '{"*.png":{"CustomMeta":"abc123"}}'
    proc = run_sync(env, cwd=docs_workspace)
    assert_ok(proc)
    pngs = {"target/location/public/logo.png", "target/location/img/deep/nested/pic.png"}
    for key in docs_keys():
        expected = {"custommeta": "abc123"} if key in pngs else {}
        assert meta(head(s3, s3_server, bucket, key)) == expected, key


def test_docs_redirects_example(run_sync, s3_server, s3, bucket, docs_workspace):
    env = drone_env(docs_settings(bucket, redirects={"some/missing/file": "/somewhere/that/actually/exists"}))
    proc = run_sync(env, cwd=docs_workspace)
    assert_ok(proc)
    key = "target/location/some/missing/file"
    assert keys_in(s3, s3_server, bucket) == docs_keys() | {key}
    response = head(s3, s3_server, bucket, key)
    assert response["WebsiteRedirectLocation"] == "/somewhere/that/actually/exists"
    assert response["ContentLength"] == 0


# ---------------------------------------------------------------- acl


def test_acl_glob_rules(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"public/a/b.txt": "pub", "private/x": "priv", "other.txt": "o"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_ACL": '{"private/*":"private","public/*":"public-read"}'}, cwd=ws)
    assert_ok(proc)
    assert grants(s3, s3_server, bucket, "public/a/b.txt") == {(ALL_USERS, "READ")}
    assert grants(s3, s3_server, bucket, "private/x") == set()
    assert grants(s3, s3_server, bucket, "other.txt") == set()


def test_acl_plain_value(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a", "d/b.html": "b"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_ACL": "public-read"}, cwd=ws)
    assert_ok(proc)
    for key in ("a.txt", "d/b.html"):
        assert grants(s3, s3_server, bucket, key) == {(ALL_USERS, "READ")}, key


def test_acl_alias_plugin_access(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_ACCESS": "public-read"}, cwd=ws)
    assert_ok(proc)
    assert grants(s3, s3_server, bucket, "a.txt") == {(ALL_USERS, "READ")}


def test_acl_default_private_sends_no_acl_header(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a", "b/c.css": "c", "LICENSE": "l"})
    proc = run_sync({"PLUGIN_BUCKET": bucket}, cwd=ws)
    assert_ok(proc)
    puts = [r for r in s3_server.writes(bucket) if r.op == "PutObject"]
    # three files, then the state object (which carries no ACL header either)
    assert sorted(r.key for r in puts) == sorted(["a.txt", "b/c.css", "LICENSE", STATE_NAME])
    assert puts[-1].key == STATE_NAME
    for rec in puts:
        assert "x-amz-acl" not in rec.headers, rec
        assert not any(h.startswith("x-amz-grant-") for h in rec.headers), rec
    assert "PutObjectAcl" not in s3_server.ops(bucket)
    for key in ("a.txt", "b/c.css", "LICENSE"):
        assert grants(s3, s3_server, bucket, key) == set()


def test_acl_default_private_works_on_acl_disabled_bucket(run_sync, s3_server, s3, acl_disabled_bucket, make_tree):
    ws = make_tree({"a.txt": "a", "b/c.css": "c"})
    proc = run_sync({"PLUGIN_BUCKET": acl_disabled_bucket, "PLUGIN_REDIRECTS": '{"old":"/new"}'}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, acl_disabled_bucket) == {"a.txt", "b/c.css", "old"}
    # The state object was accepted too: it is written without an ACL header.
    assert keys_in(s3, s3_server, acl_disabled_bucket, with_state=True) == {"a.txt", "b/c.css", "old", STATE_NAME}
    # A second run (the listing and the state object; no request per object) writes nothing.
    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": acl_disabled_bucket, "PLUGIN_REDIRECTS": '{"old":"/new"}'}, cwd=ws)
    assert_ok(proc)
    assert s3_server.writes(acl_disabled_bucket) == []
    assert s3_server.ops(acl_disabled_bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_acl_public_read_on_acl_disabled_bucket_fails(run_sync, s3_server, s3, acl_disabled_bucket, make_tree):
    ws = make_tree({"pub/page.html": "p"})
    proc = run_sync({"PLUGIN_BUCKET": acl_disabled_bucket, "PLUGIN_ACL": "public-read"}, cwd=ws)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    combined = (proc.stdout + proc.stderr).splitlines()
    assert any("pub/page.html" in line and "AccessControlListNotSupported" in line for line in combined), combined
    assert keys_in(s3, s3_server, acl_disabled_bucket) == set()


def test_acl_unknown_name_refused_before_any_request(run_sync, s3_server, bucket, make_tree):
    ws = make_tree({"a.txt": "a"})
    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_ACL": "public"}, cwd=ws)
    assert_refused(proc, s3_server, "PLUGIN_ACL", "public")


# ---------------------------------------------------------------- content_type


def test_content_type_plain_string_applies_to_every_file(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h", "a.js": "j", "LICENSE": "l", "x.png": b"p"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CONTENT_TYPE": "application/x-custom"}, cwd=ws)
    assert_ok(proc)
    for key in ("index.html", "a.js", "LICENSE", "x.png"):
        assert head(s3, s3_server, bucket, key)["ContentType"] == "application/x-custom", key


def test_content_type_map_by_extension(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"img/icon.svg": "<svg/>", "img/LOGO.SVG": "<svg/>", "index.html": "h"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CONTENT_TYPE": '{".svg":"image/x-test-svg"}'}, cwd=ws)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "img/icon.svg")["ContentType"] == "image/x-test-svg"
    assert head(s3, s3_server, bucket, "img/LOGO.SVG")["ContentType"] == "image/x-test-svg"
    assert head(s3, s3_server, bucket, "index.html")["ContentType"] == "text/html; charset=utf-8"


def test_content_type_empty_key_means_no_extension(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"LICENSE": "l", "bin/Makefile": "m", "notes.txt": "n"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CONTENT_TYPE": '{"":"text/x-plain-test"}'}, cwd=ws)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "LICENSE")["ContentType"] == "text/x-plain-test"
    assert head(s3, s3_server, bucket, "bin/Makefile")["ContentType"] == "text/x-plain-test"
    assert head(s3, s3_server, bucket, "notes.txt")["ContentType"] == "text/plain; charset=utf-8"


def test_content_type_builtin_table(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({
        "app.mjs": "export {}",
        "mod.wasm": b"\0asm",
        "site.webmanifest": "{}",
        "font.woff2": b"wOF2",
        "index.html": "h",
        "data.xyz": b"?",
        "LICENSE": "l",
    })
    proc = run_sync({"PLUGIN_BUCKET": bucket}, cwd=ws)
    assert_ok(proc)

    def ctype(key: str) -> str:
        return head(s3, s3_server, bucket, key)["ContentType"]

    assert ctype("app.mjs") == "text/javascript; charset=utf-8"
    assert ctype("mod.wasm") == "application/wasm"
    # README: `.webmanifest` is application/manifest+json; textual types may carry the charset.
    assert ctype("site.webmanifest") in ("application/manifest+json", "application/manifest+json; charset=utf-8")
    assert ctype("font.woff2") == "font/woff2"
    assert ctype("index.html") == "text/html; charset=utf-8"
    assert ctype("data.xyz") == "application/octet-stream"
    assert ctype("LICENSE") == "application/octet-stream"


# ---------------------------------------------------------------- content_encoding


def test_content_encoding_plain_string_applies_to_every_file(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.js": "j", "b.css": "c", "index.html": "h"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CONTENT_ENCODING": "gzip"}, cwd=ws)
    assert_ok(proc)
    for key in ("a.js", "b.css", "index.html"):
        assert head(s3, s3_server, bucket, key).get("ContentEncoding") == "gzip", key


@pytest.mark.parametrize("rules", ['{".css":"gzip",".js":"gzip"}', '{"*.css":"gzip","*.js":"gzip"}'],
                         ids=["extension-keys", "glob-keys"])
def test_content_encoding_map(run_sync, s3_server, s3, bucket, make_tree, rules):
    ws = make_tree({"js/a.js": "j", "b.css": "c", "index.html": "h", "img/x.png": b"p"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CONTENT_ENCODING": rules}, cwd=ws)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "js/a.js").get("ContentEncoding") == "gzip"
    assert head(s3, s3_server, bucket, "b.css").get("ContentEncoding") == "gzip"
    assert head(s3, s3_server, bucket, "index.html").get("ContentEncoding") is None
    assert head(s3, s3_server, bucket, "img/x.png").get("ContentEncoding") is None
    puts = {r.key: r for r in s3_server.writes(bucket) if r.op == "PutObject"}
    assert "content-encoding" not in puts["index.html"].headers


# ---------------------------------------------------------------- cache_control


def test_cache_control_plain_string(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h", "a/b.png": b"p", "LICENSE": "l"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_CACHE_CONTROL": "public, max-age=600"}, cwd=ws)
    assert_ok(proc)
    for key in ("index.html", "a/b.png", "LICENSE"):
        assert head(s3, s3_server, bucket, key)["CacheControl"] == "public, max-age=600", key


def test_cache_control_map_extension_and_glob_keys(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h", "blog/post.html": "p", "assets/app.js": "j", "robots.txt": "r"})
    rules = {".html": "public, max-age=60", "assets/*": "public, max-age=31536000, immutable"}
    proc = run_sync(drone_env({"bucket": bucket, "cache_control": rules}), cwd=ws)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "index.html")["CacheControl"] == "public, max-age=60"
    assert head(s3, s3_server, bucket, "blog/post.html")["CacheControl"] == "public, max-age=60"
    assert head(s3, s3_server, bucket, "assets/app.js")["CacheControl"] == "public, max-age=31536000, immutable"
    assert head(s3, s3_server, bucket, "robots.txt").get("CacheControl") is None


OVERLAP_TREE = {"site/assets/app.css": "a", "site/other.css": "o", "site/assets/logo.png": b"p"}
GLOB_RULE = ("assets/*", "public, max-age=31536000, immutable")
EXT_RULE = (".css", "public, max-age=60")


@pytest.mark.parametrize("glob_first", [True, False], ids=["glob-first", "extension-first"])
def test_cache_control_first_rule_in_config_file_order_wins(run_sync, s3_server, s3, bucket, make_tree, glob_first):
    ws = make_tree(OVERLAP_TREE)
    first, second = (GLOB_RULE, EXT_RULE) if glob_first else (EXT_RULE, GLOB_RULE)
    (ws / "deploy.yml").write_text(
        f"bucket: {bucket}\n"
        "source: site\n"
        "cache_control:\n"
        f'  "{first[0]}": "{first[1]}"\n'
        f'  "{second[0]}": "{second[1]}"\n'
    )
    proc = run_sync({}, cwd=ws, args=["--config", "deploy.yml"])
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "assets/app.css")["CacheControl"] == first[1]
    assert head(s3, s3_server, bucket, "other.css")["CacheControl"] == EXT_RULE[1]
    assert head(s3, s3_server, bucket, "assets/logo.png")["CacheControl"] == GLOB_RULE[1]


@pytest.mark.parametrize("glob_first", [True, False], ids=["glob-first", "extension-first"])
def test_cache_control_first_rule_in_json_order_wins(run_sync, s3_server, s3, bucket, make_tree, glob_first):
    ws = make_tree(OVERLAP_TREE)
    first, second = (GLOB_RULE, EXT_RULE) if glob_first else (EXT_RULE, GLOB_RULE)
    value = json.dumps({first[0]: first[1], second[0]: second[1]})  # insertion order, not sorted
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "site", "PLUGIN_CACHE_CONTROL": value}, cwd=ws)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "assets/app.css")["CacheControl"] == first[1]
    assert head(s3, s3_server, bucket, "other.css")["CacheControl"] == EXT_RULE[1]
    assert head(s3, s3_server, bucket, "assets/logo.png")["CacheControl"] == GLOB_RULE[1]


# ---------------------------------------------------------------- metadata


def test_metadata_flat_map(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a", "d/e/f.png": b"p"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_METADATA": '{"owner":"web-team","site":"example"}'}, cwd=ws)
    assert_ok(proc)
    for key in ("a.txt", "d/e/f.png"):
        assert meta(head(s3, s3_server, bucket, key)) == {"owner": "web-team", "site": "example"}, key


def test_metadata_glob_to_map_first_match_not_merged(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"img/x.png": b"p", "deep/er/y.png": b"q", "img/z.jpg": b"j", "a.txt": "a"})
    rules = {"*.png": {"kind": "png"}, "img/*": {"folder": "img"}}
    proc = run_sync(drone_env({"bucket": bucket, "metadata": rules}), cwd=ws)
    assert_ok(proc)
    assert meta(head(s3, s3_server, bucket, "img/x.png")) == {"kind": "png"}
    assert meta(head(s3, s3_server, bucket, "deep/er/y.png")) == {"kind": "png"}
    assert meta(head(s3, s3_server, bucket, "img/z.jpg")) == {"folder": "img"}
    assert meta(head(s3, s3_server, bucket, "a.txt")) == {}


def test_metadata_names_compared_case_insensitively(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a", "b.txt": "b"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_METADATA": '{"Owner":"web"}'}, cwd=ws)
    assert_ok(proc)
    assert meta(head(s3, s3_server, bucket, "a.txt")) == {"owner": "web"}

    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_METADATA": '{"OWNER":"web"}'}, cwd=ws)
    assert_ok(proc)
    assert s3_server.writes(bucket) == []

    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_METADATA": '{"owner":"team"}'}, cwd=ws)
    assert_ok(proc)
    # Both objects are rewritten in place and both have a state entry: the state
    # object is first written without them, then once more, last, with them.
    writes = writes_by_key(s3_server, bucket)
    assert writes[0] == ("PutObject", STATE_NAME), writes
    assert sorted(writes[1:-1]) == [("CopyObject", "a.txt"), ("CopyObject", "b.txt")], writes
    assert writes[-1] == ("PutObject", STATE_NAME), writes
    assert len(writes) == 4, writes
    assert meta(head(s3, s3_server, bucket, "a.txt")) == {"owner": "team"}


# ---------------------------------------------------------------- redirects


def test_redirect_key_is_relative_to_target(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h"})
    env = {"PLUGIN_BUCKET": bucket, "PLUGIN_TARGET": "/site/", "PLUGIN_CACHE_CONTROL": "max-age=5",
           "PLUGIN_REDIRECTS": '{"/old/page.html":"/new/page.html","blog":"https://example.com/blog/"}'}
    proc = run_sync(env, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"site/index.html", "site/old/page.html", "site/blog"}
    page = head(s3, s3_server, bucket, "site/old/page.html")
    assert page["WebsiteRedirectLocation"] == "/new/page.html"
    assert page["ContentLength"] == 0
    assert page["CacheControl"] == "max-age=5"  # rules apply to redirects too
    assert head(s3, s3_server, bucket, "site/blog")["WebsiteRedirectLocation"] == "https://example.com/blog/"


def test_redirect_rewritten_only_when_location_changes(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h"})
    base = {"PLUGIN_BUCKET": bucket, "PLUGIN_TARGET": "/site"}
    proc = run_sync({**base, "PLUGIN_REDIRECTS": '{"old":"/one","keep":"/same"}'}, cwd=ws)
    assert_ok(proc)

    s3_server.reset()
    proc = run_sync({**base, "PLUGIN_REDIRECTS": '{"old":"/one","keep":"/same"}'}, cwd=ws)
    assert_ok(proc)
    assert s3_server.writes(bucket) == []

    s3_server.reset()
    proc = run_sync({**base, "PLUGIN_REDIRECTS": '{"old":"/two","keep":"/same"}'}, cwd=ws)
    assert_ok(proc)
    writes = s3_server.writes(bucket)
    # The rewritten redirect has a state entry: the state object is written
    # without it before the redirect is, and again, last, with the new location.
    assert [(r.op, r.key) for r in writes] == [
        ("PutObject", state_key("site/")), ("PutObject", "site/old"), ("PutObject", state_key("site/"))]
    assert "x-amz-website-redirect-location" not in writes[0].headers
    assert writes[1].headers["x-amz-website-redirect-location"] == "/two"
    assert head(s3, s3_server, bucket, "site/old")["WebsiteRedirectLocation"] == "/two"
    assert head(s3, s3_server, bucket, "site/keep")["WebsiteRedirectLocation"] == "/same"


def test_delete_never_removes_redirects(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"index.html": "h", "empty.txt": "", "gone.txt": "g"})
    base = {"PLUGIN_BUCKET": bucket, "PLUGIN_DELETE": "true"}
    proc = run_sync({**base, "PLUGIN_REDIRECTS": '{"a":"/x","b":"/y"}'}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"index.html", "empty.txt", "gone.txt", "a", "b"}

    # `b` is no longer in the settings, and two files went away (one of them
    # zero bytes, like a redirect): the files are deleted, both redirects stay.
    (ws / "empty.txt").unlink()
    (ws / "gone.txt").unlink()
    s3_server.reset()
    proc = run_sync({**base, "PLUGIN_REDIRECTS": '{"a":"/x"}'}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"index.html", "a", "b"}
    assert head(s3, s3_server, bucket, "b")["WebsiteRedirectLocation"] == "/y"
    # the deletes, then the state object without the deleted keys
    assert writes_by_key(s3_server, bucket) == [("DeleteObjects", None), ("PutObject", STATE_NAME)]
    assert STATE_NAME in keys_in(s3, s3_server, bucket, with_state=True)


def test_redirect_key_that_is_also_a_file_is_refused(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"old.html": "still here", "index.html": "h"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_REDIRECTS": '{"old.html":"/new.html"}'}, cwd=ws)
    assert proc.returncode == 2, proc.stderr
    assert "redirects" in proc.stderr.lower() and "old.html" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert s3_server.writes(bucket) == []


# ---------------------------------------------------------------- source


def test_source_relative_folder(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"dist/index.html": "h", "dist/a/b.txt": "b", "outside.txt": "o"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "dist"}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"index.html", "a/b.txt"}


def test_source_absolute_folder(run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    ws = make_tree({"dist/index.html": "h", "dist/a/b.txt": "b", "outside.txt": "o"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": str(ws / "dist")}, cwd=tmp_path)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"index.html", "a/b.txt"}


def test_source_glob(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({
        "dist/index.html": "h",
        "dist/blog/post/index.html": "p",
        "dist/app.js": "j",
        "dist/blog/style.css": "c",
        "other/x.html": "x",
    })
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "dist/**/*.html", "PLUGIN_TARGET": "/www"}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"www/index.html", "www/blog/post/index.html"}


def test_source_single_file(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"dist/app.js": "j", "dist/other.js": "o"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "dist/app.js", "PLUGIN_TARGET": "/files"}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"files/app.js"}
    assert keys_in(s3, s3_server, bucket, with_state=True) == {"files/app.js", state_key("files/")}
    assert body(s3, s3_server, bucket, "files/app.js") == b"j"


def test_source_missing_refused_before_any_request(run_sync, s3_server, bucket, make_tree):
    ws = make_tree({"dist/a.txt": "a"})
    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": "no-such-folder"}, cwd=ws)
    assert_refused(proc, s3_server, "PLUGIN_SOURCE", "does not exist")


# ---------------------------------------------------------------- target


@pytest.mark.parametrize(
    "target, prefix",
    [("/", ""), ("", ""), ("/site", "site/"), ("site/", "site/"), ("/site/", "site/")],
    ids=["slash", "empty", "leading", "trailing", "both"],
)
def test_target_forms(run_sync, s3_server, s3, bucket, make_tree, target, prefix):
    ws = make_tree({"index.html": "h", "a/b.txt": "b"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_TARGET": target}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {prefix + "index.html", prefix + "a/b.txt"}
    assert keys_in(s3, s3_server, bucket, with_state=True) == {
        prefix + "index.html", prefix + "a/b.txt", state_key(prefix)}
    assert not any(r.key.startswith("/") or "//" in r.key for r in s3_server.writes(bucket))


# ---------------------------------------------------------------- dry_run


@pytest.mark.parametrize(
    "env, args",
    [({"PLUGIN_DRY_RUN": "true"}, []), ({"DRY_RUN": "true"}, []), ({}, ["--dry-run"])],
    ids=["PLUGIN_DRY_RUN", "DRY_RUN", "flag"],
)
def test_dry_run_writes_nothing_and_prints_the_plan(run_sync, s3_server, s3, bucket, make_tree, env, args):
    ws = make_tree({
        "same.txt": "same",
        "changed.txt": "new!",
        "grown.txt": "longer now",
        "headers.txt": "hdrs",
        "new.txt": "new",
    })
    txt = "text/plain; charset=utf-8"
    put(s3, s3_server, bucket, "same.txt", b"same", ContentType=txt)
    put(s3, s3_server, bucket, "changed.txt", b"old!", ContentType=txt)
    put(s3, s3_server, bucket, "grown.txt", b"short", ContentType=txt)
    put(s3, s3_server, bucket, "headers.txt", b"hdrs", ContentType="application/x-wrong")
    put(s3, s3_server, bucket, "orphan.txt", b"orphan", ContentType=txt)
    before = {k: (body(s3, s3_server, bucket, k), head(s3, s3_server, bucket, k)["ContentType"])
              for k in keys_in(s3, s3_server, bucket)}
    s3_server.reset()

    settings = {"PLUGIN_BUCKET": bucket, "PLUGIN_DELETE": "true", "PLUGIN_REDIRECTS": '{"go":"/there"}', **env}
    proc = run_sync(settings, cwd=ws, args=args)
    assert_ok(proc)

    assert s3_server.writes() == []
    assert set(s3_server.ops(bucket)) <= READ_ONLY_OPS, s3_server.ops(bucket)
    after = {k: (body(s3, s3_server, bucket, k), head(s3, s3_server, bucket, k)["ContentType"])
             for k in keys_in(s3, s3_server, bucket)}
    assert after == before

    assert "upload" in output_line(proc, "new.txt") and "(new" in output_line(proc, "new.txt")
    assert "upload" in output_line(proc, "changed.txt") and "content changed" in output_line(proc, "changed.txt")
    assert "upload" in output_line(proc, "grown.txt") and "size changed" in output_line(proc, "grown.txt")
    line = output_line(proc, "headers.txt")
    assert "update" in line and "headers changed" in line and "content_type" in line
    line = output_line(proc, "orphan.txt")
    assert "delete" in line and "not in source" in line
    line = output_line(proc, "go ")
    assert "redirect" in line and "/there" in line
    assert "same.txt" not in proc.stdout  # unchanged files are not listed (only counted)
    summary = proc.stdout.strip().splitlines()[-1]
    for part in ("3 uploaded", "1 updated", "1 redirect,", "1 deleted", "1 unchanged"):
        assert part in summary, summary


# ---------------------------------------------------------------- endpoint, path_style, max_concurrency


@pytest.mark.parametrize("variable", ["S3_SYNC_ENDPOINT", "S3_ENDPOINT"])
def test_endpoint_aliases(run_sync, s3_server, s3, bucket, make_tree, variable):
    ws = make_tree({"a.txt": "a"})
    proc = run_sync({"PLUGIN_ENDPOINT": None, variable: s3_server.endpoint, "PLUGIN_BUCKET": bucket}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"a.txt"}


def test_endpoint_first_alias_set_wins(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a"})
    env = {"PLUGIN_ENDPOINT": None, "S3_SYNC_ENDPOINT": s3_server.endpoint,
           "S3_ENDPOINT": "http://127.0.0.1:9", "PLUGIN_BUCKET": bucket}
    proc = run_sync(env, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"a.txt"}


def test_path_style(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"a.txt": "a", "b/c.txt": "c"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_PATH_STYLE": "true"}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"a.txt", "b/c.txt"}
    assert all(r.path.startswith(f"/{bucket}") for r in s3_server.requests)


def test_max_concurrency_one(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({f"f{i}.txt": str(i) for i in range(6)})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_MAX_CONCURRENCY": "1"}, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {f"f{i}.txt" for i in range(6)}


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_max_concurrency_invalid(run_sync, s3_server, bucket, make_tree, value):
    ws = make_tree({"a.txt": "a"})
    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_MAX_CONCURRENCY": value}, cwd=ws)
    assert_refused(proc, s3_server, "PLUGIN_MAX_CONCURRENCY")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "variable, value",
    [
        ("PLUGIN_CACHE_CONTROL", '{".html": "max-age=60",'),
        ("PLUGIN_ACL", '["public-read"]'),
        ("PLUGIN_DELETE", "maybe"),
        ("PLUGIN_METADATA", "abc"),
        ("PLUGIN_TARGET", "../x"),
        ("PLUGIN_ENDPOINT", "ftp://x"),
        ("PLUGIN_BUCKET", None),
    ],
    ids=["bad-json", "acl-list", "delete-maybe", "metadata-string", "target-dotdot", "endpoint-ftp", "no-bucket"],
)
def test_bad_input_refused_before_any_request(run_sync, s3_server, bucket, make_tree, variable, value):
    ws = make_tree({"a.txt": "a"})
    env = {"PLUGIN_BUCKET": bucket, variable: value}
    s3_server.reset()
    proc = run_sync(env, cwd=ws)
    assert_refused(proc, s3_server, variable)


def test_missing_bucket(run_sync, s3_server, make_tree):
    ws = make_tree({"a.txt": "a"})
    name = f"missing-{uuid.uuid4().hex[:12]}"
    s3_server.reset()
    proc = run_sync({"PLUGIN_BUCKET": name}, cwd=ws)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0] and "does not exist" in lines[0]
    assert s3_server.writes() == []


# ---------------------------------------------------------------- config file and flags


def test_config_file_yaml_maps_and_source_relative_to_file(run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    conf = make_tree({"site/index.html": "h", "site/css/a.css": "c", "site/img/x.png": b"p"})
    (conf / "deploy.yml").write_text(
        f"bucket: {bucket}\n"
        "source: site\n"
        "target: /www\n"
        "acl:\n"
        '  "img/*": public-read\n'
        "cache_control:\n"
        "  .html: public, max-age=60\n"
        '  "css/*": public, max-age=31536000\n'
        "content_type:\n"
        "  .css: text/x-css-test\n"
        "metadata:\n"
        '  "*.png":\n'
        "    kind: image\n"
        "redirects:\n"
        "  old.html: /index.html\n"
    )
    elsewhere = tmp_path / "cron-home"
    elsewhere.mkdir()
    proc = run_sync({}, cwd=elsewhere, args=["--config", str(conf / "deploy.yml")])
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"www/index.html", "www/css/a.css", "www/img/x.png", "www/old.html"}
    assert head(s3, s3_server, bucket, "www/index.html")["CacheControl"] == "public, max-age=60"
    css = head(s3, s3_server, bucket, "www/css/a.css")
    assert css["CacheControl"] == "public, max-age=31536000"
    assert css["ContentType"] == "text/x-css-test"
    assert meta(head(s3, s3_server, bucket, "www/img/x.png")) == {"kind": "image"}
    assert grants(s3, s3_server, bucket, "www/img/x.png") == {(ALL_USERS, "READ")}
    assert grants(s3, s3_server, bucket, "www/index.html") == set()
    assert head(s3, s3_server, bucket, "www/old.html")["WebsiteRedirectLocation"] == "/index.html"


def test_config_file_settings_block(run_sync, s3_server, s3, bucket, make_tree, tmp_path):
    conf = make_tree({"public/a.txt": "a"})
    (conf / "step.yml").write_text(f"settings:\n  bucket: {bucket}\n  source: public\n  target: /pasted\n")
    proc = run_sync({}, cwd=tmp_path, args=["--config", str(conf / "step.yml")])
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"pasted/a.txt"}


def test_precedence_flags_over_env_over_file(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"site/a.txt": "a"})
    (ws / "deploy.yml").write_text(f"bucket: {bucket}\nsource: site\ncache_control: from-file\n")
    args = ["--config", "deploy.yml"]

    proc = run_sync({}, cwd=ws, args=args)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "a.txt")["CacheControl"] == "from-file"

    proc = run_sync({"PLUGIN_CACHE_CONTROL": "from-env"}, cwd=ws, args=args)
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "a.txt")["CacheControl"] == "from-env"

    proc = run_sync({"PLUGIN_CACHE_CONTROL": "from-env"}, cwd=ws, args=args + ["--cache-control", "from-flag"])
    assert_ok(proc)
    assert head(s3, s3_server, bucket, "a.txt")["CacheControl"] == "from-flag"


def test_cli_flags_alone(run_sync, s3_server, s3, bucket, make_tree):
    ws = make_tree({"public/index.html": "h", "public/pub/x.txt": "x"})
    put(s3, s3_server, bucket, "site/stale.txt", b"stale")
    args = ["--endpoint", s3_server.endpoint, "--bucket", bucket, "--source", "public", "--target", "/site",
            "--delete", "--acl", '{"pub/*": "public-read"}']
    proc = run_sync({"PLUGIN_ENDPOINT": None}, cwd=ws, args=args)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"site/index.html", "site/pub/x.txt"}
    assert grants(s3, s3_server, bucket, "site/pub/x.txt") == {(ALL_USERS, "READ")}
    assert grants(s3, s3_server, bucket, "site/index.html") == set()


# ---------------------------------------------------------------- credentials, help, version


@pytest.mark.parametrize("debug", [None, "1"], ids=["plain", "DEBUG=1"])
def test_plugin_keys_trimmed_and_secret_never_printed(run_sync, s3_server, s3, bucket, make_tree, debug):
    ws = make_tree({"a.txt": "a"})
    secret = "Zx9SecretValue/ForTests+0123456789abcdef"
    env = {
        "PLUGIN_BUCKET": bucket,
        "PLUGIN_ACCESS_KEY": "  AKIATESTKEY12345  \n",
        "PLUGIN_SECRET_KEY": f"\t{secret}  ",
        # Without the PLUGIN_* keys there would be no credentials at all.
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "DEBUG": debug,
    }
    proc = run_sync(env, cwd=ws)
    assert_ok(proc)
    assert keys_in(s3, s3_server, bucket) == {"a.txt"}
    assert_no_secret(proc, secret)
    if debug:
        assert proc.stderr.strip(), "DEBUG=1 should log something"


def test_help(run_sync, make_tree):
    proc = run_sync({}, cwd=make_tree({}), args=["--help"])
    assert proc.returncode == 0
    assert "PLUGIN_BUCKET" in proc.stdout
    assert "--dry-run" in proc.stdout


def test_version(run_sync, make_tree):
    proc = run_sync({}, cwd=make_tree({}), args=["--version"])
    assert proc.returncode == 0
    assert "botocore" in proc.stdout + proc.stderr
    assert re.search(r"\d+\.\d+", proc.stdout + proc.stderr)


def test_unknown_aws_profile_is_a_clear_settings_error(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    proc = run_sync({"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": str(src), "AWS_PROFILE": "no-such-profile",
                     "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, cwd=src)
    assert proc.returncode == 2, proc.stderr
    assert "no-such-profile" in proc.stderr and "Traceback" not in proc.stderr
    assert s3_server.ops(bucket) == {}
