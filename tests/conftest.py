"""Shared fixtures: one real S3/CloudFront/STS HTTP server (moto) per session
(tests/support/s3server.py).

Tests talk to the server over real HTTP on 127.0.0.1 and assert on what the
server *received*, so a regression that sends extra or different requests is
caught even when the end state in the bucket looks right.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import boto3
import botocore.session
import pytest
from botocore.config import Config

from support.s3server import (FAKE_KEY_ID, FAKE_SECRET, REGION, RecordingMotoServer, _give_multipart_objects_an_acl,
                              _read_acls_of_archived_objects)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[RecordingMotoServer]:
    # werkzeug logs one INFO line per request; thousands of them would bury
    # the output of a failing test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _give_multipart_objects_an_acl()
    _read_acls_of_archived_objects()
    server = RecordingMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """No injected fault outlives the test that added it."""
    yield
    if "s3_server" in request.fixturenames:
        request.getfixturevalue("s3_server").clear_faults()


_SCRUBBED_PREFIXES = ("PLUGIN_", "AWS_", "DRONE_", "CI_", "S3_")
_SCRUBBED_NAMES = ("DRY_RUN", "DEBUG", "NO_COLOR", "S3_SYNC_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Make in-process code blind to the developer's environment and ~/.aws."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    # Without credentials botocore would probe the EC2 metadata address.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


_boto_session: Optional[boto3.session.Session] = None


def _client(service: str, endpoint: str, **config: Any) -> Any:
    # One boto3 session for the whole run keeps its loaded service models
    # (creating clients becomes cheap) and is pinned to non-existent config
    # files so the real ~/.aws can never be read.
    global _boto_session
    if _boto_session is None:
        core = botocore.session.Session()
        core.set_config_variable("config_file", os.devnull + ".no-aws-config")
        core.set_config_variable("credentials_file", os.devnull + ".no-aws-credentials")
        _boto_session = boto3.session.Session(botocore_session=core)
    session = _boto_session
    return session.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture
def s3(s3_server: RecordingMotoServer) -> Any:
    return _client("s3", s3_server.endpoint, s3={"addressing_style": "path"})


@pytest.fixture
def cloudfront(s3_server: RecordingMotoServer) -> Any:
    return _client("cloudfront", s3_server.endpoint)


@pytest.fixture
def bucket(s3_server: RecordingMotoServer, s3: Any) -> Iterator[str]:
    """A fresh empty bucket; the request log is empty when the test starts."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with s3_server.paused():
        s3.create_bucket(Bucket=name)
    s3_server.reset()
    yield name
    # moto keeps object bodies in this process's memory for the whole session;
    # emptying the bucket keeps large tests from piling up.
    with s3_server.paused():
        with contextlib.suppress(Exception):
            _empty_and_delete_bucket(s3, name)


@pytest.fixture
def acl_disabled_bucket(s3_server: RecordingMotoServer, s3: Any, bucket: str) -> str:
    """Like `bucket`, but with Object Ownership BucketOwnerEnforced (ACLs
    disabled, the default for new buckets on AWS since 2023): ACL-setting
    requests other than bucket-owner-full-control get 400
    AccessControlListNotSupported."""
    with s3_server.paused():
        s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
    return bucket


def _empty_and_delete_bucket(s3: Any, name: str) -> None:
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for up in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=name)


@pytest.fixture
def distribution(s3_server: RecordingMotoServer, cloudfront: Any) -> str:
    """Id of a new minimal CloudFront distribution (created unrecorded)."""
    ref = uuid.uuid4().hex
    # The fields botocore requires; moto 5 accepts exactly this.
    config = {
        "CallerReference": ref,
        "Comment": "",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "origin",
                    "DomainName": "origin.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "origin", "ViewerProtocolPolicy": "allow-all"},
    }
    with s3_server.paused():
        resp = cloudfront.create_distribution(DistributionConfig=config)
    return resp["Distribution"]["Id"]


# The state object the product keeps next to the files (see drone_s3_sync/state.py).
# Spelled out here, not imported, so a renamed or moved state object fails the tests.
STATE_NAME = ".drone-s3-sync-state.json.gz"


def state_key(prefix: str = "") -> str:
    """The state object's key for a normalised target prefix: "" or "site/"."""
    return prefix + STATE_NAME


def is_state_key(key: Optional[str]) -> bool:
    """True for the state object of any target (bucket root or "<prefix>/")."""
    return bool(key) and (key == STATE_NAME or key.endswith("/" + STATE_NAME))


def read_state(s3: Any, bucket: str, key: str) -> Dict[str, Any]:
    """The decoded state document (call inside s3_server.paused())."""
    raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(gzip.decompress(raw).decode("utf-8"))


FileContent = Union[bytes, str]


@pytest.fixture
def make_tree(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make_tree({"a/b.txt": "hi", "c.bin": b"\\0"}, root=None) -> directory."""

    def make(files: Mapping[str, FileContent], root: Optional[Path] = None) -> Path:
        base = Path(root) if root is not None else tmp_path_factory.mktemp("tree")
        base.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(f"make_tree path must stay inside the tree: {rel!r}")
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return base

    return make


def _command() -> List[str]:
    script = Path(sys.executable).parent / "drone-s3-sync"
    if script.exists():
        return [str(script)]
    found = shutil.which("drone-s3-sync", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "drone_s3_sync"]


def command_env(s3_server: RecordingMotoServer, home: str,
                env: Optional[Mapping[str, Optional[str]]] = None) -> Dict[str, str]:
    """The command's whole environment: the fake account and the local server,
    then `env` (a None value removes a variable)."""
    full_env: Dict[str, str] = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(Path(home) / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(Path(home) / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_CLOUDFRONT": s3_server.endpoint,
        "AWS_ENDPOINT_URL_STS": s3_server.endpoint,
        "PLUGIN_ENDPOINT": s3_server.endpoint,
    }
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return full_env


@pytest.fixture
def run_sync(s3_server: RecordingMotoServer, clean_env: Path) -> Callable[..., "subprocess.CompletedProcess[str]"]:
    """Run the installed command the way Drone would: env only, no inherited state."""

    def run(
        env: Optional[Mapping[str, Optional[str]]] = None,
        *,
        cwd: Union[str, Path],
        args: Sequence[str] = (),
        timeout: float = 120,
        wrapper: Sequence[str] = (),
    ) -> "subprocess.CompletedProcess[str]":
        full_env = command_env(s3_server, os.environ.get("HOME", str(clean_env)), env)
        # `wrapper`: a command line that runs the command, e.g. with fewer privileges.
        cmd = [str(w) for w in wrapper] + _command() + [str(a) for a in args]
        proc = subprocess.run(
            cmd,
            cwd=str(cwd),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        # pytest shows captured stdout only for failing tests: exactly when
        # the command's own output is needed.
        shown = {k: v for k, v in full_env.items() if k.startswith(("PLUGIN_", "DRONE_", "DRY_RUN", "DEBUG"))}
        print(f"$ {' '.join(cmd)}  (cwd={cwd}, env={shown}) -> exit {proc.returncode}")
        print(f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}--- end ---")
        return proc

    return run
