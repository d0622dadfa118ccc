"""The credentials of a run, all from botocore's own providers (static keys,
a profile, the default chain, AssumeRole and AssumeRoleWithWebIdentity with
refresh). With remote.py, the only module that imports botocore.

A botocore session, not a boto3 one: boto3 adds nothing this tool uses, and
importing it (which imports s3transfer and injects its methods into every S3
client) costs ~70 ms of every run's start-up."""

from __future__ import annotations

import botocore.session
from botocore.credentials import (AssumeRoleCredentialFetcher, AssumeRoleWithWebIdentityCredentialFetcher,
                                  CredentialProvider, CredentialResolver, DeferredRefreshableCredentials)
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from .config import Settings
from .errors import ConfigError, RemoteError, error_text


def make_session(settings: Settings) -> botocore.session.Session:
    """The credentials of a run, all from botocore's own providers.

    Static keys (with session_token) only when both keys are given; else the
    profile, or boto3's default chain. With assume_role, the session signs with
    that role's temporary credentials, which botocore refreshes before they
    expire: from AssumeRole called with the credentials above, or from
    AssumeRoleWithWebIdentity (unsigned) with oidc_token_id.
    """
    session = botocore.session.Session(profile=settings.profile or None)
    try:
        session.get_scoped_config()  # the profile, now: a missing one is an error of the settings
    except ProfileNotFound:
        if not settings.profile:
            raise  # from AWS_PROFILE: Store reports it as an AWS configuration error
        raise ConfigError(settings.label("profile"), f"no profile {settings.profile!r} in the AWS config or credentials file"
                          ) from None
    session.set_config_variable("region", settings.region)
    if settings.access_key and settings.secret_key:
        session.set_credentials(settings.access_key.strip(), settings.secret_key.strip(),
                                settings.session_token.strip() or None)
    return _role_session(session, settings) if settings.assume_role else session


class _RoleCredentials(CredentialProvider):
    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials):
        super().__init__()
        self.credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self.credentials


def _role_session(base: botocore.session.Session, settings: Settings) -> botocore.session.Session:
    # STS clients come from `base`: its region, AWS_ENDPOINT_URL_STS and profile apply.
    extra = {"RoleSessionName": settings.assume_role_session_name}
    if settings.oidc_token_id:
        operation = "AssumeRoleWithWebIdentity"
        fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
            base.create_client, lambda: settings.oidc_token_id.strip(), settings.assume_role, extra_args=extra)
    else:
        operation = "AssumeRole"
        source = base.get_credentials()
        if source is None:
            raise ConfigError(settings.label("assume_role"), "no credentials to call AssumeRole with: set access_key and secret_key, "
                                             "a profile, or oidc_token_id for web identity")
        if settings.external_id:
            extra["ExternalId"] = settings.external_id
        fetcher = AssumeRoleCredentialFetcher(base.create_client, source, settings.assume_role, extra_args=extra)
    try:
        # Now, for a clear error before anything else; the first request then
        # finds these credentials in the fetcher's cache.
        fetcher.fetch_credentials()
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"assume_role: STS {operation} for {settings.assume_role} failed: {error_text(exc)}") from None
    credentials = DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")
    core = botocore.session.Session(profile=settings.profile or None)
    core.register_component("credential_provider", CredentialResolver([_RoleCredentials(credentials)]))
    core.set_config_variable("region", settings.region)
    return core
