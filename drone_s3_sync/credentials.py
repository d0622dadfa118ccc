"""The credentials of a run, all from botocore's own providers (static keys,
a profile, the default chain, AssumeRole and AssumeRoleWithWebIdentity with
refresh). With remote.py, the only module that imports boto3/botocore."""

from __future__ import annotations

import boto3
import botocore.session
from botocore.credentials import (AssumeRoleCredentialFetcher, AssumeRoleWithWebIdentityCredentialFetcher,
                                  CredentialProvider, CredentialResolver, DeferredRefreshableCredentials)
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from .config import Settings
from .errors import ConfigError, RemoteError, error_text


def make_session(settings: Settings) -> boto3.session.Session:
    """The credentials of a run, all from botocore's own providers.

    Static keys (with session_token) only when both keys are given; else the
    profile, or boto3's default chain. With assume_role, the session signs with
    that role's temporary credentials, which botocore refreshes before they
    expire: from AssumeRole called with the credentials above, or from
    AssumeRoleWithWebIdentity (unsigned) with oidc_token_id.
    """
    kwargs = {"region_name": settings.region, "profile_name": settings.profile or None}
    if settings.access_key and settings.secret_key:
        kwargs.update(aws_access_key_id=settings.access_key.strip(), aws_secret_access_key=settings.secret_key.strip(),
                      aws_session_token=settings.session_token.strip() or None)
    try:
        session = boto3.session.Session(**kwargs)
    except ProfileNotFound:
        if not settings.profile:
            raise  # from AWS_PROFILE: Store reports it as an AWS configuration error
        raise ConfigError(settings.label("profile"), f"no profile {settings.profile!r} in the AWS config or credentials file"
                          ) from None
    return _role_session(session, settings) if settings.assume_role else session


class _RoleCredentials(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials):
        super().__init__()
        self.credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self.credentials


def _role_session(base: boto3.session.Session, settings: Settings) -> boto3.session.Session:
    # STS clients come from `base`: its region, AWS_ENDPOINT_URL_STS and profile apply.
    extra = {"RoleSessionName": settings.assume_role_session_name}
    if settings.oidc_token_id:
        operation = "AssumeRoleWithWebIdentity"
        fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
            base.client, lambda: settings.oidc_token_id.strip(), settings.assume_role, extra_args=extra)
    else:
        operation = "AssumeRole"
        source = base.get_credentials()
        if source is None:
            raise ConfigError(settings.label("assume_role"), "no credentials to call AssumeRole with: set access_key and secret_key, "
                                             "a profile, or oidc_token_id for web identity")
        if settings.external_id:
            extra["ExternalId"] = settings.external_id
        fetcher = AssumeRoleCredentialFetcher(base.client, source, settings.assume_role, extra_args=extra)
    try:
        # Now, for a clear error before anything else; the first request then
        # finds these credentials in the fetcher's cache.
        fetcher.fetch_credentials()
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"assume_role: STS {operation} for {settings.assume_role} failed: {error_text(exc)}") from None
    credentials = DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")
    core = botocore.session.Session(profile=settings.profile or None)
    core.register_component("credential_provider", CredentialResolver([_RoleCredentials(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=settings.region)
