"""On-the-fly compression (`compress`) end to end: the real `drone-s3-sync`
command against the recording moto server.

What is proved here, through the objects read back and the requests the
server received:

* a compressed object has Content-Encoding gzip or br, keeps the Content-Type
  of the original file, and its body decompresses to the file; the bytes are
  deterministic (the ETag is the MD5 of what `compress_bytes` gives);
* a run with no change is one ListObjectsV2 + one GetObject and compresses
  nothing (the DEBUG line counts compressions), also from a fresh checkout;
* a changed file, a rule switched from gzip to br and compression removed
  each re-upload exactly the files concerned;
* without the state object, an unchanged file is still never re-uploaded: the
  MD5 (or multipart ETag) of the compressed bytes matches the object's ETag;
* a dry run shows both sizes; a content_encoding rule for a compressed file
  is overridden with a warning; br without the Brotli package is refused
  before any request.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Dict

import brotli
import drone_run
from drone_run import EIGHT_MIB_PARTS, action_map, fresh_checkout, keys_of, ok, summary_counts

from conftest import state_key
from drone_s3_sync.compress import compress_bytes
from drone_s3_sync.report import human_bytes

MiB = 1024 * 1024
HTML = "".join(f"<section id='s{i}'><h2>Section {i}</h2><p>Some text that repeats, as pages do.</p></section>\n"
               for i in range(300))
CSS = "".join(f".c{i} {{ color: #{i:06x}; margin: {i % 7}px; }}\n" for i in range(400))
JS = "".join(f"export function f{i}(x) {{ return x * {i} + {i % 13}; }}\n" for i in range(400))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
FILES: Dict[str, Any] = {"index.html": HTML, "about/index.html": HTML.replace("Section", "Part"),
                         "css/site.css": CSS, "js/app.js": JS, "img/logo.png": PNG}
RULES = {".html": "br", ".css": "gzip", ".js": "gzip"}
COMPRESS_LINE = re.compile(r"compress: (\d+) of (\d+) file\(s\) with a compress rule compressed to compare")


def plugin_env(bucket: str, **settings: Any) -> Dict[str, str]:
    env = drone_run.plugin_env(bucket, ".", "site", **settings)
    env["DEBUG"] = "1"
    return env


def compressions(proc: Any) -> tuple:
    """(compressed, files with a rule) from the DEBUG line of a run."""
    found = COMPRESS_LINE.findall(proc.stderr)
    assert len(found) == 1, proc.stderr
    return int(found[0][0]), int(found[0][1])


def obj(s3: Any, s3_server: Any, bucket: str, key: str) -> Dict[str, Any]:
    with s3_server.paused():
        response = s3.get_object(Bucket=bucket, Key=key)
        body = response["Body"].read()  # botocore never decodes Content-Encoding: the stored bytes
    return {"body": body, "etag": response["ETag"].strip('"'), "type": response.get("ContentType"),
            "encoding": response.get("ContentEncoding"), "cache": response.get("CacheControl")}


def decoded(item: Dict[str, Any]) -> bytes:
    if item["encoding"] == "gzip":
        return gzip.decompress(item["body"])
    if item["encoding"] == "br":
        return brotli.decompress(item["body"])
    return item["body"]


def raw(content: Any) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def assert_only_list_and_state(s3_server: Any, bucket: str) -> None:
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1, "GetObject": 1}), s3_server.ops(bucket)
    assert keys_of(s3_server.requests, "GetObject") == [state_key("site/")]
    assert s3_server.writes() == []


def test_compressed_upload_then_no_change_runs_compress_nothing(s3_server, s3, bucket, make_tree, run_sync, tmp_path):
    src = make_tree(FILES)
    env = plugin_env(bucket, compress=RULES, cache_control={".css": "max-age=60"})

    first = ok(run_sync(env, cwd=src))
    assert compressions(first) == (4, 4)  # every new file with a rule; the PNG has none
    lines = action_map(first.stdout)
    html_in, html_out = len(raw(FILES["index.html"])), len(compress_bytes(raw(FILES["index.html"]), "br"))
    assert html_out < html_in / 4
    assert lines["site/index.html"] == ("upload", f"new, {human_bytes(html_in)} -> {human_bytes(html_out)} br")
    assert lines["site/css/site.css"][1].endswith(" gzip")
    assert lines["site/img/logo.png"] == ("upload", "new, 1.0 KiB")
    # One PutObject per file and the state object; one object read back (readback.py).
    assert s3_server.ops(bucket) == collections.Counter({"ListObjectsV2": 1, "PutObject": 6, "HeadObject": 1})
    expected = {"site/index.html": ("br", "text/html; charset=utf-8"),
                "site/about/index.html": ("br", "text/html; charset=utf-8"),
                "site/css/site.css": ("gzip", "text/css; charset=utf-8"),
                "site/js/app.js": ("gzip", "text/javascript; charset=utf-8"),
                "site/img/logo.png": (None, "image/png")}
    for key, (encoding, content_type) in expected.items():
        item = obj(s3, s3_server, bucket, key)
        original = raw(FILES[key[len("site/"):]])
        assert (item["encoding"], item["type"]) == (encoding, content_type), key
        assert decoded(item) == original, key
        # Deterministic bytes: exactly what the fixed levels give, so the ETag is their MD5.
        assert item["body"] == (compress_bytes(original, encoding) if encoding else original), key
        assert item["etag"] == hashlib.md5(item["body"]).hexdigest(), key
    assert obj(s3, s3_server, bucket, "site/css/site.css")["cache"] == "max-age=60"

    # No change: one listing, one GET of the state object, and nothing compressed.
    s3_server.reset()
    second = ok(run_sync(env, cwd=src))
    assert_only_list_and_state(s3_server, bucket)
    assert compressions(second) == (0, 4)
    assert summary_counts(second.stdout)["unchanged"] == 5

    # A fresh checkout (same bytes, new mtimes): the same.
    checkout = fresh_checkout(src, tmp_path / "checkout")
    s3_server.reset()
    third = ok(run_sync(env, cwd=checkout))
    assert_only_list_and_state(s3_server, bucket)
    assert compressions(third) == (0, 4)
    assert action_map(third.stdout) == {}


def test_changes_re_upload_only_the_files_concerned(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(FILES)
    env = plugin_env(bucket, compress=RULES)
    ok(run_sync(env, cwd=src))

    # One source file changed: only it is compressed and uploaded (then the state).
    (src / "js" / "app.js").write_text(JS + "export const extra = 1;\n", encoding="utf-8")
    s3_server.reset()
    changed = ok(run_sync(env, cwd=src))
    assert compressions(changed) == (1, 4)
    assert list(action_map(changed.stdout)) == ["site/js/app.js"]
    assert action_map(changed.stdout)["site/js/app.js"][1].startswith(("size changed, ", "content changed, "))
    assert [(r.op, r.key) for r in s3_server.writes(bucket)] == [("PutObject", "site/js/app.js"),
                                                                 ("PutObject", state_key("site/"))]
    item = obj(s3, s3_server, bucket, "site/js/app.js")
    assert item["encoding"] == "gzip" and decoded(item) == raw(JS + "export const extra = 1;\n")
    s3_server.reset()
    ok(run_sync(env, cwd=src))  # the state recorded the new object: settled again without compressing
    assert_only_list_and_state(s3_server, bucket)

    # .css switched from gzip to br: re-uploaded with br, nothing else.
    s3_server.reset()
    switched = ok(run_sync(plugin_env(bucket, compress={**RULES, ".css": "br"}), cwd=src))
    assert list(action_map(switched.stdout)) == ["site/css/site.css"]
    assert keys_of(s3_server.writes(bucket)) == sorted(["site/css/site.css", state_key("site/")])
    item = obj(s3, s3_server, bucket, "site/css/site.css")
    assert (item["encoding"], item["type"]) == ("br", "text/css; charset=utf-8")
    assert decoded(item) == raw(CSS)

    # Compression removed: every compressed file goes up as it is, without Content-Encoding.
    s3_server.reset()
    plain = ok(run_sync(plugin_env(bucket), cwd=src))
    assert sorted(action_map(plain.stdout)) == ["site/about/index.html", "site/css/site.css",
                                                "site/index.html", "site/js/app.js"]
    assert s3_server.ops(bucket)["PutObject"] == 5  # and the state object
    assert "CopyObject" not in s3_server.ops(bucket)  # never a header copy over compressed bytes
    for key in ("site/index.html", "site/css/site.css"):
        item = obj(s3, s3_server, bucket, key)
        assert item["encoding"] is None and item["body"] == raw(FILES[key[len("site/"):]]), key
    s3_server.reset()
    again = ok(run_sync(plugin_env(bucket), cwd=src))
    assert action_map(again.stdout) == {}
    assert_only_list_and_state(s3_server, bucket)


def test_without_state_the_compressed_bytes_match_the_etag(s3_server, s3, bucket, make_tree, run_sync):
    src = make_tree(FILES)
    env = plugin_env(bucket, compress=RULES, state=False)
    ok(run_sync(env, cwd=src))
    assert s3_server.ops(bucket)["PutObject"] == 5  # no state object

    s3_server.reset()
    second = ok(run_sync(env, cwd=src))
    assert compressions(second) == (4, 4)  # nothing records the sources: compressed to compare
    assert s3_server.writes() == []
    assert action_map(second.stdout) == {}
    assert summary_counts(second.stdout)["unchanged"] == 5
    # A HeadObject per object (headers and ACL decide between skip and update), never a GET of a body.
    ops = s3_server.ops(bucket)
    assert ops["ListObjectsV2"] == 1 and ops["HeadObject"] == 5 and "GetObject" not in ops

    # A changed file is found and uploaded alone.
    (src / "css" / "site.css").write_text(CSS.replace("color", "colour"), encoding="utf-8")
    s3_server.reset()
    third = ok(run_sync(env, cwd=src))
    assert list(action_map(third.stdout)) == ["site/css/site.css"]
    assert keys_of(s3_server.writes(bucket)) == ["site/css/site.css"]


def test_large_compressed_file_goes_up_in_parts_and_is_compressed_again(s3_server, s3, bucket, make_tree, run_sync):
    """Compressed output above 8 MiB is not kept in memory between the
    comparison and the upload: it is compressed again into a spooled file,
    and uploaded in parts. Without state, the multipart ETag of the compressed
    bytes settles the next run."""
    data = os.urandom(9 * MiB)  # incompressible: the gzip output is a little larger
    src = make_tree({"big.bin": data, "small.txt": "small " * 1000})
    env = plugin_env(bucket, compress="gzip", state=False, **EIGHT_MIB_PARTS)

    first = ok(run_sync(env, cwd=src))
    assert "compress: 1 file(s) compressed again for their upload" in first.stderr
    ops = s3_server.ops(bucket)
    assert (ops["CreateMultipartUpload"], ops["UploadPart"], ops["CompleteMultipartUpload"]) == (1, 2, 1)
    assert ops["PutObject"] == 1  # small.txt, from the bytes kept in memory
    item = obj(s3, s3_server, bucket, "site/big.bin")
    assert item["encoding"] == "gzip" and item["type"] == "application/octet-stream"
    assert item["etag"].endswith("-2") and gzip.decompress(item["body"]) == data
    assert item["body"] == compress_bytes(data, "gzip")
    with s3_server.paused():  # moto leaves a multipart object without an ACL; S3 makes it private
        s3.put_object_acl(Bucket=bucket, Key="site/big.bin", ACL="private")

    s3_server.reset()
    second = ok(run_sync(env, cwd=src))
    assert compressions(second) == (2, 2)
    assert s3_server.writes() == [] and action_map(second.stdout) == {}


def test_dry_run_shows_compressed_sizes_and_writes_nothing(s3_server, bucket, make_tree, run_sync):
    src = make_tree(FILES)
    proc = ok(run_sync(plugin_env(bucket, compress=".html,.css,.js", dry_run=True), cwd=src))
    lines = action_map(proc.stdout)
    for key in ("site/index.html", "site/css/site.css", "site/js/app.js"):
        assert re.fullmatch(r"new, \d+\.\d KiB -> \d+(\.\d KiB| B) gzip", lines[key][1]), lines[key]
        assert f"would upload   {key}  (" in proc.stdout
    assert lines["site/img/logo.png"][1] == "new, 1.0 KiB"
    assert s3_server.writes() == []


def test_content_encoding_rule_for_a_compressed_file_is_overridden_with_a_warning(s3_server, s3, bucket, make_tree,
                                                                                  run_sync):
    src = make_tree({"app.js": JS, "data.bin.gz": gzip.compress(b"data", mtime=0)})
    env = plugin_env(bucket, compress={".js": "gzip"}, content_encoding={".js": "identity", ".gz": "gzip"})
    proc = ok(run_sync(env, cwd=src))
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: PLUGIN_COMPRESS")]
    assert len(warnings) == 1 and "1 file(s) also match a content_encoding rule (site/app.js)" in warnings[0]
    item = obj(s3, s3_server, bucket, "site/app.js")
    assert item["encoding"] == "gzip" and decoded(item) == raw(JS)
    # A file without a compress rule keeps its content_encoding rule and its bytes.
    item = obj(s3, s3_server, bucket, "site/data.bin.gz")
    assert item["encoding"] == "gzip" and item["body"] == gzip.compress(b"data", mtime=0)


def test_br_without_the_brotli_package_is_refused_before_any_request(s3_server, bucket, make_tree, run_sync,
                                                                    tmp_path):
    shim = tmp_path / "no-brotli"
    shim.mkdir()
    (shim / "brotli.py").write_text("raise ImportError('Brotli is not installed here')\n")
    src = make_tree(FILES)
    s3_server.reset()
    env = plugin_env(bucket, compress={".html": "br"})
    env["PYTHONPATH"] = str(shim)
    proc = run_sync(env, cwd=src)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("drone-s3-sync: invalid setting PLUGIN_COMPRESS: br (brotli) needs the Brotli package, which is not "
            "installed: pip install 'drone-s3-sync[brotli]'") in proc.stderr
    assert s3_server.requests == []
    # gzip needs nothing more.
    env["PLUGIN_COMPRESS"] = "gzip"
    ok(run_sync(env, cwd=src))


def test_plain_gzip_compresses_every_file_and_none_keeps_some_as_they_are(s3_server, s3, bucket, make_tree, run_sync):
    """`compress: gzip` alone compresses every file; `none` in a map keeps some as they are."""
    src = make_tree({"a.txt": "text " * 50, "b.min.js": JS, "c.js": JS, "empty.txt": ""})
    ok(run_sync(plugin_env(bucket, compress={"*.min.js": "none", "*": "gzip"}), cwd=src))
    with s3_server.paused():
        listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="site/")["Contents"])
    assert listed == sorted(["site/a.txt", "site/b.min.js", "site/c.js", "site/empty.txt", state_key("site/")])
    assert obj(s3, s3_server, bucket, "site/b.min.js")["encoding"] is None
    for key, content in (("site/a.txt", "text " * 50), ("site/c.js", JS), ("site/empty.txt", "")):
        item = obj(s3, s3_server, bucket, key)
        assert item["encoding"] == "gzip" and decoded(item) == raw(content), key
    s3_server.reset()
    ok(run_sync(plugin_env(bucket, compress={"*.min.js": "none", "*": "gzip"}), cwd=src))
    assert_only_list_and_state(s3_server, bucket)


def test_source_is_never_modified(make_tree, run_sync, bucket, s3_server):
    src = make_tree(FILES)
    before = {p: p.read_bytes() for p in Path(src).rglob("*") if p.is_file()}
    ok(run_sync(plugin_env(bucket, compress=RULES), cwd=src))
    assert {p: p.read_bytes() for p in Path(src).rglob("*") if p.is_file()} == before
