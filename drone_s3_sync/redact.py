"""Masks secret values (secret keys, session tokens, OIDC tokens, endpoint
passwords) in any text this tool prints: log records with their tracebacks,
report lines, error messages.

The access key id is not one of them: AWS calls it public (it names the key,
it shows in CloudTrail and in signed URLs), and masking it garbled output with
the short ids of local servers (`test` in LocalStack, MinIO's `minio`)."""

from __future__ import annotations

from typing import Iterable, List
from urllib.parse import quote

MASK = "****"
# A value shorter than this is never masked. No real secret is that short (an
# AWS secret key has 40 characters, a session token hundreds, and MinIO, Ceph
# and Garage refuse secret keys under 8), while the stand-ins of local test
# servers are (LocalStack's `test`): masking those garbled every line that
# happened to contain the word, object keys included ("blog/latest").
MIN_LENGTH = 8


def _forms(secret: str) -> List[str]:
    """The ways a value shows up in text: as is, escaped inside a str or bytes
    repr (an exception quoting a header value: b'...\\n...'), URL-encoded."""
    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"), quote(secret, safe="")}
    raw = secret.encode("utf-8", "surrogateescape")
    forms.add(repr(raw)[2:-1])
    return [form for form in forms if len(form) >= MIN_LENGTH]


class Redactor:
    """`redact(text)` -> text with every form of every secret replaced by ****."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.forms: List[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values too (secrets learnt once the settings are read)."""
        forms = set(self.forms)
        for secret in secrets:
            secret = (secret or "").strip()
            if len(secret) >= MIN_LENGTH:
                forms.update(_forms(secret))
        # Longest first: a secret that contains another is masked whole.
        self.forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


def one_line(exc: BaseException) -> str:
    """`ValueError: bad value` on a single line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

def public_endpoint(url: str) -> str:
    """The endpoint without a user name or password someone put into the URL."""
    if "@" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
