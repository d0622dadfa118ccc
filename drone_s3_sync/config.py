"""The settings: one table (`OPTIONS`) names every setting once, with its
variables in priority order, its parser and its help; `Settings` holds the
parsed values, `build_settings` validates raw values keyed by name. Where the
values come from is sources.py."""

from __future__ import annotations

import difflib
import os
from functools import partial
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .errors import ConfigError
from .parsers import (parse_duration, DeleteLimit, MetadataRules, Rules, _sts_text, parse_bool, parse_bucket, parse_credential,
                      parse_endpoint, parse_int, parse_interval, parse_max_delete, parse_region, parse_report_path,
                      parse_role_arn, parse_seconds, parse_size, parse_target, parse_text, parse_token)
from .ruleparsers import (parse_ignore_unsupported, parse_order, _check_acl, parse_compress, parse_distributions, parse_encryption, parse_expires, parse_globs,
                          parse_invalidation_paths, parse_kms_key, parse_metadata, parse_redirects, parse_rules,
                          parse_storage_class)
from .s3vocab import KMS_ENCRYPTIONS, MAX_PART, MIN_PART, MULTIPART_THRESHOLD, PART_SIZE



# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Option:
    name: str
    env: Tuple[str, ...]
    parse: Callable[[str, Any], Any]
    help: str
    metavar: str = "VALUE"
    flag: bool = False  # a boolean switch on the command line
    secret: bool = False


OPTIONS: Tuple[Option, ...] = (
    Option("bucket", ("PLUGIN_BUCKET",), parse_text, "Bucket name (required). An S3 website or virtual-host name such as my-bucket.s3-website-us-east-1.amazonaws.com is accepted too.", "NAME"),
    Option("region", ("PLUGIN_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"), parse_region, "Bucket region. Default: us-east-1.", "REGION"),
    Option("source", ("PLUGIN_SOURCE",), parse_text, "Local folder to publish, or a glob such as 'dist/**/*.html' (keys are relative to the part before the first wildcard). Relative to the working directory (to the config file's folder for --config). Default: '.'.", "PATH"),
    Option("allow_external_symlinks", ("PLUGIN_ALLOW_EXTERNAL_SYMLINKS",), parse_bool, "Follow symbolic links that point outside the source. Default: such links are skipped with a warning (neither uploaded nor deleted).", flag=True),
    Option("exclude", ("PLUGIN_EXCLUDE",), parse_globs, "Patterns (comma-separated, or a list) of files not to sync, matched like rule keys against the path relative to the source and against each of its folders: 'drafts' leaves out that folder, '.map' every file ending in .map, '*.psd' any PSD. Such files are not uploaded and their objects are never deleted.", "GLOB,..."),
    Option("include", ("PLUGIN_INCLUDE",), parse_globs, "Patterns (comma-separated, or a list), as for exclude: sync only the files one matches (or that are in a folder one matches), less those excluded. Objects of other files are never deleted. Default: every file.", "GLOB,..."),
    Option("target", ("PLUGIN_TARGET",), parse_target, "Key prefix in the bucket; '/' is the bucket root. Default: '/'.", "PREFIX"),
    Option("delete", ("PLUGIN_DELETE",), parse_bool, "Delete objects under the target that are not in the source (after all uploads succeeded).", flag=True),
    Option("allow_empty_source", ("PLUGIN_ALLOW_EMPTY_SOURCE",), parse_bool, "With delete: let a source that has no files (an empty folder, a glob matching nothing) delete everything under the target. Without it such a run is refused before any write (exit 3).", flag=True),
    Option("allow_nested_delete", ("PLUGIN_ALLOW_NESTED_DELETE",), parse_bool, "With delete: let this run delete the objects of other deployments nested under its target (prefixes with a state object of their own). Without it such a run is refused before any write (exit 3); their state and lock objects are never deleted.", flag=True),
    Option("max_delete", ("PLUGIN_MAX_DELETE",), parse_max_delete, "With delete: refuse the run before any write (exit 3) when it would delete more than N objects, or more than N% of the objects under the target. Default: no limit.", "N|N%"),
    Option("delete_grace", ("PLUGIN_DELETE_GRACE",), parse_duration, "With delete: keep each object whose file was removed from the source this long after a run first saw it gone (7d, 12h, 30m), so that pages still cached elsewhere keep their assets; a later run deletes it. Default: 0 (deleted at once).", "DURATION"),
    Option("acl", ("PLUGIN_ACL", "PLUGIN_ACCESS"), lambda n, r: parse_rules(n, r, _check_acl(n)), "Canned ACL for all files, or a JSON/YAML map of pattern to canned ACL. Default: private.", "ACL|MAP"),
    Option("content_type", ("PLUGIN_CONTENT_TYPE",), parse_rules, "Content-Type for all files, or a map of '.ext'/glob to type. Default: built-in table.", "TYPE|MAP"),
    Option("content_encoding", ("PLUGIN_CONTENT_ENCODING",), parse_rules, "Content-Encoding for all files, or a map of '.ext'/glob to encoding. Default: none.", "ENC|MAP"),
    Option("compress", ("PLUGIN_COMPRESS",), parse_compress, "Compress files on the fly for upload, with Content-Encoding set: gzip, br (brotli; needs drone-s3-sync[brotli]) or none for all files, a map of '.ext'/glob to gzip/br/none, or a list of extensions to gzip (.html,.css,.js). Deterministic output: unchanged files are not uploaded again. Default: none.", "ENC|MAP|LIST"),
    Option("cache_control", ("PLUGIN_CACHE_CONTROL",), parse_rules, "Cache-Control for all files, or a map of '.ext'/glob to value. Default: none.", "VALUE|MAP"),
    Option("content_disposition", ("PLUGIN_CONTENT_DISPOSITION",), parse_rules, "Content-Disposition for all files, or a map of '.ext'/glob to value (e.g. attachment). Default: none.", "VALUE|MAP"),
    Option("content_language", ("PLUGIN_CONTENT_LANGUAGE",), parse_rules, "Content-Language for all files, or a map of '.ext'/glob to value (e.g. en, de-CH). Default: none.", "LANG|MAP"),
    Option("expires", ("PLUGIN_EXPIRES",), parse_expires, "Expires header: an HTTP-date or an ISO 8601 date/time (UTC unless it gives a zone), for all files or as a map of '.ext'/glob to date. Default: none.", "DATE|MAP"),
    Option("storage_class", ("PLUGIN_STORAGE_CLASS",), parse_storage_class, "S3 storage class (STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, ...) for all files, or a map of '.ext'/glob to class. Default: unset, objects keep the class they have (e.g. from a lifecycle rule); new ones get STANDARD.", "CLASS|MAP"),
    Option("encryption", ("PLUGIN_ENCRYPTION",), parse_encryption, "Server-side encryption: AES256, aws:kms or aws:kms:dsse, for all files or as a map of '.ext'/glob to value. Default: unset, objects keep their encryption; new ones get the bucket default.", "SSE|MAP"),
    Option("kms_key_id", ("PLUGIN_KMS_KEY_ID",), parse_kms_key, "KMS key (id, ARN, alias/NAME or alias ARN) for objects whose encryption is aws:kms or aws:kms:dsse. Default: the object's current key, else the bucket's or AWS managed key.", "KEY"),
    Option("metadata", ("PLUGIN_METADATA",), parse_metadata, "User metadata: a map for all files, or a map of glob to map.", "MAP"),
    Option("order", ("PLUGIN_ORDER",), parse_order, "Upload order, in waves that each end before the next begins: one wave per pattern (like the header rules: '.css', 'assets/*'), then the other files, then the pages (.html, text/html), then the redirects. Default: files, then pages, then redirects. 'none': everything at once.", "PATTERNS"),
    Option("redirects", ("PLUGIN_REDIRECTS",), parse_redirects, "Map of key (relative to the target) to redirect location, written as zero-byte objects with x-amz-website-redirect-location.", "MAP"),
    Option("cloudfront_distribution", ("PLUGIN_CLOUDFRONT_DISTRIBUTION",), parse_distributions, "CloudFront distribution id(s) to invalidate for the paths this run changed.", "ID"),
    Option("invalidation_paths", ("PLUGIN_INVALIDATION_PATHS",), parse_invalidation_paths, "CloudFront paths to invalidate instead of the paths this run changed (comma-separated, or a list), like /index.html,/docs/*. Used only when the run changed something. Default: the changed paths.", "PATHS"),
    Option("cloudfront_wait", ("PLUGIN_CLOUDFRONT_WAIT",), parse_bool, "Wait until each CloudFront invalidation has completed, with a progress line; not completed within cloudfront_wait_timeout is a failure (exit 1).", flag=True),
    Option("cloudfront_wait_timeout", ("PLUGIN_CLOUDFRONT_WAIT_TIMEOUT",), parse_seconds, "With cloudfront_wait: seconds to wait for the invalidations to complete. Default: 900.", "SECONDS"),
    Option("dry_run", ("PLUGIN_DRY_RUN", "DRY_RUN"), parse_bool, "Print the plan; write nothing and invalidate nothing.", flag=True),
    Option("endpoint", ("PLUGIN_ENDPOINT", "S3_SYNC_ENDPOINT", "S3_ENDPOINT"), parse_endpoint, "S3-compatible endpoint URL (a bare host gets https://).", "URL"),
    Option("path_style", ("PLUGIN_PATH_STYLE",), parse_bool, "Use path-style addressing (http://host/bucket/key).", flag=True),
    Option("max_concurrency", ("PLUGIN_MAX_CONCURRENCY",), lambda n, r: parse_int(n, r), "Concurrent requests. Default: 64.", "N"),
    Option("read_timeout", ("PLUGIN_READ_TIMEOUT",), parse_seconds, "Seconds to wait for S3 to start (or go on) answering a request before that attempt counts as failed and is retried. Default: 60.", "SECONDS"),
    Option("max_attempts", ("PLUGIN_MAX_ATTEMPTS",), lambda n, r: parse_int(n, r, maximum=20), "Attempts per request, the first one included, for failures worth retrying (5xx, throttling, dropped connections, timeouts). Default: 8.", "N"),
    Option("ignore_unsupported", ("PLUGIN_IGNORE_UNSUPPORTED",), parse_ignore_unsupported, "What an S3-compatible server may leave out of the objects without failing the run: acl, redirects, metadata, cache_control, content_type, content_encoding, content_disposition, content_language, expires. The first object written with each is read back once to check; one the server did not keep fails the run (exit 1) unless named here.", "NAMES"),
    Option("acl_scrub", ("PLUGIN_ACL_SCRUB",), parse_max_delete, "How many objects a run that writes re-checks the ACL of (GetObjectAcl), a rotating slice: an ACL changed by hand leaves the listing as it was, and is found within 100 / N% such runs. A number of objects, or a percentage of them (then at least 100); 0 turns it off. Default: 2% when the acl setting grants anything beyond private (the bucket has ACLs), else off.", "N|N%"),
    Option("state", ("PLUGIN_STATE",), parse_bool, "Keep the state object (<target>.drone-s3-sync-state.json.gz) that lets a run skip per-object requests. Default: true.", flag=True),
    Option("verify", ("PLUGIN_VERIFY",), parse_bool, "Ignore the state object for this run: check every object's headers and ACL with S3 (for objects changed by other tools).", flag=True),
    Option("lock", ("PLUGIN_LOCK",), parse_bool, "Take the deploy lock (<target>.drone-s3-sync-lock) before the first write, so that two runs never write to the target at once; a second run waits. Runs with nothing to write take no lock. Default: true.", flag=True),
    Option("lock_timeout", ("PLUGIN_LOCK_TIMEOUT",), parse_seconds, "How long a run waits for the deploy lock held by another run before it gives up (exit 4). Default: 300.", "SECONDS"),
    Option("multipart_threshold", ("PLUGIN_MULTIPART_THRESHOLD",), lambda n, r: parse_size(n, r, minimum=MIN_PART, maximum=MAX_PART), "Files from this size up are uploaded in parts, the rest with one PutObject. Default: 100MiB (the size from which AWS advises multipart uploads).", "SIZE"),
    Option("part_size", ("PLUGIN_PART_SIZE",), lambda n, r: parse_size(n, r, minimum=MIN_PART, maximum=MAX_PART), "Part size of multipart uploads (raised automatically past 10,000 parts). Default: 16MiB.", "SIZE"),
    Option("progress_interval", ("PLUGIN_PROGRESS_INTERVAL",), parse_interval, "When standard error is not a terminal (a CI log), print a one-line progress report at most every this many seconds while objects are written (uploads, header updates, redirects); nothing for a run shorter than that. 0 turns it off; so does quiet. Default: 30.", "SECONDS"),
    Option("quiet", ("PLUGIN_QUIET",), parse_bool, "Print only failures and the summary line (for cron).", flag=True),
    Option("report", ("PLUGIN_REPORT",), parse_report_path, "Write a JSON report of the run (the plan in a dry run) to this file, replaced atomically; its folder must exist. Written for every run whose settings are valid, also when it fails, is refused or is interrupted.", "FILE"),
    Option("json", ("PLUGIN_JSON",), parse_bool, "Print the JSON report (see report) on standard output instead of the action lines; the action lines and the summary go to standard error.", flag=True),
    Option("access_key", ("PLUGIN_ACCESS_KEY", "AWS_ACCESS_KEY_ID"), partial(parse_credential, secret=False), "Access key id; used only with secret_key. Default: the AWS credential chain.", "KEY"),
    Option("secret_key", ("PLUGIN_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"), partial(parse_credential, secret=True), "Secret access key; used only with access_key.", "SECRET", secret=True),
    Option("session_token", ("PLUGIN_SESSION_TOKEN", "AWS_SESSION_TOKEN"), partial(parse_credential, secret=True), "Session token of temporary keys; needs access_key and secret_key.", "TOKEN", secret=True),
    Option("assume_role", ("PLUGIN_ASSUME_ROLE", "ASSUME_ROLE"), parse_role_arn, "IAM role ARN to assume with STS for this run (with the other credentials, or with oidc_token_id). Refreshed before it expires.", "ARN"),
    Option("assume_role_session_name", ("PLUGIN_ASSUME_ROLE_SESSION_NAME",), _sts_text(r"^[\w+=,.@-]{2,64}$", "role session name (2-64 of A-Z a-z 0-9 _+=,.@-)"), "Session name for assume_role, shown in CloudTrail. Default: drone-s3-sync.", "NAME"),
    Option("external_id", ("PLUGIN_EXTERNAL_ID",), _sts_text(r"^[\w+=,.@:/-]{2,1224}$", "external id (2-1224 of A-Z a-z 0-9 _+=,.@:/-)"), "External id the role's trust policy requires; used with assume_role.", "ID"),
    Option("oidc_token_id", ("PLUGIN_OIDC_TOKEN_ID",), parse_token, "OIDC (web identity) token to assume the assume_role role with (STS AssumeRoleWithWebIdentity); no other credentials needed.", "TOKEN", secret=True),
    Option("profile", ("PLUGIN_PROFILE",), parse_text, "AWS profile from ~/.aws/config and ~/.aws/credentials. Default: AWS_PROFILE, else 'default'.", "NAME"),
)
OPTION_NAMES = tuple(o.name for o in OPTIONS)
# Variables a shell, a cron environment or another tool may set for reasons of
# its own: fallbacks only. Every explicit setting (a flag, a PLUGIN_* variable,
# a config-file key, the region in a website host name) beats them, and a value
# taken from one is named on the first line of the run.
AMBIENT_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION", "S3_SYNC_ENDPOINT", "S3_ENDPOINT", "DRY_RUN")


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed and validated. Build it with `from_sources` or by keyword."""

    bucket: str = ""
    region: str = "us-east-1"
    source: str = "."
    allow_external_symlinks: bool = False
    exclude: Tuple[str, ...] = ()
    include: Tuple[str, ...] = ()
    target: str = ""
    delete: bool = False
    allow_empty_source: bool = False
    allow_nested_delete: bool = False
    delete_grace: float = 0.0  # seconds
    max_delete: Optional[DeleteLimit] = None  # None: no limit
    acl: Rules = ()
    content_type: Rules = ()
    content_encoding: Rules = ()
    compress: Rules = ()
    cache_control: Rules = ()
    content_disposition: Rules = ()
    content_language: Rules = ()
    expires: Rules = ()
    storage_class: Rules = ()
    encryption: Rules = ()
    kms_key_id: str = ""
    metadata: MetadataRules = ()
    order: Tuple[str, ...] = ()  # () the default waves; ("none",) one wave
    redirects: Tuple[Tuple[str, str], ...] = ()
    cloudfront_distribution: Tuple[str, ...] = ()
    invalidation_paths: Tuple[str, ...] = ()  # (): the paths the run changed
    cloudfront_wait: bool = False
    cloudfront_wait_timeout: float = 900.0
    dry_run: bool = False
    endpoint: str = ""
    path_style: bool = False
    max_concurrency: int = 64
    read_timeout: float = 60.0
    max_attempts: int = 8
    progress_interval: float = 30.0  # seconds; 0: off
    quiet: bool = False
    report: str = ""  # a file for the JSON report; "": none
    json: bool = False  # the JSON report on stdout
    ignore_unsupported: Tuple[str, ...] = ()
    acl_scrub: Optional[DeleteLimit] = None  # None: 2% when `acl` grants more than private, else off
    state: bool = True
    verify: bool = False
    lock: bool = True
    lock_timeout: float = 300.0
    multipart_threshold: int = MULTIPART_THRESHOLD
    part_size: int = PART_SIZE
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    assume_role: str = ""
    assume_role_session_name: str = "drone-s3-sync"
    external_id: str = ""
    oidc_token_id: str = field(default="", repr=False)
    profile: str = ""
    base_dir: str = ""  # folder a relative source is resolved against; "" = cwd
    debug: bool = False
    # Where each given setting came from ("PLUGIN_SOURCE", "--source", ...), for messages.
    labels: Tuple[Tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def create(cls, **values: Any) -> "Settings":
        """The Python API: raw values (strings, maps, lists) in, validated Settings out."""
        return build_settings(values)

    def source_path(self) -> str:
        base = self.base_dir or os.getcwd()
        return os.path.normpath(os.path.join(base, os.path.expanduser(self.source)))

    def with_changes(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def label(self, name: str) -> str:
        """How the user spelled a setting: its variable, flag or config-file key."""
        return dict(self.labels).get(name, name)


def build_settings(raw: Mapping[str, Any], *, base_dir: str = "", debug: bool = False,
                   origin: Optional[Mapping[str, str]] = None) -> Settings:
    """Validate raw values keyed by setting name. `origin` maps a name to where it came from."""
    origin = origin or {}
    by_name = {o.name: o for o in OPTIONS}
    values: Dict[str, Any] = {"base_dir": base_dir, "debug": debug,
                              "labels": tuple((name, origin[name]) for name in raw if name in origin)}
    region_from_bucket = None
    for name, raw_value in raw.items():
        if name not in by_name:
            raise ConfigError(name, unknown_setting_message(name))
        if raw_value is None:
            continue
        label = origin.get(name, name)
        if name == "bucket":
            values["bucket"], region_from_bucket = parse_bucket(label, raw_value)
            continue
        values[name] = by_name[name].parse(label, raw_value)
    if not values.get("bucket"):
        raise ConfigError(origin.get("bucket", "bucket"), "is required (PLUGIN_BUCKET, --bucket or 'bucket:' in the config file)")
    if region_from_bucket and (not values.get("region") or origin.get("region") in AMBIENT_VARIABLES):
        # The region in a website host name is explicit: it beats AWS_REGION and AWS_DEFAULT_REGION.
        values["region"] = region_from_bucket
        values["labels"] = tuple((n, where) for n, where in values["labels"] if n != "region")
    elif not values.get("region"):
        values["region"] = "us-east-1"
    if not values.get("source"):
        values.pop("source", None)
    if bool(values.get("access_key")) != bool(values.get("secret_key")):
        # Half a key pair is ignored, as the original plugin did; the credential chain applies.
        values["access_key"] = values["secret_key"] = ""
    check_credentials(values, {o.name: origin.get(o.name, o.name) for o in OPTIONS})
    if values.get("kms_key_id") and not any(v in KMS_ENCRYPTIONS for _, v in values.get("encryption", ())):
        raise ConfigError(origin.get("kms_key_id", "kms_key_id"), "is used only for objects encrypted with aws:kms or "
                                                                  "aws:kms:dsse; set encryption to one of them too")
    if values.get("delete_grace") and values.get("state") is False:
        raise ConfigError(origin.get("delete_grace", "delete_grace"), "needs the state object, which records when "
                                                                      "each file was removed; set state: true")
    if not values.get("assume_role_session_name"):
        values.pop("assume_role_session_name", None)
    return Settings(**values)


def check_credentials(values: Mapping[str, Any], label: Mapping[str, str]) -> None:
    """Credential settings that cannot work together, refused before any request."""
    keys = bool(values.get("access_key"))
    role = bool(values.get("assume_role"))

    def refuse(name: str, message: str) -> None:
        raise ConfigError(label[name], message)

    if values.get("session_token") and not keys:
        refuse("session_token", "a session token belongs to a temporary key pair: set access_key and secret_key too")
    for name in ("oidc_token_id", "external_id", "assume_role_session_name"):
        if values.get(name) and not role:
            refuse(name, "is used only with assume_role (the ARN of the role to assume); set assume_role too")
    if values.get("oidc_token_id"):
        if values.get("external_id"):
            refuse("external_id", "cannot be used with oidc_token_id (AssumeRoleWithWebIdentity takes no external id)")
        if keys:
            refuse("oidc_token_id", "needs no access_key / secret_key (the token is the credential); remove the keys")
    if values.get("profile") and keys:
        refuse("profile", "and access_key / secret_key both name credentials; use one of them")


def unknown_setting_message(name: str) -> str:
    hint = difflib.get_close_matches(name.lower().replace("-", "_"), OPTION_NAMES, n=1, cutoff=0.6)
    return "unknown setting" + (f"; did you mean {hint[0]!r}?" if hint else "; drone-s3-sync --help lists them")
