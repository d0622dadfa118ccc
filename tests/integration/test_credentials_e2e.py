"""End-to-end tests of the credential settings: session_token, assume_role (with
external_id and assume_role_session_name), oidc_token_id (web identity),
profile, and boto3's own AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE path.

The real command runs against the session's moto server, whose STS answers
AssumeRole / AssumeRoleWithWebIdentity with fresh temporary keys (the run_sync
fixture points AWS_ENDPOINT_URL_STS at it). The recorder keeps, for every
request, the access key id that signed it, whether it carried a session token,
and STS's form parameters: so each test proves which credentials signed what.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Dict, List

import pytest
from drone_run import assert_refused, ok, plugin_env

ROLE = "arn:aws:iam::123456789012:role/site-deploy"
BASE_KEY = "AKIABASEKEYDISTINCT1"
BASE_SECRET = "Base/Secret+Value/DistinctForTests0123456"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEDistinctSessionToken//xyz+abc=="
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmV4YW1wbGUvc2l0ZSJ9.DistinctSignaturePart_abc-123"


def s3_requests(s3_server: Any, bucket: str) -> List[Any]:
    return [r for r in s3_server.requests if r.service == "s3" and r.bucket == bucket]


def sts_requests(s3_server: Any) -> List[Any]:
    return [r for r in s3_server.requests if r.service == "sts"]


def signing_keys(s3_server: Any, bucket: str) -> set:
    return {r.access_key for r in s3_requests(s3_server, bucket)}


def assert_synced(s3_server: Any, bucket: str) -> None:
    # a.txt and the state object: the run really worked with these credentials.
    assert s3_server.ops(bucket)["PutObject"] == 2, s3_server.ops(bucket)


def assert_secrets_hidden(proc: Any, *secrets: str, debug: bool = False) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    if debug:
        assert "DEBUG: settings: Settings(" in proc.stderr  # the settings were logged, secrets left out
    for secret in secrets:
        assert secret not in output
        assert secret[:12] not in output


def write_aws_files(home: Path, credentials: str, config: str = "") -> Dict[str, str]:
    """AWS config files in the test's HOME and the variables that point to them."""
    (home / "aws-credentials").write_text(credentials, encoding="utf-8")
    (home / "aws-config").write_text(config, encoding="utf-8")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"), "AWS_CONFIG_FILE": str(home / "aws-config")}


# ---------------------------------------------------------------- assume_role


@pytest.mark.parametrize("base", ["env-chain", "plugin-keys"])
def test_assume_role_calls_sts_once_and_signs_s3_with_the_role_keys(run_sync, s3_server, bucket, make_tree, base):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, assume_role=ROLE, external_id="ext-42:team/site")
    env["DEBUG"] = "1"
    if base == "plugin-keys":
        env.update(PLUGIN_ACCESS_KEY=BASE_KEY, PLUGIN_SECRET_KEY=BASE_SECRET)
        base_key = BASE_KEY
    else:
        base_key = "testing"  # run_sync's AWS_ACCESS_KEY_ID, read by boto3's chain
    proc = ok(run_sync(env, cwd=src))
    assert_synced(s3_server, bucket)

    sts = sts_requests(s3_server)
    assert [r.op for r in sts] == ["AssumeRole"]
    form = sts[0].form
    assert (form["RoleArn"], form["RoleSessionName"], form["ExternalId"]) == (ROLE, "drone-s3-sync", "ext-42:team/site")
    assert sts[0].access_key == base_key  # the base credentials call STS...
    role_keys = signing_keys(s3_server, bucket)
    assert len(role_keys) == 1 and None not in role_keys and base_key not in role_keys, role_keys
    # ...and every S3 request is signed with the temporary keys STS returned, token included.
    assert all(r.security_token for r in s3_requests(s3_server, bucket))
    assert_secrets_hidden(proc, BASE_SECRET, debug=True)


def test_assume_role_alias_and_session_name_and_cloudfront(run_sync, s3_server, bucket, make_tree, distribution):
    # ASSUME_ROLE as the sibling plugins/s3 reads it; no ExternalId unless set;
    # the CloudFront invalidation is made as the role too.
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, assume_role_session_name="build-77@ci", cloudfront_distribution=distribution)
    env["ASSUME_ROLE"] = ROLE
    ok(run_sync(env, cwd=src))
    [sts] = sts_requests(s3_server)
    assert sts.op == "AssumeRole"
    assert (sts.form["RoleArn"], sts.form["RoleSessionName"]) == (ROLE, "build-77@ci")
    assert "ExternalId" not in sts.form
    role_keys = signing_keys(s3_server, bucket)
    assert len(role_keys) == 1 and "testing" not in role_keys, role_keys
    invalidations = [r for r in s3_server.requests if r.op == "CreateInvalidation"]
    assert len(invalidations) == 1 and {invalidations[0].access_key} == role_keys


def test_assume_role_without_any_credentials_is_a_settings_error(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, assume_role=ROLE)
    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert_refused(proc, s3_server, "PLUGIN_ASSUME_ROLE", "oidc_token_id")


def test_assume_role_refused_by_sts_is_one_clear_error(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    fault = s3_server.inject("AssumeRole", status=403, code="AccessDenied")
    proc = run_sync(plugin_env(bucket, assume_role=ROLE), cwd=src)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "assume_role" in lines[0] and ROLE in lines[0] and "AccessDenied" in lines[0], lines
    assert fault.hits == 1
    assert s3_requests(s3_server, bucket) == []


def test_assume_role_credentials_are_refreshed_before_they_expire(s3_server, bucket, monkeypatch):
    """In process: the role keys are botocore's refreshing credentials, so a run
    outliving them (the clocks moved 50 minutes on; moto's keys last an hour)
    assumes the role again and signs with the new keys."""
    import botocore.credentials

    from drone_s3_sync.config import Settings
    from drone_s3_sync.remote import Store

    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", s3_server.endpoint)
    store = Store(Settings.create(bucket=bucket, endpoint=s3_server.endpoint, assume_role=ROLE))
    store.list("")
    assert [r.op for r in sts_requests(s3_server)] == ["AssumeRole"]
    first = signing_keys(s3_server, bucket)
    store.list("")
    assert len(sts_requests(s3_server)) == 1 and signing_keys(s3_server, bucket) == first  # reused meanwhile

    real_now = botocore.credentials._local_now

    def later() -> datetime.datetime:
        return real_now() + datetime.timedelta(minutes=50)

    monkeypatch.setattr(botocore.credentials, "_local_now", later)  # the STS answer cache's clock
    monkeypatch.setattr(store.session.get_credentials(), "_time_fetcher", later)  # the credentials' clock
    s3_server.reset()
    store.list("")
    assert [r.op for r in sts_requests(s3_server)] == ["AssumeRole"]
    second = signing_keys(s3_server, bucket)
    assert len(first) == len(second) == 1 and first != second


# ---------------------------------------------------------------- web identity


def test_oidc_token_assumes_role_with_web_identity_unsigned(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    # A CI system's OIDC token and nothing else: no AWS keys anywhere.
    env = plugin_env(bucket, assume_role=ROLE, oidc_token_id=OIDC_TOKEN + "\n")
    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, DEBUG="1")
    proc = ok(run_sync(env, cwd=src))
    assert_synced(s3_server, bucket)
    [sts] = sts_requests(s3_server)
    assert sts.op == "AssumeRoleWithWebIdentity"
    assert (sts.form["RoleArn"], sts.form["RoleSessionName"], sts.form["WebIdentityToken"]) == (
        ROLE, "drone-s3-sync", OIDC_TOKEN)
    assert sts.access_key is None and not sts.security_token  # unsigned, as STS takes it
    role_keys = signing_keys(s3_server, bucket)
    assert len(role_keys) == 1 and None not in role_keys, role_keys
    assert all(r.security_token for r in s3_requests(s3_server, bucket))
    assert_secrets_hidden(proc, OIDC_TOKEN, debug=True)


def test_web_identity_token_file_through_boto3_chain(run_sync, s3_server, bucket, make_tree, tmp_path):
    # The standard variables (EKS, GitHub Actions setups): boto3's own provider does it.
    src = make_tree({"a.txt": "a"})
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_TOKEN, encoding="utf-8")
    env = plugin_env(bucket)
    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_ROLE_ARN=ROLE,
               AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file), AWS_ROLE_SESSION_NAME="from-file")
    proc = ok(run_sync(env, cwd=src))
    assert_synced(s3_server, bucket)
    [sts] = sts_requests(s3_server)
    assert sts.op == "AssumeRoleWithWebIdentity"
    assert (sts.form["RoleArn"], sts.form["WebIdentityToken"], sts.form["RoleSessionName"]) == (
        ROLE, OIDC_TOKEN, "from-file")
    role_keys = signing_keys(s3_server, bucket)
    assert len(role_keys) == 1 and None not in role_keys, role_keys
    assert_secrets_hidden(proc, OIDC_TOKEN)


# ---------------------------------------------------------------- profile


PROFILE_KEY = "AKIAPROFILEKEY000042"
PROFILE_SECRET = "Profile/Secret+Value/Distinct0123456789"


def test_profile_signs_with_that_profiles_keys(run_sync, s3_server, bucket, make_tree, clean_env):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, profile="deploy")
    env["DEBUG"] = "1"
    env.update(write_aws_files(clean_env, f"[default]\naws_access_key_id = AKIADEFAULTKEY000001\n"
                                          f"aws_secret_access_key = x\n\n[deploy]\naws_access_key_id = {PROFILE_KEY}\n"
                                          f"aws_secret_access_key = {PROFILE_SECRET}\n"))
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY stay set: an explicit profile comes first.
    proc = ok(run_sync(env, cwd=src))
    assert_synced(s3_server, bucket)
    assert signing_keys(s3_server, bucket) == {PROFILE_KEY}
    assert_secrets_hidden(proc, PROFILE_SECRET, debug=True)


def test_profile_as_base_credentials_for_assume_role(run_sync, s3_server, bucket, make_tree, clean_env):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, profile="deploy", assume_role=ROLE)
    env.update(write_aws_files(clean_env, f"[deploy]\naws_access_key_id = {PROFILE_KEY}\n"
                                          f"aws_secret_access_key = {PROFILE_SECRET}\n"))
    ok(run_sync(env, cwd=src))
    [sts] = sts_requests(s3_server)
    assert (sts.op, sts.access_key) == ("AssumeRole", PROFILE_KEY)
    assert PROFILE_KEY not in signing_keys(s3_server, bucket)


def test_profile_with_role_arn_in_aws_config_through_boto3(run_sync, s3_server, bucket, make_tree, clean_env):
    # A role configured in ~/.aws/config (role_arn + source_profile) is botocore's own provider.
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, profile="deploy")
    env.update(write_aws_files(
        clean_env, f"[base]\naws_access_key_id = {PROFILE_KEY}\naws_secret_access_key = {PROFILE_SECRET}\n",
        f"[profile deploy]\nrole_arn = {ROLE}\nsource_profile = base\nrole_session_name = from-config\n"))
    ok(run_sync(env, cwd=src))
    [sts] = sts_requests(s3_server)
    assert (sts.op, sts.access_key, sts.form["RoleArn"], sts.form["RoleSessionName"]) == (
        "AssumeRole", PROFILE_KEY, ROLE, "from-config")
    role_keys = signing_keys(s3_server, bucket)
    assert len(role_keys) == 1 and PROFILE_KEY not in role_keys, role_keys


def test_unknown_profile_is_a_settings_error_before_any_request(run_sync, s3_server, bucket, make_tree, clean_env):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, profile="no-such-profile", assume_role=ROLE)
    env.update(write_aws_files(clean_env, "[deploy]\naws_access_key_id = a\naws_secret_access_key = b\n"))
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert_refused(proc, s3_server, "invalid setting PLUGIN_PROFILE: ", "no-such-profile")


# ---------------------------------------------------------------- session_token


def test_session_token_goes_with_the_keys(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, access_key=BASE_KEY, secret_key=BASE_SECRET, session_token=SESSION_TOKEN)
    env["DEBUG"] = "1"
    proc = ok(run_sync(env, cwd=src))
    assert_synced(s3_server, bucket)
    requests = s3_requests(s3_server, bucket)
    assert {r.access_key for r in requests} == {BASE_KEY}
    assert requests and all(r.security_token for r in requests)
    assert sts_requests(s3_server) == []
    assert_secrets_hidden(proc, BASE_SECRET, SESSION_TOKEN, debug=True)


def test_without_session_token_no_security_token_header(run_sync, s3_server, bucket, make_tree):
    # The counterpart of the test above: the header comes from the setting, not from anywhere else.
    src = make_tree({"a.txt": "a"})
    ok(run_sync(plugin_env(bucket, access_key=BASE_KEY, secret_key=BASE_SECRET), cwd=src))
    requests = s3_requests(s3_server, bucket)
    assert requests and not any(r.security_token for r in requests)


def test_aws_env_keys_with_their_session_token_through_boto3_chain(run_sync, s3_server, bucket, make_tree):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket)
    env.update(AWS_ACCESS_KEY_ID=BASE_KEY, AWS_SECRET_ACCESS_KEY=BASE_SECRET, AWS_SESSION_TOKEN=SESSION_TOKEN, DEBUG="1")
    proc = ok(run_sync(env, cwd=src))
    requests = s3_requests(s3_server, bucket)
    assert {r.access_key for r in requests} == {BASE_KEY}
    assert all(r.security_token for r in requests)
    assert_secrets_hidden(proc, BASE_SECRET, SESSION_TOKEN, debug=True)


# ---------------------------------------------------------------- bad values
# One case of each kind; tests/unit/test_credentials_config.py has every form and combination.

@pytest.mark.parametrize(
    "settings, named",
    [
        ({"assume_role": "arn:aws:iam::12345:role/x"}, "PLUGIN_ASSUME_ROLE"),
        ({"assume_role": ROLE, "assume_role_session_name": "has space"}, "PLUGIN_ASSUME_ROLE_SESSION_NAME"),
        ({"oidc_token_id": OIDC_TOKEN}, "PLUGIN_OIDC_TOKEN_ID"),
        ({"assume_role": ROLE, "oidc_token_id": OIDC_TOKEN, "external_id": "ext-42"}, "PLUGIN_EXTERNAL_ID"),
        ({"session_token": SESSION_TOKEN}, "PLUGIN_SESSION_TOKEN"),
        ({"access_key": BASE_KEY, "secret_key": BASE_SECRET, "profile": "deploy"}, "PLUGIN_PROFILE"),
    ],
    ids=["arn-short-account", "session-name-space", "oidc-without-role", "external-id-with-oidc", "token-without-keys",
         "profile-and-keys"],
)
def test_bad_credential_settings_refused_before_any_request(run_sync, s3_server, bucket, make_tree, settings, named):
    src = make_tree({"a.txt": "a"})
    env = plugin_env(bucket, **settings)
    # No AWS_* keys: a session_token setting would otherwise go with that pair.
    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, DEBUG="1")
    s3_server.reset()
    proc = run_sync(env, cwd=src)
    assert_refused(proc, s3_server, named)
    assert_secrets_hidden(proc, BASE_SECRET, SESSION_TOKEN, OIDC_TOKEN)
