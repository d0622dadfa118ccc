#!/usr/bin/env python3
"""Benchmark drone-s3-sync against aws-cli, s5cmd, rclone and s3cmd.

Run it through `scripts/bench` (which prepares .venv). Everything happens on
this machine: the data sets are generated under .bench/ (git-ignored), the S3
server runs on 127.0.0.1 with fake credentials, and every tool is pointed at
it explicitly. No real AWS account is ever touched. Two servers:

  moto   moto's S3 server (threaded werkzeug) behind a request counter: the
         most faithful, but it spends about as much CPU per request as the
         clients, on the same cores
  fast   scripts/fast_s3.py, an in-memory asyncio endpoint that costs far less
         CPU per request, with --latency-ms of waiting added to every request
         (like a round trip to real S3)

Per data set and tool, in a fresh bucket of its own:

  first     first upload of the generated tree
  nochange  the same tree again, nothing changed
  fresh     a fresh checkout: a copy of the tree, every file with a new mtime
            (newer than the objects in the bucket, as in a CI build), synced to
            the same bucket
  change    (site only) 1% of the files of that checkout changed (half of
            them keeping their size) and 1% deleted, synced with delete on

For each run: wall time of the tool's process, its CPU time (user + system of
the process and the children it waited for), the server's CPU, the requests
the server received by operation, and a check (listing only, no GetObject) that the bucket ends
identical to the source: same keys, same sizes, and the MD5 where the ETag is
one (single-part objects).

Timings vary on shared machines: compare tools within one run, use --runs for
medians, and never treat a single number as exact.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import unicodedata
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from s3ops import request_target, s3_operation  # noqa: E402  (shared with the test suite's server)
BENCH = ROOT / ".bench"
HOST = "127.0.0.1"
REGION = "us-east-1"
KEY_ID = "bench"
SECRET = "bench-secret"
MB = 1_000_000

TOOLS = ("aws", "s5cmd", "rclone", "s3cmd", "drone-s3-sync")
REFERENCE = ("aws", "s5cmd", "rclone", "s3cmd")
DATASETS = ("site", "artifacts")
SCENARIOS = ("first", "nochange", "fresh", "change")
SCENARIOS_OF = {"site": SCENARIOS, "artifacts": ("first", "nochange", "fresh")}
SCALE_SCENARIOS = ("first", "nochange")  # the --scale trees of tiny files
SERVERS = ("moto", "fast")
FAST_S3 = Path(__file__).resolve().parent / "fast_s3.py"


def scenarios_of(dataset: str) -> Tuple[str, ...]:
    return SCENARIOS_OF.get(dataset, SCALE_SCENARIOS)


def dataset_order(dataset: str) -> Tuple[int, int]:
    """Sort key: site, artifacts, then the scale trees by size."""
    if dataset in DATASETS:
        return DATASETS.index(dataset), 0
    return len(DATASETS), int(dataset.rpartition("-")[2] or 0) if dataset.rpartition("-")[2].isdigit() else 0
LABELS = {
    "first": "first upload",
    "nochange": "re-run, nothing changed",
    "fresh": "fresh checkout (same bytes, new mtimes)",
    "change": "1% changed + 1% deleted, delete on",
}
ADMIN = "/__bench__"


# =========================================================================
# The S3 server: moto behind a WSGI layer that counts requests by operation
# =========================================================================

def classify(environ: dict) -> str:
    method, path, query = request_target(environ)
    if path in ("", "/"):
        return "ListBuckets" if method == "GET" else f"{method} /"
    _, _, key = path[1:].partition("/")
    copy = {"x-amz-copy-source": "1"} if "HTTP_X_AMZ_COPY_SOURCE" in environ else {}
    return s3_operation(method, key or None, query, copy) or f"{method} {path}"


def _patch_moto() -> None:
    """moto (5.x) gives an object completed by a multipart upload without an
    x-amz-acl header no ACL at all, and then answers GetObjectAcl on it with a
    500. S3 answers with the owner's FULL_CONTROL (private); so does this."""
    try:
        from moto.s3 import responses
        from moto.s3.models import get_canned_acl
    except ImportError:
        return
    original = responses.S3Response.__dict__.get("_acl_to_dict")
    if not isinstance(original, staticmethod):
        return  # a moto whose code differs: leave it alone
    to_dict = original.__func__

    def _acl_to_dict(acl):
        return to_dict(acl if acl is not None else get_canned_acl("private"))

    responses.S3Response._acl_to_dict = staticmethod(_acl_to_dict)


def serve(port_file: str, parent: int) -> None:
    """The server process: moto's app wrapped by a counter; port written to port_file."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _patch_moto()
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()
    counts: Dict[str, int] = {}
    failed: Dict[str, int] = {}
    received: Dict[str, int] = {}

    def reply(start_response, body: dict):
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def counting_app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN):
            with lock:
                body = {"ops": dict(counts), "failed": dict(failed), "bytes": dict(received)}
                if path == ADMIN + "/reset":
                    counts.clear()
                    failed.clear()
                    received.clear()
            return reply(start_response, body)
        try:
            op = classify(environ)
        except Exception as exc:  # counting must never break the server
            op = f"unparsed {type(exc).__name__}"
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        with lock:
            counts[op] = counts.get(op, 0) + 1
            received[op] = received.get(op, 0) + size

        def counting_start_response(status, *args):
            if not status.startswith(("2", "3")):
                with lock:
                    failed[op] = failed.get(op, 0) + 1
            return start_response(status, *args)

        return app(environ, counting_start_response)

    server = make_server(HOST, 0, counting_app, threaded=True)
    tmp = port_file + ".tmp"
    Path(tmp).write_text(str(server.server_address[1]))
    os.replace(tmp, port_file)

    def watchdog() -> None:  # never outlive the benchmark
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    server.serve_forever()


class Server:
    def __init__(self, log_path: Path, kind: str = "moto", latency_ms: float = 0.0):
        self.log_path = log_path
        self.kind = kind
        self.latency_ms = latency_ms
        self.proc: Optional[subprocess.Popen] = None
        self.endpoint = ""

    def argv(self, port_file: Path) -> List[str]:
        if self.kind == "fast":
            return [sys.executable, str(FAST_S3), "--port-file", str(port_file), "--parent", str(os.getpid()),
                    "--latency-ms", f"{self.latency_ms:g}"]
        return [sys.executable, str(Path(__file__).resolve()), "--serve", str(port_file), str(os.getpid())]

    def describe(self) -> str:
        if self.kind == "fast":
            return (f"scripts/fast_s3.py (in-memory, asyncio, one process), {self.latency_ms:g} ms latency added "
                    "to every request, 127.0.0.1")
        try:
            import moto
            version = moto.__version__
        except Exception:
            version = "?"
        return f"moto {version} (threaded werkzeug, 127.0.0.1)"

    def start(self) -> None:
        port_file = BENCH / "server.port"
        with contextlib.suppress(FileNotFoundError):
            port_file.unlink()
        log = open(self.log_path, "wb")
        env = clean_env(BENCH / "home")
        self.proc = subprocess.Popen(self.argv(port_file), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: the S3 server did not start; see {self.log_path}")
            time.sleep(0.05)
        self.endpoint = f"http://{HOST}:{int(port_file.read_text())}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _admin(self, what: str) -> dict:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.endpoint}{ADMIN}/{what}", timeout=30) as resp:
            return json.loads(resp.read())

    def counters(self) -> dict:
        return self._admin("stats")

    def reset(self) -> dict:
        return self._admin("reset")


def s3_client(endpoint: str):
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session()
    core.set_config_variable("config_file", "/dev/null")
    core.set_config_variable("credentials_file", "/dev/null")
    session = boto3.session.Session(botocore_session=core)
    return session.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET,
                          config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                        retries={"max_attempts": 3, "mode": "standard"},
                                        request_checksum_calculation="when_required",
                                        response_checksum_validation="when_required"))


def list_bucket(s3, bucket: str) -> Dict[str, Tuple[int, str]]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = (obj["Size"], obj.get("ETag", "").strip('"').lower())
    return out


def empty_bucket(s3, bucket: str) -> None:
    with contextlib.suppress(Exception):
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", ()):
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    with contextlib.suppress(Exception):
        keys = list(list_bucket(s3, bucket))
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                     "Quiet": True})
        s3.delete_bucket(Bucket=bucket)


# =========================================================================
# Data sets
# =========================================================================

Manifest = Dict[str, Tuple[int, str]]  # key -> (size, md5 hex)

_WORDS = ("the of and to in is for on with as by at from that this be are it or an was not but have "
          "deploy build release bucket object static site page section header footer button layout grid "
          "function const return export import async await module class style color margin padding "
          "width height display flex border radius font weight value data item list index title").split()

_SPECIAL = ("Über uns", "café menu", "naïve résumé", "日本語 ページ", "Ελληνικά νέα", "año nuevo",
            "release notes", "my photo", "Zürich office", "smörgåsbord list", "Привет мир", "crème brûlée")
_KINDS = (  # extension, share of files, mean size in bytes before scaling, text?
    ("html", 0.34, 14_000, True),
    ("json", 0.14, 4_000, True),
    ("svg", 0.14, 5_000, True),
    ("png", 0.16, 34_000, False),
    ("js", 0.13, 30_000, True),
    ("css", 0.09, 16_000, True),
)


def _text_pool(rng: random.Random, size: int = 1 << 21) -> bytes:
    parts, total = [], 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) + "\n"
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:size]


def _site_path(rng: random.Random, ext: str, i: int) -> str:
    year, month = rng.randint(2016, 2025), rng.randint(1, 12)
    slug = "-".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4)))
    if ext == "html":
        r = rng.random()
        if r < 0.5:
            return f"blog/{year}/{month:02d}/{slug}-{i}/index.html"
        if r < 0.85:
            section = rng.choice(("guide", "reference", "api", "tutorials", "Getting Started", "faq"))
            return f"docs/{section}/{rng.choice(_WORDS)}/{slug}-{i}.html"
        return f"{rng.choice(('about', 'products', 'team', 'legal', 'careers'))}/{slug}-{i}.html"
    if ext == "json":
        if rng.random() < 0.7:
            return f"api/v1/{rng.choice(('posts', 'users', 'tags', 'pages'))}/{i}.json"
        return f"data/{slug}-{i}.json"
    if ext == "svg":
        return f"assets/icons/{rng.choice(('ui', 'brand', 'flags', 'social'))}/{slug}-{i}.svg"
    if ext == "png":
        if rng.random() < 0.6:
            return f"assets/img/{year}/{slug}-{i}.png"
        return f"blog/{year}/{month:02d}/images/{slug}-{i}.png"
    digest = hashlib.sha1(f"{slug}{i}".encode()).hexdigest()[:8]
    if ext == "js":
        sub = "vendor/" if rng.random() < 0.3 else ""
        return f"assets/js/{sub}{slug}-{i}.{digest}.js"
    return f"assets/css/{slug}-{i}.{digest}.css"


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


def _content(rng: random.Random, pool: bytes, ext: str, text: bool, size: int, tag: str) -> bytes:
    if not text:
        head = b"\x89PNG\r\n\x1a\n" + tag.encode()
        return (head + rng.randbytes(max(0, size - len(head))))[:size]
    head = {"html": f"<!doctype html><!-- {tag} -->\n", "css": f"/* {tag} */\n", "js": f"// {tag}\n",
            "svg": f'<svg xmlns="http://www.w3.org/2000/svg"><!-- {tag} -->\n',
            "json": f'{{"id": "{tag}", "body": "\n'}[ext].encode()
    out = bytearray(head)
    while len(out) < size:
        start = rng.randrange(len(pool) - 4096)
        out += pool[start:start + min(size - len(out), rng.randint(512, 65536))]
    return bytes(out[:size])


@dataclass
class DataSet:
    name: str
    root: Path
    manifest: Manifest
    description: str


def _cached(root: Path) -> Optional[Manifest]:
    done = root.parent / (root.name + ".manifest.json")
    if root.is_dir() and done.exists():
        return {k: (v[0], v[1]) for k, v in json.loads(done.read_text(encoding="utf-8")).items()}
    return None


def _store(root: Path, manifest: Manifest) -> None:
    done = root.parent / (root.name + ".manifest.json")
    done.write_text(json.dumps(manifest, ensure_ascii=False, sort_keys=True), encoding="utf-8")


def make_site(files: int, total_mb: float, seed: int) -> DataSet:
    root = BENCH / "data" / f"site-{files}f-{total_mb:g}mb-s{seed}"
    manifest = _cached(root)
    if manifest is None:
        shutil.rmtree(root, ignore_errors=True)
        (root.parent / (root.name + ".manifest.json")).unlink(missing_ok=True)
        rng = random.Random(f"site-{seed}")
        pool = _text_pool(rng)
        kinds = rng.choices(_KINDS, weights=[k[1] for k in _KINDS], k=files)
        raw = [rng.lognormvariate(math.log(k[2]) - 0.45, 0.95) for k in kinds]
        scale = total_mb * MB / sum(raw)
        sizes = [max(64, int(r * scale)) for r in raw]
        paths, seen = [], set()
        for i, kind in enumerate(kinds):
            rel = _site_path(rng, kind[0], i)
            if rng.random() < 0.02:  # names with spaces and non-ASCII characters
                rel = f"{rel.rsplit('/', 1)[0]}/{rng.choice(_SPECIAL)} {i}.{kind[0]}"
            rel = unicodedata.normalize("NFC", rel)
            while rel in seen:
                rel = rel.replace(".", f"-{i}.", 1)
            seen.add(rel)
            paths.append(rel)
        print(f"bench: generating the site data set ({files} files, {total_mb:g} MB) in {root} ...",
              file=sys.stderr, flush=True)
        manifest = {}
        for i, (rel, kind, size) in enumerate(zip(paths, kinds, sizes)):
            data = _content(rng, pool, kind[0], kind[3], size, f"{rel} #{i}")
            manifest[rel] = (len(data), _write(root / rel, data))
        _store(root, manifest)
    total = sum(s for s, _ in manifest.values())
    special = sum(1 for k in manifest if not k.isascii() or " " in k)
    exts = sorted({k.rsplit(".", 1)[-1] for k in manifest})
    desc = (f"static site: {len(manifest):,} files, {total / MB:.1f} MB, nested folders, "
            f"{'/'.join(exts)}, {special} names with spaces or non-ASCII")
    return DataSet("site", root, manifest, desc)


_ARTIFACT_NAMES = (
    "app-2.14.0-linux-amd64.tar.gz", "app-2.14.0-linux-arm64.tar.gz", "app-2.14.0-darwin-amd64.tar.gz",
    "app-2.14.0-darwin-arm64.tar.gz", "app-2.14.0-windows-amd64.zip", "app_2.14.0_amd64.deb",
    "app-2.14.0-1.x86_64.rpm", "app-2.14.0-py3-none-any.whl", "app-2.14.0-src.tar.gz",
    "app-2.14.0-debug-symbols.tar.xz", "app-2.14.0-image.oci.tar", "app-2.14.0-x86_64.AppImage",
)


def make_artifacts(count: int, mb_min: float, mb_max: float, seed: int) -> DataSet:
    root = BENCH / "data" / f"artifacts-{count}f-{mb_min:g}-{mb_max:g}mb-s{seed}"
    manifest = _cached(root)
    if manifest is None:
        shutil.rmtree(root, ignore_errors=True)
        rng = random.Random(f"artifacts-{seed}")
        lo, hi = min(mb_min, mb_max), max(mb_min, mb_max)
        sizes = [int((lo + (hi - lo) * ((i + 0.5) / count) ** 0.8) * MB * rng.uniform(0.97, 1.0))
                 for i in range(count)]
        rng.shuffle(sizes)
        names = [(_ARTIFACT_NAMES[i] if i < len(_ARTIFACT_NAMES) else f"app-2.14.0-extra-{i}.bin")
                 for i in range(count)]
        print(f"bench: generating the artifacts data set ({count} files, {lo:g}-{hi:g} MB) in {root} ...",
              file=sys.stderr, flush=True)
        manifest = {}
        for name, size in zip(names, sizes):
            rel = f"releases/v2.14.0/{name}" if not name.endswith(("AppImage", ".tar")) else f"images/{name}"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            md5 = hashlib.md5()
            with open(path, "wb") as out:
                left = size
                while left:
                    chunk = rng.randbytes(min(left, 1 << 22))
                    md5.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
            manifest[rel] = (size, md5.hexdigest())
        _store(root, manifest)
    sizes = sorted(s for s, _ in manifest.values())
    desc = (f"build artifacts: {len(sizes)} files, {sizes[0] / MB:.0f}-{sizes[-1] / MB:.0f} MB, "
            f"{sum(sizes) / MB:.0f} MB in all, incompressible")
    return DataSet("artifacts", root, manifest, desc)


def fresh_checkout(src: Path, dst: Path) -> float:
    """Copy src to dst (new inodes) and give every file the same new mtime.

    The mtime is a whole second later than anything already in the bucket; the
    caller waits past that second before syncing, so objects written by the
    sync are newer than the checkout. That is what a CI build sees: the checkout
    is newer than the last deploy, older than this one.
    """
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    stamp = float(math.floor(time.time()) + 1)
    for dirpath, _, names in os.walk(dst):
        for name in names:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
    return stamp


def wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(min(0.2, max(0.0, t - time.time())))


def apply_change(root: Path, manifest: Manifest, seed: int) -> Tuple[Manifest, int, int]:
    """1% of the files changed (half keep their size), 1% deleted."""
    rng = random.Random(f"change-{seed}")
    keys = sorted(manifest)
    n = max(1, round(len(keys) / 100))
    picked = rng.sample(keys, min(len(keys), 2 * n))
    changed, deleted = picked[:n], picked[n:]
    out = dict(manifest)
    for i, key in enumerate(changed):
        path = root / key
        data = bytearray(path.read_bytes())
        marker = f"changed {i}".encode()
        if i % 2 == 0 and len(data) > len(marker) + 16:  # same size, different bytes
            pos = len(data) // 2
            data[pos:pos + len(marker)] = marker
        else:
            data += b"\n" + marker + b"\n"
        out[key] = (len(data), _write(path, bytes(data)))
    for key in deleted:
        (root / key).unlink()
        del out[key]
    return out, len(changed), len(deleted)


# =========================================================================
# Tools
# =========================================================================

def clean_env(home: Path) -> Dict[str, str]:
    """Only what a tool needs: fake credentials, no ~/.aws, no proxies."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "S3_SYNC_CRT" in os.environ:  # S3_SYNC_CRT=0: drone-s3-sync's uploads on s3transfer, to compare the paths
        env["S3_SYNC_CRT"] = os.environ["S3_SYNC_CRT"]
    return env


@dataclass
class Tool:
    name: str
    binary: str
    version: str
    # (source dir, bucket, endpoint) -> (argv, extra env)
    command: Callable[[Path, str, str], Tuple[List[str], Dict[str, str]]]
    shown: str  # the command line, for the report


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             env=clean_env(BENCH / "home"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    lines = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return lines[0].strip() if lines else "?"


def find_tools(wanted: Sequence[str]) -> Tuple[List[Tool], List[str]]:
    venv_bin = Path(sys.executable).parent
    home = BENCH / "home"
    home.mkdir(parents=True, exist_ok=True)
    s3cfg = home / "s3cfg.empty"
    s3cfg.write_text("")
    rclone_conf = home / "rclone.conf"
    rclone_conf.write_text("")
    tools, missing = [], []

    def which(name: str, *prefer: Path) -> Optional[str]:
        for p in prefer:
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
        return shutil.which(name)

    for name in wanted:
        if name == "aws":
            # Debian's awscli (/usr/bin/aws) first, as in the issue; else any aws on PATH.
            exe = which("aws", Path("/usr/bin/aws"))
            if exe:
                tools.append(Tool(name, exe, _version([exe, "--version"]),
                                  lambda src, b, ep, exe=exe: ([exe, "s3", "sync", f"{src}/", f"s3://{b}/",
                                                                "--delete", "--only-show-errors",
                                                                "--endpoint-url", ep], {}),
                                  "aws s3 sync DIR/ s3://BUCKET/ --delete --only-show-errors --endpoint-url URL"))
                continue
        elif name == "s5cmd":
            exe = which("s5cmd", venv_bin / "s5cmd")
            if exe:
                tools.append(Tool(name, exe, "s5cmd " + _version([exe, "version"]),
                                  lambda src, b, ep, exe=exe: ([exe, "--endpoint-url", ep, "--log", "error",
                                                                "sync", "--delete", f"{src}/", f"s3://{b}/"], {}),
                                  "s5cmd --endpoint-url URL --log error sync --delete DIR/ s3://BUCKET/"))
                continue
        elif name == "rclone":
            exe = which("rclone")
            if exe:
                def rclone(src, b, ep, exe=exe):
                    env = {"RCLONE_CONFIG": str(rclone_conf),
                           "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
                           "RCLONE_CONFIG_BENCH_ENDPOINT": ep, "RCLONE_CONFIG_BENCH_REGION": REGION,
                           "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY_ID,
                           "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
                           "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true"}
                    return [exe, "sync", str(src), f"bench:{b}"], env
                tools.append(Tool(name, exe, _version([exe, "version"]), rclone,
                                  "rclone sync DIR bench:BUCKET  (remote from RCLONE_CONFIG_BENCH_* variables; "
                                  "default compare: size + modtime)"))
                continue
        elif name == "s3cmd":
            exe = which("s3cmd")
            if exe:
                def s3cmd(src, b, ep, exe=exe):
                    hostport = ep.split("://", 1)[1]
                    return [exe, "-c", str(s3cfg), f"--access_key={KEY_ID}", f"--secret_key={SECRET}",
                            f"--host={hostport}", f"--host-bucket={hostport}", "--no-ssl", f"--region={REGION}",
                            "--quiet", "sync", "--delete-removed", f"{src}/", f"s3://{b}/"], {}
                tools.append(Tool(name, exe, _version([exe, "--version"]), s3cmd,
                                  "s3cmd -c EMPTY --host=HOST:PORT --host-bucket=HOST:PORT --no-ssl --quiet "
                                  "sync --delete-removed DIR/ s3://BUCKET/"))
                continue
        elif name == "drone-s3-sync":
            exe = which("drone-s3-sync", venv_bin / "drone-s3-sync")
            if exe:
                def drone(src, b, ep, exe=exe):
                    return [exe], {"PLUGIN_BUCKET": b, "PLUGIN_SOURCE": str(src), "PLUGIN_TARGET": "/",
                                   "PLUGIN_DELETE": "true", "PLUGIN_ENDPOINT": ep, "PLUGIN_PATH_STYLE": "true",
                                   "PLUGIN_QUIET": "true", "PLUGIN_REGION": REGION}
                tools.append(Tool(name, exe, _version([exe, "--version"]), drone,
                                  "PLUGIN_BUCKET=BUCKET PLUGIN_SOURCE=DIR PLUGIN_DELETE=true PLUGIN_ENDPOINT=URL "
                                  "PLUGIN_PATH_STYLE=true PLUGIN_QUIET=true drone-s3-sync"))
                continue
        else:
            raise SystemExit(f"bench: unknown tool {name!r} (known: {', '.join(TOOLS)})")
        missing.append(name)
    return tools, missing


def compile_package() -> None:
    """Write the bytecode of the package under test, as `pip install` does for
    an installed one: the tools run with PYTHONDONTWRITEBYTECODE=1, and an
    editable install of a fresh checkout would otherwise compile every module
    on every run."""
    import compileall

    package = ROOT / "drone_s3_sync"
    if os.access(package, os.W_OK):
        compileall.compile_dir(str(package), quiet=1)


def install_tools(missing: Sequence[str]) -> None:
    packages = {"aws": "awscli", "rclone": "rclone", "s3cmd": "s3cmd"}
    wanted = [packages[m] for m in missing if m in packages]
    if not wanted:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"bench: cannot install {', '.join(wanted)} (needs root and apt-get)", file=sys.stderr)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"bench: apt-get install {' '.join(wanted)}", file=sys.stderr, flush=True)
    subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *wanted], env=env, stdout=subprocess.DEVNULL)


# =========================================================================
# Running
# =========================================================================

@dataclass
class Result:
    seconds: float = 0.0
    ops: Dict[str, int] = field(default_factory=dict)
    failed: Dict[str, int] = field(default_factory=dict)
    bytes: Dict[str, int] = field(default_factory=dict)
    error: str = ""  # the tool failed: exit code or timeout, with the log
    mismatch: str = ""  # the bucket does not match the source
    rss_mb: Optional[float] = None  # peak RSS of the command (when measured)
    cpu_s: Optional[float] = None  # user + system CPU of the command (when measured)
    server_cpu_s: Optional[float] = None  # CPU the S3 server process used during the run
    client_cpu_s: Optional[float] = None  # user + system CPU of the tool's process tree (always measured)

    @property
    def requests(self) -> int:
        return sum(self.ops.values())


# Objects a tool keeps next to the files on purpose; not counted as "extra".
OWN_OBJECTS = {"drone-s3-sync": (".drone-s3-sync-state.json.gz",)}


def verify(s3, bucket: str, manifest: Manifest, ignore: Sequence[str] = ()) -> str:
    """'' when the bucket holds exactly the manifest (listing only, no GetObject)."""
    listing = list_bucket(s3, bucket)
    for key in ignore:
        listing.pop(key, None)
    missing = sorted(set(manifest) - set(listing))
    extra = sorted(set(listing) - set(manifest))
    differ = []
    for key in sorted(set(manifest) & set(listing)):
        size, md5 = manifest[key]
        rsize, etag = listing[key]
        if rsize != size or ("-" not in etag and etag != md5):
            differ.append(key)
    problems = []
    for what, keys in (("missing", missing), ("extra", extra), ("different", differ)):
        if keys:
            problems.append(f"{len(keys)} {what} (e.g. {keys[0]!r})")
    return "; ".join(problems)


_RUSAGE_WRAPPER = """
import os, resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    out.write(f"Maximum resident set size (kbytes): {ru.ru_maxrss}\\n")
    out.write(f"User time (seconds): {ru.ru_utime}\\nSystem time (seconds): {ru.ru_stime}\\n")
sys.exit(code if code >= 0 else 128 - code)
"""


def measured(argv: List[str], report: Path) -> List[str]:
    """argv run under GNU time -v (peak RSS, CPU) written to `report`; without
    /usr/bin/time, a small Python parent reads getrusage(RUSAGE_CHILDREN)."""
    gnu = shutil.which("time", path="/usr/bin:/bin")
    if gnu:
        return [gnu, "-v", "-o", str(report), *argv]
    return [sys.executable, "-c", _RUSAGE_WRAPPER, str(report), *argv]


def parse_rusage(report: Path) -> Tuple[Optional[float], Optional[float]]:
    """(peak RSS in MB, user + system CPU seconds) from a `measured` report."""
    rss = cpu = None
    with contextlib.suppress(OSError):
        for line in report.read_text(errors="replace").splitlines():
            name, _, value = line.strip().rpartition(": ")
            with contextlib.suppress(ValueError):
                if name == "Maximum resident set size (kbytes)":
                    rss = int(value) * 1024 / MB
                elif name in ("User time (seconds)", "System time (seconds)"):
                    cpu = (cpu or 0.0) + float(value)
    return rss, cpu


def process_cpu(pid: Optional[int]) -> Optional[float]:
    """CPU seconds (user + system, all threads) a process has used so far."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_since(before: "resource.struct_rusage") -> float:
    """User + system CPU of the child processes reaped since `before` was taken."""
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (now.ru_utime - before.ru_utime) + (now.ru_stime - before.ru_stime)


def run_tool(tool: Tool, src: Path, bucket: str, server: Server, s3, manifest: Manifest, log: Path,
             timeout: float, extra_env: Optional[Dict[str, str]] = None, measure: bool = False) -> Result:
    argv, extra = tool.command(src, bucket, server.endpoint)
    env = clean_env(BENCH / "home")
    env.update(extra)
    env.update(extra_env or {})
    log.parent.mkdir(parents=True, exist_ok=True)
    rusage = log.with_suffix(".rusage")
    if measure:
        rusage.unlink(missing_ok=True)
        argv = measured(argv, rusage)
    result = Result()
    server.reset()
    server_cpu = process_cpu(server.proc.pid if server.proc else None)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(BENCH / "work"), start_new_session=True)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
        except OSError as exc:
            code, result.error = -1, f"cannot start: {exc}"
        result.seconds = time.perf_counter() - started
    # The only child reaped in between is the tool (with the children it waited for).
    result.client_cpu_s = children_cpu_since(children)
    after = process_cpu(server.proc.pid if server.proc else None)
    if server_cpu is not None and after is not None:
        result.server_cpu_s = after - server_cpu
    if measure:
        result.rss_mb, result.cpu_s = parse_rusage(rusage)
    stats = server.counters()
    result.ops, result.failed, result.bytes = stats["ops"], stats["failed"], stats["bytes"]
    if code is None:
        result.error = f"timed out after {timeout:g} s; log: {log.relative_to(ROOT)}"
    elif code != 0 and not result.error:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        result.error = f"exit {code}: {tail[0][:200] if tail else ''}; log: {log.relative_to(ROOT)}"
    if not result.error:
        result.mismatch = verify(s3, bucket, manifest, OWN_OBJECTS.get(tool.name, ()))
    return result


def run_all(args, tools: List[Tool], datasets: List[DataSet], selected: Dict[str, List[str]],
            server: Server) -> Dict[Tuple[str, str, str], List[Result]]:
    s3 = s3_client(server.endpoint)
    results: Dict[Tuple[str, str, str], List[Result]] = {}
    work = BENCH / "work"
    work.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for run in range(args.runs):
        order = tools[run % len(tools):] + tools[:run % len(tools)]  # rotate: no tool always goes first
        for ds in datasets:
            wanted = selected[ds.name]
            if not wanted:
                continue
            last = max(SCENARIOS.index(s) for s in wanted)
            steps = [s for s in scenarios_of(ds.name) if SCENARIOS.index(s) <= last
                     and (s in wanted or s != "nochange")]  # the others only set up the state
            for tool in order:
                bucket = re.sub(r"[^a-z0-9-]", "-", f"bench-{ds.name}-{tool.name}-r{run + 1}-{stamp}".lower())
                s3.create_bucket(Bucket=bucket)
                checkout = work / f"{ds.name}-{tool.name}"
                src, manifest = ds.root, ds.manifest
                try:
                    for step in steps:
                        note = ""
                        if step == "fresh":
                            wait_until(fresh_checkout(ds.root, checkout) + 1.05)
                            src = checkout
                        elif step == "change":
                            time.sleep(1.1)  # changed files are newer than the objects by a clear second
                            manifest, n_changed, n_deleted = apply_change(checkout, manifest, args.seed)
                            note = f" ({n_changed} changed, {n_deleted} deleted)"
                        log = BENCH / "logs" / stamp / f"r{run + 1}-{ds.name}-{step}-{tool.name}.log"
                        res = run_tool(tool, src, bucket, server, s3, manifest, log, args.timeout)
                        if step in wanted:
                            results.setdefault((ds.name, step, tool.name), []).append(res)
                        status = ("ERROR " + res.error if res.error else
                                  "MISMATCH " + res.mismatch if res.mismatch else "ok")
                        print(f"[run {run + 1}/{args.runs}] {ds.name:9} {step:8} {tool.name:13} "
                              f"{res.seconds:7.2f} s {res.requests:7,} requests  "
                              f"cpu {res.client_cpu_s or 0:6.2f} s / server {res.server_cpu_s or 0:6.2f} s  "
                              f"{status}{note}"
                              + ("" if step in wanted else "  (setup, not reported)"),
                              file=sys.stderr, flush=True)
                        if res.error and step != steps[-1]:
                            # The next steps would start from an unknown state.
                            for later in steps[steps.index(step) + 1:]:
                                if later in wanted:
                                    results.setdefault((ds.name, later, tool.name), []).append(
                                        Result(error=f"skipped: {step} failed"))
                            break
                finally:
                    empty_bucket(s3, bucket)
                    shutil.rmtree(checkout, ignore_errors=True)
    return results


# =========================================================================
# Report
# =========================================================================

OP_ORDER = ("ListObjectsV2", "ListObjects", "HeadObject", "GetObjectAcl", "GetObject", "PutObject",
            "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject", "UploadPartCopy",
            "PutObjectAcl", "DeleteObjects", "DeleteObject", "HeadBucket", "GetBucketLocation", "CreateBucket")
WRITE_OPS = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject",
             "UploadPartCopy", "PutObjectAcl", "DeleteObjects", "DeleteObject", "AbortMultipartUpload")


@dataclass
class Cell:
    seconds: Optional[float]
    requests: Optional[float]
    ops: Dict[str, float]
    bytes_sent: float
    text: str
    trusted: bool  # succeeded and the bucket matched: may count as "best"
    client_cpu: Optional[float] = None  # medians, seconds
    server_cpu: Optional[float] = None


def summarize(runs: List[Result]) -> Cell:
    good = [r for r in runs if not r.error]
    if not good:
        return Cell(None, None, {}, 0, "error", False)
    secs = statistics.median(r.seconds for r in good)
    reqs = statistics.median(r.requests for r in good)
    names = sorted({op for r in good for op in r.ops})
    ops = {op: statistics.median(r.ops.get(op, 0) for r in good) for op in names}
    sent = statistics.median(sum(r.bytes.values()) for r in good)
    text = f"{secs:.1f} s ({_n(reqs)})" if secs >= 1 else f"{secs:.2f} s ({_n(reqs)})"
    bad = [r for r in good if r.mismatch]
    if bad:
        text += " MISMATCH"
    if len(good) < len(runs):
        text += f" ({len(runs) - len(good)}/{len(runs)} failed)"
    client = [r.client_cpu_s for r in good if r.client_cpu_s is not None]
    server = [r.server_cpu_s for r in good if r.server_cpu_s is not None]
    return Cell(secs, reqs, ops, sent, text, not bad, statistics.median(client) if client else None,
                statistics.median(server) if server else None)


PER_REQUEST_FROM = 100  # fewer requests: the CPU is start-up and local work, not a cost per request


def cpu_text(seconds: Optional[float], requests: Optional[float]) -> str:
    """'3.7 s (0.74 ms/req)': CPU time, and its share per request where there are enough of them."""
    if seconds is None:
        return "-"
    text = f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"
    if requests and requests >= PER_REQUEST_FROM:
        text += f" ({seconds / requests * 1000:.2f} ms/req)"
    return text


def server_cost(results: Dict[Tuple[str, str, str], List[Result]]) -> Tuple[float, int]:
    """(server CPU seconds, requests) summed over every measured run."""
    runs = [r for rs in results.values() for r in rs if r.server_cpu_s is not None and not r.error]
    return sum(r.server_cpu_s or 0.0 for r in runs), sum(r.requests for r in runs)


def _n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _ops_text(ops: Dict[str, float]) -> str:
    order = {op: i for i, op in enumerate(OP_ORDER)}
    items = sorted(((op, n) for op, n in ops.items() if n), key=lambda kv: (order.get(kv[0], 99), kv[0]))
    return ", ".join(f"{op} {_n(n)}" for op, n in items) or "-"


def per_tool_table(title: str, names: List[str], rows: list, text: Callable[[Cell], str],
                   cells: Dict[Tuple[str, str, str], Cell]) -> List[str]:
    """A markdown table with a row per scenario and a column per tool, after `title`."""
    out = [title, "", "| scenario | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for ds, s in rows:
        out.append("| " + " | ".join([f"{ds.name}, {LABELS[s]}"] + [text(cells[(ds.name, s, n)]) for n in names])
                   + " |")
    out.append("")
    return out


def render(args, tools: List[Tool], missing: List[str], datasets: List[DataSet],
           results: Dict[Tuple[str, str, str], List[Result]], info: List[Tuple[str, str]]) -> str:
    names = [t.name for t in tools]
    refs = [n for n in names if n in REFERENCE]
    ours = "drone-s3-sync" in names
    rows = [(ds, s) for ds in datasets for s in scenarios_of(ds.name) if (ds.name, s, names[0]) in results
            or any((ds.name, s, n) in results for n in names)]
    cells = {(ds.name, s, n): summarize(results.get((ds.name, s, n), [])) for ds, s in rows for n in names}
    out = []
    med = " (medians of %d runs)" % args.runs if args.runs > 1 else ""
    out.append(f"Wall time of the command and requests received by the server{med}; every tool in its own "
               f"fresh bucket, on {getattr(args, 'server_text', 'moto')}.")
    out.append("")
    header = ["scenario"] + names + (["drone-s3-sync vs best"] if ours and refs else [])
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for ds, s in rows:
        line = [f"{ds.name}, {LABELS[s]}"] + [cells[(ds.name, s, n)].text for n in names]
        if ours and refs:
            mine = cells[(ds.name, s, "drone-s3-sync")]
            best = min(((cells[(ds.name, s, n)].seconds, n) for n in refs
                        if cells[(ds.name, s, n)].trusted and cells[(ds.name, s, n)].seconds is not None),
                       default=None)
            if mine.seconds is None or best is None:
                line.append("-")
            else:
                line.append(f"{mine.seconds / best[0]:.2f}x best ({best[1]})")
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    out += per_tool_table("Client CPU: user + system time of the tool's process (and the children it waited for), "
                          f"and per request received by the server (shown from {PER_REQUEST_FROM} requests up):",
                          names, rows, lambda c: cpu_text(c.client_cpu, c.requests), cells)
    out += per_tool_table("Server CPU during the same runs (the S3 server process, from /proc), and per request:",
                          names, rows, lambda c: cpu_text(c.server_cpu, c.requests), cells)
    cpu, count = server_cost(results)
    if count:
        out.append(f"Server in all: {count:,} requests, {cpu:.2f} s CPU, {cpu / count * 1000:.3f} ms per request "
                   "(every reported run; /proc counts CPU in clock ticks of 10 ms, so small cells are coarse).")
        out.append("")
    if ours:
        ops_seen = []
        for ds, s in rows:
            for op in cells[(ds.name, s, "drone-s3-sync")].ops:
                if op not in ops_seen:
                    ops_seen.append(op)
        order = {op: i for i, op in enumerate(OP_ORDER)}
        ops_seen.sort(key=lambda op: (order.get(op, 99), op))
        out.append("drone-s3-sync, requests by operation:")
        out.append("")
        header = ["scenario"] + ops_seen + ["total", "writes", "MB sent"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for ds, s in rows:
            c = cells[(ds.name, s, "drone-s3-sync")]
            if c.seconds is None:
                out.append("| " + " | ".join([f"{ds.name}, {LABELS[s]}", "error"] + [""] * (len(header) - 2)) + " |")
                continue
            writes = sum(n for op, n in c.ops.items() if op in WRITE_OPS)
            out.append("| " + " | ".join([f"{ds.name}, {LABELS[s]}"] + [_n(c.ops.get(op, 0)) for op in ops_seen]
                                         + [_n(c.requests), _n(writes), f"{c.bytes_sent / MB:.1f}"]) + " |")
        out.append("")
    out += per_tool_table("All tools, requests by operation:", names, rows,
                          lambda c: "error" if c.seconds is None else _ops_text(c.ops), cells)
    problems = []
    position = {n: i for i, n in enumerate(names)}
    for (dsn, s, n), runs in sorted(results.items(), key=lambda kv: (
            dataset_order(kv[0][0]), SCENARIOS.index(kv[0][1]), position.get(kv[0][2], 99))):
        for i, r in enumerate(runs):
            if r.error or r.mismatch:
                problems.append(f"- {dsn}, {s}, {n} (run {i + 1}): {r.error or 'bucket differs from the source: ' + r.mismatch}")
    if problems:
        out.append("Problems:")
        out.append("")
        out.extend(problems)
        out.append("")
    out.append("Data sets (generated deterministically, seed %d):" % args.seed)
    out.append("")
    for ds in datasets:
        out.append(f"- {ds.description}")
    out.append("")
    out.append("Scenarios: *first upload* into an empty bucket; *re-run* of the same tree; *fresh checkout*: "
               "a copy of the tree whose files all get a new mtime (later than the objects in the bucket, "
               "as in a CI build), synced to the same bucket; *1% changed + 1% deleted* in that checkout "
               "(half of the changed files keep their size), with delete on. The bucket is checked against "
               "the source after every run from the listing alone: keys, sizes, and MD5 where the ETag is "
               "one (multipart ETags: size only). \"MISMATCH\" marks a run that left the bucket different.")
    out.append("")
    out.append("Machine and versions:")
    out.append("")
    for k, v in info:
        out.append(f"- {k}: {v}")
    out.append("")
    out.append("Commands (each tool's defaults otherwise; output quietened for all):")
    out.append("")
    for t in tools:
        out.append(f"- {t.name}: `{t.shown}`")
    for m in missing:
        out.append(f"- {m}: not installed, skipped")
    out.append("")
    return "\n".join(out)


def machine_info(tools: List[Tool], server: str = "") -> List[Tuple[str, str]]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    info = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("cores (nproc)", str(os.cpu_count())),
        ("cpu", cpu),
        ("memory", mem),
        ("os", f"{platform.system()} {platform.release()}"),
        ("python", platform.python_version()),
        ("S3 server", server or Server(Path(os.devnull)).describe()),
    ]
    info += [(t.name, t.version) for t in tools]
    return info


def write_report(path: Path, text: str, command: str) -> None:
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    block = f"{begin}\n_Generated by `{command}`._\n\n{text}\n{end}\n"
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if begin in old and end in old:
            head, rest = old.split(begin, 1)
            tail = rest.split(end, 1)[1].lstrip("\n")
            path.write_text(head + block + tail, encoding="utf-8")
            return
    path.write_text("# Benchmarks\n\n" + block, encoding="utf-8")


# =========================================================================
# Extras: hashing speed, scale (10k / 100k files), start-up
# =========================================================================

EXTRAS = ("hash", "scale", "startup")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _files_of(ds: DataSet) -> List[Tuple[str, int]]:
    return [(str(ds.root / key), size) for key, (size, _) in sorted(ds.manifest.items())]


def _read_all(files: Sequence[Tuple[str, int]]) -> None:
    """Read every file once so the measurements below read from the page cache."""
    buffer = bytearray(1 << 22)
    for path, _ in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass


def _md5_one_thread(files: Sequence[Tuple[str, int]], read_size: int) -> None:
    buffer = bytearray(read_size)
    view = memoryview(buffer)
    for path, _ in files:
        md5 = hashlib.md5()
        with open(path, "rb", buffering=0) as handle:
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                md5.update(view[:count])
        md5.hexdigest()


_buffers = threading.local()


def _md5_file(path: str, read_size: int) -> str:
    """MD5 of one file, reusing one read buffer per thread (allocating a zeroed
    multi-MiB buffer per file costs more than hashing a small file)."""
    md5 = hashlib.md5()
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) != read_size:
        buffer = _buffers.buffer = bytearray(read_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            md5.update(view[:count])
    return md5.hexdigest()


def bench_hash(datasets: List[DataSet], repeat: int) -> dict:
    """MB/s of the product's hashing stage against hashlib.md5 on one core,
    on the same files, read from the page cache."""
    from concurrent.futures import ThreadPoolExecutor

    from drone_s3_sync.digest import PART_SIZE, READ_SIZE, file_digest
    from drone_s3_sync.pipeline import hash_workers

    workers = hash_workers()
    methods: List[Tuple[str, str, Callable]] = []

    def pooled(fn: Callable[[str, int], object]) -> Callable[[Sequence[Tuple[str, int]]], None]:
        def run(files):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(lambda f: fn(*f), files):
                    pass
        return run

    methods = [
        ("md5", f"hashlib.md5, 1 thread ({READ_SIZE // (1 << 20)} MiB reads): the baseline",
         lambda files: _md5_one_thread(files, READ_SIZE)),
        ("md5-pool", f"hashlib.md5 alone, {workers} threads, one buffer per thread (what the cores allow)",
         pooled(lambda p, s: _md5_file(p, READ_SIZE))),
        ("digest-md5-1", "product: file_digest(md5=True), 1 thread (per-file cost without the pool)",
         lambda files: [file_digest(p, md5=True) for p, _ in files]),
        ("digest-md5", f"(b) product: file_digest(md5=True) (MD5 + xxh3-128, one read), {workers} threads",
         pooled(lambda p, s: file_digest(p, md5=True))),
        ("digest-xxh", f"(c) product: file_digest(md5=False) (xxh3-128 only: a run with a valid state), "
                       f"{workers} threads",
         pooled(lambda p, s: file_digest(p, md5=False))),
        ("digest-mpu", f"(d) product: multipart ETag, {PART_SIZE // (1 << 20)} MiB parts (+ xxh3), "
                       f"{workers} threads",
         pooled(lambda p, s: file_digest(p, md5=False, part_sizes=[PART_SIZE]))),
    ]
    table: Dict[str, Dict[str, Optional[float]]] = {m[0]: {} for m in methods}
    described = []
    for ds in datasets:
        files = _files_of(ds)
        total = sum(size for _, size in files)
        _read_all(files)
        described.append(f"{ds.name}: {len(files):,} files, {total / MB:.0f} MB")
        for key, label, fn in methods:
            if key == "digest-mpu" and max(size for _, size in files) < PART_SIZE:
                table[key][ds.name] = None  # every file single-part: not a multipart case
                continue
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                fn(files)
                times.append(time.perf_counter() - started)
            table[key][ds.name] = total / MB / _median(times)
            print(f"bench: hash {ds.name:9} {key:10} {table[key][ds.name]:8.0f} MB/s", file=sys.stderr, flush=True)
    return {"methods": [(k, label) for k, label, _ in methods], "table": table,
            "datasets": [ds.name for ds in datasets], "described": described, "workers": workers,
            "repeat": repeat}


def make_tiny(files: int, seed: int) -> DataSet:
    """`files` files of about 100 bytes, 100 per folder, in nested folders."""
    root = BENCH / "data" / f"tiny-{files}f-s{seed}"
    manifest = _cached(root)
    if manifest is None:
        shutil.rmtree(root, ignore_errors=True)
        print(f"bench: generating {files:,} tiny files in {root} ...", file=sys.stderr, flush=True)
        rng = random.Random(f"tiny-{seed}")
        manifest = {}
        for i in range(files):
            rel = f"part-{i // 10000:03d}/dir-{i // 100 % 100:02d}/file-{i % 100:02d}.txt"
            head = f"tiny file {i}, seed {seed}: ".encode()
            size = rng.randint(90, 110)
            data = (head + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(size)))[:size]
            manifest[rel] = (len(data), _write(root / rel, data))
        _store(root, manifest)
    total = sum(s for s, _ in manifest.values())
    return DataSet(f"tiny-{files}", root, manifest,
                   f"{len(manifest):,} files of ~100 bytes ({total / MB:.1f} MB), 100 per folder")


def bench_scale(args, counts: List[int], server: Server) -> dict:
    tools, _ = find_tools(["drone-s3-sync"])
    if not tools:
        raise SystemExit("bench: drone-s3-sync is not installed")
    tool = tools[0]
    (BENCH / "work").mkdir(parents=True, exist_ok=True)  # the tools' working directory
    s3 = s3_client(server.endpoint)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    rows = []
    populate_env = ({"PLUGIN_MAX_CONCURRENCY": str(args.scale_populate_concurrency)}
                    if args.scale_populate_concurrency else {})
    for n in counts:
        ds = make_tiny(n, args.seed)
        bucket = f"bench-scale-{n}-{stamp}"
        s3.create_bucket(Bucket=bucket)
        row = {"files": len(ds.manifest), "first": None, "nochange": [], "description": ds.description,
               "populate": populate_env}
        try:
            log = BENCH / "logs" / stamp / f"scale-{n}-first.log"
            first = run_tool(tool, ds.root, bucket, server, s3, ds.manifest, log, args.timeout,
                             extra_env=populate_env, measure=True)
            row["first"] = first
            print(f"bench: scale {n:>7,} first    {first.seconds:8.2f} s {first.requests:8,} requests  "
                  f"{first.error or first.mismatch or 'ok'}", file=sys.stderr, flush=True)
            if first.error:
                continue
            for run in range(args.runs):
                log = BENCH / "logs" / stamp / f"scale-{n}-nochange-r{run + 1}.log"
                res = run_tool(tool, ds.root, bucket, server, s3, ds.manifest, log, args.timeout, measure=True)
                row["nochange"].append(res)
                print(f"bench: scale {n:>7,} nochange {res.seconds:8.2f} s {res.requests:8,} requests  "
                      f"peak RSS {res.rss_mb or 0:.0f} MB  {res.error or res.mismatch or 'ok'}",
                      file=sys.stderr, flush=True)
        finally:
            rows.append(row)
            empty_bucket(s3, bucket)
    return {"rows": rows}


def _wall(argv: Sequence[str], env: Dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   cwd=str(BENCH))
    return time.perf_counter() - started


def bench_startup(repeat: int) -> dict:
    env = clean_env(BENCH / "home")
    py = sys.executable
    exe = shutil.which("drone-s3-sync", path=str(Path(py).parent)) or "drone-s3-sync"
    commands = [
        ("`python -c pass` (the interpreter alone)", [py, "-c", "pass"]),
        ("`python -c \"import drone_s3_sync.pipeline\"`", [py, "-c", "import drone_s3_sync.pipeline"]),
        ("`drone-s3-sync --help` (settings only: no boto3)", [exe, "--help"]),
        ("`drone-s3-sync --version` (imports boto3 and s3transfer for their versions)", [exe, "--version"]),
    ]
    rows = []
    for label, argv in commands:
        _wall(argv, env)  # warm: page cache and bytecode
        times = [_wall(argv, env) for _ in range(repeat)]
        rows.append((label, _median(times), min(times), max(times)))
        print(f"bench: startup {label:48} {_median(times) * 1000:7.0f} ms", file=sys.stderr, flush=True)
    per_module: Dict[str, List[Tuple[int, int]]] = {}
    for _ in range(repeat):
        out = subprocess.run([py, "-X", "importtime", "-c", "import drone_s3_sync.pipeline"], env=env,
                             capture_output=True, text=True, check=True, cwd=str(BENCH))
        for line in out.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s?(.*)$", line)
            if m:
                per_module.setdefault(m.group(3).rstrip(), []).append((int(m.group(1)), int(m.group(2))))
    imports = []
    for name, values in per_module.items():
        imports.append((name.strip(), len(name) - len(name.lstrip()),
                        _median([v[0] for v in values]) / 1000, _median([v[1] for v in values]) / 1000))
    imports.sort(key=lambda row: -row[3])
    total_imports = len(per_module)
    return {"rows": rows, "imports": imports[:10], "repeat": repeat, "modules": total_imports}


def render_extras(args, extras: dict) -> str:
    out = []
    if "hash" in extras:
        h = extras["hash"]
        base = h["table"]["md5"]
        cores = os.cpu_count() or 1
        out.append("### Hashing speed (extras: hash)")
        out.append("")
        out.append(f"MB/s over every file of the data set ({'; '.join(h['described'])}), files read from the "
                   f"page cache, median of {h['repeat']}; ratio to `hashlib.md5` on one thread over the same "
                   f"files. The pools use `drone_s3_sync.pipeline.hash_workers()` = {h['workers']} threads "
                   f"on {cores} cores, so {cores:.2f}x is the ideal for MD5.")
        out.append("")
        header = ["method"] + [f"{name} MB/s" for name in h["datasets"]] + [f"{name} vs md5 1 thread"
                                                                           for name in h["datasets"]]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for key, label in h["methods"]:
            row = h["table"][key]
            speeds = [f"{row[d]:,.0f}" if row.get(d) else "-" for d in h["datasets"]]
            ratios = [f"{row[d] / base[d]:.2f}x" if row.get(d) and base.get(d) else "-" for d in h["datasets"]]
            out.append("| " + " | ".join([label] + speeds + ratios) + " |")
        out.append("")
    if "scale" in extras:
        rows = extras["scale"]["rows"]
        out.append("### Scale: drone-s3-sync alone on many tiny files (extras: scale)")
        out.append("")
        out.append("Trees of ~100-byte files, 100 per folder, nested; a first upload into a fresh bucket, then "
                   f"the same tree again with nothing changed (median of {args.runs} no-change run(s); peak RSS "
                   "the highest of them, measured with GNU `time -v`). Server CPU: what the server process used "
                   "during the run.")
        out.append("")
        header = ["files", "first upload", "first: per 1,000 files", "no change", "no change: per 1,000 files",
                  "no change: peak RSS", "no change: CPU (client / server)", "no change: requests"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for row in rows:
            first, runs = row["first"], [r for r in row["nochange"] if not r.error]
            cells = [f"{row['files']:,}"]
            if first is None or first.error:
                cells += [f"error: {first.error if first else '?'}"] + [""] * 6
            else:
                cells += [f"{first.seconds:.1f} s ({first.requests:,} requests"
                          + (f", peak RSS {first.rss_mb:.0f} MB)" if first.rss_mb is not None else ")")
                          + (" MISMATCH" if first.mismatch else ""),
                          f"{first.seconds / row['files'] * 1000:.2f} s"]
                if not runs:
                    cells += ["error"] + [""] * 4
                else:
                    secs = _median([r.seconds for r in runs])
                    rss = max((r.rss_mb for r in runs if r.rss_mb is not None), default=None)
                    cpu = _median([r.cpu_s for r in runs if r.cpu_s is not None] or [float("nan")])
                    scpu = _median([r.server_cpu_s for r in runs if r.server_cpu_s is not None] or [float("nan")])
                    names = sorted({op for r in runs for op in r.ops})
                    ops = {op: _median([r.ops.get(op, 0) for r in runs]) for op in names}
                    cells += [f"{secs:.2f} s" + (" MISMATCH" if any(r.mismatch for r in runs) else ""),
                              f"{secs / row['files'] * 1000:.3f} s",
                              f"{rss:.0f} MB" if rss is not None else "?",
                              f"{cpu:.1f} s / {scpu:.1f} s",
                              _ops_text(ops)]
            out.append("| " + " | ".join(cells) + " |")
        done = [r for r in rows if r["first"] is not None and not r["first"].error
                and any(not x.error for x in r["nochange"])]
        if len(done) >= 2:
            a, b = done[0], done[-1]
            ta = _median([r.seconds for r in a["nochange"] if not r.error])
            tb = _median([r.seconds for r in b["nochange"] if not r.error])
            out.append("")
            out.append(f"Linearity: {b['files'] / a['files']:.0f}x the files took {tb / ta:.1f}x the no-change "
                       f"time ({tb / b['files'] * 1000:.3f} s vs {ta / a['files'] * 1000:.3f} s per 1,000 files) "
                       f"and {b['first'].seconds / a['first'].seconds:.1f}x the first-upload time.")
        populated = [r for r in rows if r["populate"]]
        if populated:
            out.append("")
            out.append("First uploads ran with " + ", ".join(f"{k}={v}" for k, v in populated[0]["populate"].items())
                       + " to populate the bucket faster; the no-change runs use the defaults.")
        out.append("")
    if "startup" in extras:
        st = extras["startup"]
        out.append("### Start-up (extras: startup)")
        out.append("")
        out.append(f"Wall time of the process, median of {st['repeat']} after one warm-up run (bytecode cached, "
                   "files in the page cache).")
        out.append("")
        out.append("| command | median | min | max |")
        out.append("|---|---|---|---|")
        for label, med, lo, hi in st["rows"]:
            out.append(f"| {label} | {med * 1000:.0f} ms | {lo * 1000:.0f} ms | {hi * 1000:.0f} ms |")
        out.append("")
        out.append(f"`python -X importtime -c \"import drone_s3_sync.pipeline\"`: the 10 imports with the largest "
                   f"cumulative time (median of {st['repeat']}; {st['modules']} modules imported in all; nested "
                   "imports are included in their parent's cumulative time):")
        out.append("")
        out.append("| module | cumulative | self |")
        out.append("|---|---|---|")
        for name, depth, self_ms, cum_ms in st["imports"]:
            out.append(f"| {'&nbsp;' * 2 * (depth // 2)}`{name}` | {cum_ms:.1f} ms | {self_ms:.1f} ms |")
        out.append("")
    return "\n".join(out)


def parse_extras(spec: Optional[str], writing: bool) -> List[str]:
    if spec is None:
        return list(EXTRAS) if writing else []
    chosen = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        if token == "all":
            chosen += [e for e in EXTRAS if e not in chosen]
        elif token == "none":
            continue
        elif token in EXTRAS:
            if token not in chosen:
                chosen.append(token)
        else:
            raise SystemExit(f"bench: unknown extra {token!r}: use a comma-separated list of {', '.join(EXTRAS)}, "
                             "'all' or 'none'")
    return chosen


# =========================================================================
# Command line
# =========================================================================

def parse_selection(spec: str) -> Dict[str, List[str]]:
    chosen: Dict[str, List[str]] = {d: [] for d in DATASETS}
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        ds, _, sc = token.partition(":")
        if ds in SCENARIOS and not sc:
            ds, sc = "", ds
        if ds and ds not in DATASETS or sc and sc not in SCENARIOS:
            raise SystemExit(f"bench: unknown scenario {token!r}: use DATASET, SCENARIO or DATASET:SCENARIO "
                             f"with DATASET in {DATASETS} and SCENARIO in {SCENARIOS}")
        for d in ([ds] if ds else DATASETS):
            for s in ([sc] if sc else SCENARIOS):
                if s in SCENARIOS_OF[d] and s not in chosen[d]:
                    chosen[d].append(s)
    return {d: sorted(v, key=SCENARIOS.index) for d, v in chosen.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        serve(argv[1], int(argv[2]))
        return 0
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example (small, a couple of minutes):\n"
                                       "  scripts/bench --site-files 200 --site-mb 3 --artifacts 2 "
                                       "--artifact-mb-max 10\n"
                                       "Scenarios: " + ", ".join(f"{k} = {v}" for k, v in LABELS.items()))
    p.add_argument("--site-files", type=int, default=5000, help="files in the static site (default 5000)")
    p.add_argument("--site-mb", type=float, default=78, help="total size of the site in MB (default 78)")
    p.add_argument("--artifacts", type=int, default=12, help="number of build artifacts (default 12)")
    p.add_argument("--artifact-mb-min", type=float, default=5, help="smallest artifact in MB (default 5)")
    p.add_argument("--artifact-mb-max", type=float, default=100, help="largest artifact in MB (default 100)")
    p.add_argument("--runs", type=int, default=1, help="repetitions; the tables show medians (default 1)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated (default {','.join(TOOLS)})")
    p.add_argument("--scenarios", default="site,artifacts",
                   help="comma-separated DATASET, SCENARIO or DATASET:SCENARIO, e.g. 'site:nochange,artifacts' "
                        f"(datasets {','.join(DATASETS)}; scenarios {','.join(SCENARIOS)}; default all)")
    p.add_argument("--server", choices=SERVERS, default="moto",
                   help="the S3 server: moto (faithful, but as CPU-hungry as the clients) or fast "
                        "(scripts/fast_s3.py: in-memory, cheap per request) (default moto)")
    p.add_argument("--latency-ms", type=float, default=0.0, metavar="N",
                   help="with --server fast: milliseconds added to every request, like a round trip (default 0)")
    p.add_argument("--scale", default="", metavar="N[,N]",
                   help="also run every tool on trees of N tiny files (~100 bytes, 100 per folder): first "
                        "upload and no change, e.g. 10000,50000 (default: none)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (default 1)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a tool run counts as failed")
    p.add_argument("--install-tools", action="store_true",
                   help="apt-get install the missing Debian tools (awscli, rclone, s3cmd) first; needs root")
    p.add_argument("--write", metavar="FILE", help="also write the report (markdown) to FILE, e.g. BENCHMARKS.md")
    p.add_argument("--extras", metavar="LIST",
                   help=f"extra measurements, comma-separated from {','.join(EXTRAS)} (or 'all', 'none'): "
                        "hash = MB/s of the product's hashing against hashlib.md5 on one core; scale = "
                        "drone-s3-sync alone on trees of tiny files (time, requests, peak RSS); startup = "
                        "start-up and import time. Default: all with --write, none without")
    p.add_argument("--scale-files", default="10000,100000",
                   help="file counts of the scale trees, comma-separated (default 10000,100000)")
    p.add_argument("--scale-populate-concurrency", type=int, default=0, metavar="N",
                   help="run the scale first uploads with PLUGIN_MAX_CONCURRENCY=N (default: the product's)")
    p.add_argument("--hash-repeat", type=int, default=3, help="repetitions of each hash measurement (default 3)")
    p.add_argument("--startup-repeat", type=int, default=5, help="repetitions of each start-up measurement "
                                                                   "(default 5)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.site_files < 1 or args.artifacts < 1:
        p.error("--runs, --site-files and --artifacts must be at least 1")
    selected = (parse_selection(args.scenarios) if args.scenarios.strip() not in ("", "none")
                else {d: [] for d in DATASETS})
    if args.latency_ms < 0 or (args.latency_ms and args.server != "fast"):
        p.error("--latency-ms: a number of milliseconds >= 0, with --server fast only")
    try:
        scale_rows = [int(n.replace("_", "")) for n in args.scale.split(",") if n.strip()]
    except ValueError:
        p.error("--scale: comma-separated integers, e.g. 10000,50000")
    if any(n < 1 for n in scale_rows):
        p.error("--scale: each count at least 1")
    for n in scale_rows:
        selected[f"tiny-{n}"] = list(SCALE_SCENARIOS)
    compare = any(selected.values())
    extras = parse_extras(args.extras, bool(args.write))
    try:
        scale_counts = [int(n.replace("_", "")) for n in args.scale_files.split(",") if n.strip()]
    except ValueError:
        p.error("--scale-files: comma-separated integers, e.g. 10000,100000")
    if "scale" in extras and (not scale_counts or min(scale_counts) < 1):
        p.error("--scale-files: at least one count, each at least 1")
    if not compare and not extras:
        p.error("nothing to do: no scenario selected and no --extras")
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()] if compare else ["drone-s3-sync"]
    begun = time.monotonic()

    BENCH.mkdir(exist_ok=True)
    tools, missing = find_tools(wanted)
    if missing and args.install_tools:
        install_tools(missing)
        tools, missing = find_tools(wanted)
    for m in missing:
        print(f"bench: {m} is not installed; skipped (scripts/bench --install-tools installs the Debian ones)",
              file=sys.stderr)
    if not tools:
        raise SystemExit("bench: no tool to run")
    compile_package()

    datasets = []
    if selected["site"] or "hash" in extras:
        datasets.append(make_site(args.site_files, args.site_mb, args.seed))
    if selected["artifacts"] or "hash" in extras:
        datasets.append(make_artifacts(args.artifacts, args.artifact_mb_min, args.artifact_mb_max, args.seed))
    server = Server(BENCH / "server.log", args.server, args.latency_ms)
    args.server_text = server.describe()
    for n in scale_rows:
        datasets.append(make_tiny(n, args.seed))
    info = machine_info(tools, args.server_text)
    for k, v in info:
        print(f"bench: {k}: {v}", file=sys.stderr)

    results: Dict[Tuple[str, str, str], List[Result]] = {}
    measured_extras: dict = {}
    timings: List[Tuple[str, float]] = []
    if compare or "scale" in extras:
        server.start()
        try:
            if compare:
                started = time.monotonic()
                results = run_all(args, tools, [ds for ds in datasets if selected.get(ds.name)], selected, server)
                timings.append(("tool comparison", time.monotonic() - started))
            if "scale" in extras:
                started = time.monotonic()
                measured_extras["scale"] = bench_scale(args, scale_counts, server)
                timings.append(("scale", time.monotonic() - started))
        finally:
            server.stop()
            shutil.rmtree(BENCH / "work", ignore_errors=True)
    # Without the server running: nothing else on the machine's cores from here.
    if "hash" in extras:
        started = time.monotonic()
        order = {"artifacts": 0, "site": 1}
        measured_extras["hash"] = bench_hash(sorted((d for d in datasets if d.name in order),
                                                    key=lambda d: order[d.name]), args.hash_repeat)
        timings.append(("hash", time.monotonic() - started))
    if "startup" in extras:
        started = time.monotonic()
        measured_extras["startup"] = bench_startup(args.startup_repeat)
        timings.append(("startup", time.monotonic() - started))
    parts = []
    if compare:
        parts.append(render(args, tools, missing, [ds for ds in datasets if selected.get(ds.name)], results, info))
    else:
        parts.append("Machine and versions:\n\n" + "\n".join(f"- {k}: {v}" for k, v in info) + "\n")
    if measured_extras:
        parts.append(render_extras(args, measured_extras))
    total = time.monotonic() - begun
    parts.append("Benchmark run time: " + ", ".join(f"{name} {secs / 60:.1f} min" for name, secs in timings)
                 + f"; {total / 60:.1f} min in all (data generation included).\n")
    text = "\n".join(parts)
    print(text)
    if args.write:
        command = "scripts/bench " + " ".join(argv)
        path = Path(args.write)
        write_report(path if path.is_absolute() else Path.cwd() / path, text, command.strip())
        print(f"bench: wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
