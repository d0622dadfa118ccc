"""Where settings come from: flags, PLUGIN_* environment variables and a YAML
file, then fallback variables. Precedence is flags > environment > config
file > fallbacks (AWS_REGION, S3_ENDPOINT, DRY_RUN, ...) > defaults. Nothing
here reads `os.environ` itself: callers pass the environment in, so tests and
the Python API stay hermetic."""

from __future__ import annotations

import argparse
import difflib
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from .errors import ConfigError, exit_statuses
from .config import AMBIENT_VARIABLES, OPTIONS, OPTION_NAMES, Settings, build_settings, unknown_setting_message
from .parsers import _FALSE, _TRUE



def fallbacks(settings: Settings) -> List[Tuple[str, Any, str]]:
    """(setting, value, variable) of each setting whose value came from a
    fallback variable (AMBIENT_VARIABLES) rather than from an explicit setting."""
    return [(name, getattr(settings, name), where) for name, where in settings.labels if where in AMBIENT_VARIABLES]


# PLUGIN_* variables that are no setting but are only warned about: many Drone
# plugins take a `debug:` setting, and steps copied from them keep working.
_VARIABLE_HINTS = {"PLUGIN_DEBUG": "set DEBUG=1 for detailed logs"}


def _unknown_variables(environ: Mapping[str, str]) -> List[Tuple[str, str]]:
    """(variable, hint) for each PLUGIN_* variable that is no setting's; the hint
    ("; did you mean ...?") may be empty."""
    known = {var: option for option in OPTIONS for var in option.env}
    candidates = {var[len("PLUGIN_"):].lower(): var for var in known if var.startswith("PLUGIN_")}
    found = []
    for var in sorted(environ):
        if not var.startswith("PLUGIN_") or var in known or var.replace("-", "_").replace(".", "_") in known:
            continue
        hint = _VARIABLE_HINTS.get(var, "")
        close = difflib.get_close_matches(var[len("PLUGIN_"):].lower(), candidates, n=1, cutoff=0.7)
        if hint:
            hint = f"; {hint}"
        elif close:
            match = candidates[close[0]]
            hint = f"; did you mean {known[match].name} ({match})?"
        found.append((var, hint))
    return found


NOT_A_SETTING = "is not a setting of drone-s3-sync"


def unknown_plugin_variables(environ: Mapping[str, str]) -> List[str]:
    """A message for each PLUGIN_* variable that is no setting's."""
    return [f"{var} {NOT_A_SETTING}{hint}" for var, hint in _unknown_variables(environ)]


def _refused_variable(var: str, environ: Mapping[str, str]) -> bool:
    """An unknown variable with a value is a settings error (a typo in a step's
    `settings:` would otherwise be ignored while the run goes on to the live
    bucket). One without a value sets nothing, and one in _VARIABLE_HINTS is a
    habit from other plugins: those are only warned about."""
    return var not in _VARIABLE_HINTS and bool(environ[var].strip())


def plugin_variable_warnings(environ: Mapping[str, str]) -> List[str]:
    """Warnings for the unknown PLUGIN_* variables that are not refused."""
    return [f"{var} {NOT_A_SETTING}{hint}" for var, hint in _unknown_variables(environ)
            if not _refused_variable(var, environ)]


def check_plugin_variables(environ: Mapping[str, str]) -> None:
    """Refuse the unknown PLUGIN_* variables that have a value, before anything runs."""
    refused = [(var, hint) for var, hint in _unknown_variables(environ) if _refused_variable(var, environ)]
    if refused:
        (var, hint), others = refused[0], [v for v, _ in refused[1:]]
        more = f" (also not settings: {', '.join(others)})" if others else ""
        hint = hint or "; remove it or correct its name (drone-s3-sync --help lists the settings)"
        raise ConfigError(var, f"{NOT_A_SETTING}{hint}{more}")


def setting_warnings(settings: Settings) -> List[str]:
    """Settings that are valid but do nothing in this combination."""
    warnings = []
    if not settings.delete:
        if settings.max_delete is not None:
            warnings.append(f"{settings.label('max_delete')} has no effect without delete (this run deletes nothing)")
        if settings.allow_empty_source:
            warnings.append(f"{settings.label('allow_empty_source')} has no effect without delete "
                            "(this run deletes nothing)")
    given = dict(settings.labels)
    if not settings.cloudfront_distribution:
        for name in ("invalidation_paths", "cloudfront_wait", "cloudfront_wait_timeout"):
            if name in given and getattr(settings, name):
                warnings.append(f"{settings.label(name)} has no effect without cloudfront_distribution "
                                "(this run invalidates nothing)")
    elif "cloudfront_wait_timeout" in given and not settings.cloudfront_wait:
        warnings.append(f"{settings.label('cloudfront_wait_timeout')} has no effect without cloudfront_wait")
    return warnings


# ---------------------------------------------------------------- sources


def spelled_variables(environ: Mapping[str, str]) -> Dict[str, str]:
    """PLUGIN_* names as written, keyed by their canonical form.

    Drone only upper-cases a setting's name, so `cache-control:` arrives as
    PLUGIN_CACHE-CONTROL; Woodpecker also turns '-' and '.' into '_'. Both
    spellings name the same setting.
    """
    return {var.replace("-", "_").replace(".", "_"): var for var in environ
            if var.startswith("PLUGIN_") and ("-" in var or "." in var)}




def from_environment(environ: Mapping[str, str], *, ambient: bool = False) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Values and their variable names; the first non-empty variable of an option
    wins. Only the explicit variables, or with `ambient` only the fallbacks
    (AMBIENT_VARIABLES)."""
    values, origin = {}, {}
    spelled = spelled_variables(environ)
    for option in OPTIONS:
        for var in option.env:
            if (var in AMBIENT_VARIABLES) != ambient:
                continue
            name = var if var in environ else spelled.get(var, var)
            value = environ.get(name)
            if value is not None and value.strip() != "":
                values[option.name] = value
                origin[option.name] = name
                break
    return values, origin


def load_config_file(path: str) -> Tuple[Dict[str, Any], str]:
    """The YAML file's settings and the folder relative paths are resolved against."""
    import yaml  # only needed for --config; keeps start-up lean otherwise

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if isinstance(data, dict) and set(data) == {"settings"} and isinstance(data["settings"], dict):
        data = data["settings"]
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a map of settings")
    normalized = {}
    for key, value in data.items():
        name = str(key).strip().lower().replace("-", "_")
        if name not in OPTION_NAMES:
            raise ConfigError(f"config {path}: {key}", unknown_setting_message(name))
        normalized[name] = value
    folder = os.path.dirname(os.path.abspath(path))
    report = normalized.get("report")
    if isinstance(report, str) and report.strip() and not os.path.isabs(os.path.expanduser(report.strip())):
        # Like `source`: a path in the file is relative to the file's folder.
        normalized["report"] = os.path.join(folder, report.strip())
    return normalized, folder


def build_parser(prog: str = "drone-s3-sync") -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=prog,
        usage=f"{prog} [SOURCE s3://BUCKET[/PREFIX]] [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=HELP_DESCRIPTION,
        epilog=HELP_EPILOG.replace("{exit_statuses}", "exit status:\n" + "\n".join(
            f"  {code:<9} {meaning}" for code, meaning in exit_statuses())),
    )
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        env = ", ".join(option.env)
        text = f"{option.help} [env: {env}]".replace("%", "%%")  # argparse %-formats help
        if option.flag:
            # --delete=false and --delete=true are taken out first by switch_values.
            parser.add_argument(flag, "--no-" + flag[2:], dest=option.name, action=_Switch, default=None, help=text)
        else:
            parser.add_argument(flag, dest=option.name, metavar=option.metavar, default=None, help=text)
    parser.add_argument("paths", nargs="*", metavar="SOURCE s3://BUCKET[/PREFIX]", help=(
        "The folder to publish and where, as with aws s3 sync: the same as --source SOURCE --bucket BUCKET "
        "--target PREFIX."))
    parser.add_argument("--config", metavar="FILE", help="YAML file with the same keys as the Drone 'settings:' block.")
    parser.add_argument("--version", action="version", version=version_text(__version__))
    return parser


class _Parser(argparse.ArgumentParser):
    """A command-line mistake is a settings error like any other: one line
    naming it (with the closest flag for a misspelt one), exit 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = "drone-s3-sync --help lists the flags"
        match = re.search(r"unrecognized arguments: (--[\w-]+)", message)
        if match:
            flags = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
            close = difflib.get_close_matches(match.group(1).split("=")[0], flags, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else hint
        raise ConfigError("command line", f"{message}; {hint}")


class _Switch(argparse.Action):
    """A boolean flag and its --no- form: --delete / --no-delete."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, "false" if (option_string or "").startswith("--no-") else "true")


SWITCHES = {"--" + o.name.replace("_", "-"): o.name for o in OPTIONS if o.flag}


def switch_values(argv: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """The arguments without `--delete=false` / `--delete=true` (any boolean
    word, checked later like PLUGIN_DELETE's value), and those values by
    setting name. Everything after `--` is left alone."""
    rest: List[str] = []
    values: Dict[str, str] = {}
    for index, arg in enumerate(argv):
        if arg == "--":
            return rest + list(argv[index:]), values
        name, equals, value = arg.partition("=")
        if equals and name in SWITCHES:
            values[SWITCHES[name]] = value
        elif equals and name.startswith("--no-") and "--" + name[5:] in SWITCHES:
            raise ConfigError(name, f"takes no value; use --{name[5:]}={value} or {name} alone")
        else:
            rest.append(arg)
    return rest, values


PATHS_FORMS = "give the folder and the bucket as SOURCE s3://BUCKET[/PREFIX], or use --source, --bucket and --target"


def positional_settings(args: argparse.Namespace) -> None:
    """`drone-s3-sync public s3://my-site/docs`, the aws s3 sync habit: the same
    as --source public --bucket my-site --target docs (a flag given as well is
    a conflict)."""
    paths = list(args.paths or [])
    if not paths:
        return
    if len(paths) != 2 or not paths[1].startswith("s3://") or paths[0].startswith("s3://"):
        words = [p for p in paths if p.lower() in _TRUE | _FALSE]
        if words:
            raise ConfigError("command line", f"unexpected argument {words[0]!r}: a flag such as --delete takes no "
                                              f"separate value; write --delete={words[0]} (or --delete / --no-delete)")
        if len(paths) == 2 and paths[0].startswith("s3://") and not paths[1].startswith("s3://"):
            raise ConfigError("command line", f"{paths[0]} {paths[1]}: this command publishes a folder to S3 and "
                                              f"does not download; write the folder first: {paths[1]} {paths[0]}")
        shown = " ".join(paths)
        raise ConfigError("command line", f"unexpected argument{'s' if len(paths) > 1 else ''} {shown!r}; "
                                          f"{PATHS_FORMS}")
    bucket, _, prefix = paths[1][len("s3://"):].partition("/")
    for name, value in (("source", paths[0]), ("bucket", bucket), ("target", prefix or "/")):
        if getattr(args, name) is not None:
            raise ConfigError("--" + name, f"is given twice: as a flag and in {paths[0]} {paths[1]}; "
                                           f"use one of them")
        setattr(args, name, value)


def version_text(version: str) -> str:
    """The versions of the libraries that talk to S3, from the installed
    packages' metadata: importing them to ask would cost a tenth of a second."""
    from importlib.metadata import PackageNotFoundError, version as installed

    def of(package: str) -> str:
        try:
            return installed(package)
        except PackageNotFoundError:
            return "not installed"

    return f"drone-s3-sync {version} (botocore {of('botocore')}, s3transfer {of('s3transfer')})"


def from_sources(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Flags over PLUGIN_* variables over config file over fallback variables
    (AMBIENT_VARIABLES) over defaults."""
    parser = build_parser()
    rest, switched = switch_values(argv)
    args = parser.parse_intermixed_args(rest)
    for name, value in switched.items():
        setattr(args, name, value)
    check_plugin_variables(environ)
    positional_settings(args)
    raw, origin = from_environment(environ, ambient=True)  # fallbacks first: everything else beats them
    base_dir = ""
    if args.config:
        file_values, base_dir = load_config_file(args.config)
        raw.update(file_values)
        origin.update({k: f"{k} (in {args.config})" for k in file_values})
    env_values, env_origin = from_environment(environ)
    token_given = (args.session_token is not None or "session_token" in raw
                   or env_origin.get("session_token") == "PLUGIN_SESSION_TOKEN")
    if (env_origin.get("access_key") == "AWS_ACCESS_KEY_ID" and env_origin.get("secret_key") == "AWS_SECRET_ACCESS_KEY"
            and not token_given):
        # A key pair only in AWS_* variables is left to boto3's credential chain,
        # which reads these same variables and AWS_SESSION_TOKEN with them; it comes
        # after an explicit profile there, as with the AWS CLI. With a session_token
        # setting the pair is used as static keys, so that token goes with them.
        # The values are still checked: a line break in a key would otherwise fail
        # inside the HTTP client.
        by_name = {o.name: o for o in OPTIONS}
        for name in ("access_key", "secret_key", "session_token"):
            if env_origin.get(name, "").startswith("AWS_"):
                by_name[name].parse(env_origin.pop(name), env_values.pop(name))
    raw.update(env_values)
    origin.update(env_origin)
    for option in OPTIONS:
        value = getattr(args, option.name)
        if value is not None:
            raw[option.name] = value
            origin[option.name] = "--" + option.name.replace("_", "-")
    if origin.get("session_token") == "AWS_SESSION_TOKEN":
        # AWS_SESSION_TOKEN is the token of AWS_ACCESS_KEY_ID: it goes with static
        # keys only when no other access key is in that variable, and without a
        # key pair it is not a setting (boto3 ignores it too).
        key = str(raw.get("access_key") or "").strip()
        env_key = environ.get("AWS_ACCESS_KEY_ID", "").strip()
        if not key or not str(raw.get("secret_key") or "").strip() or env_key not in ("", key):
            raw.pop("session_token")
            origin.pop("session_token")
    if "source" in env_values or args.source is not None:
        base_dir = ""  # a source given on the command line or by Drone is relative to the cwd
    return build_settings(raw, base_dir=base_dir, debug=debug_of(environ), origin=origin)


def debug_of(environ: Mapping[str, str]) -> bool:
    """DEBUG=1 (any value but empty, 0, false, no) turns on detailed logs."""
    return environ.get("DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def secrets_of(settings: Optional[Settings], environ: Mapping[str, str]) -> List[str]:
    """Every secret value this run could print by accident; output and logs mask them.
    Without settings (they could not be read): the secrets in the environment.
    Not the access key id (see redact.py), nor values too short to be a secret."""
    from .redact import MIN_LENGTH as MIN_SECRET_LENGTH

    values = [environ.get("AWS_SECURITY_TOKEN", "")]
    for option in OPTIONS:
        if option.secret:
            if settings is not None:
                values.append(getattr(settings, option.name))
            values.extend(environ.get(var, "") for var in option.env)
    # A password someone put into the endpoint URL (http://user:password@host).
    endpoints = [settings.endpoint] if settings is not None else []
    endpoints += [environ.get(var, "") for option in OPTIONS if option.name == "endpoint" for var in option.env]
    for password in filter(None, map(_url_password, endpoints)):
        # Also as it stands in the URL: ":pw@" is no ordinary text even when the
        # password alone is too short to be masked everywhere.
        values += [password, f":{password}@"]
    return [v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_LENGTH]


def _url_password(url: str) -> str:
    if "@" not in url:
        return ""
    try:
        return urlparse(url.strip()).password or ""
    except ValueError:
        return ""


HELP_DESCRIPTION = """\
Publish a folder to an S3 bucket: upload what changed, fix headers that drifted,
write website redirects, optionally delete what is gone, and invalidate exactly
the CloudFront paths that changed.

Settings come from (highest priority first) these flags, PLUGIN_* environment
variables (how Drone and Woodpecker pass a step's `settings:`), a YAML file given
with --config, the fallback variables AWS_REGION, AWS_DEFAULT_REGION,
S3_SYNC_ENDPOINT, S3_ENDPOINT and DRY_RUN (named on the first line of a run that
uses one), and the defaults. A switch is turned on and off with --x / --no-x, or
--x=true / --x=false. Maps are JSON in flags and variables, YAML maps
in the file. In a rule map, a key like ".svg" or "" matches by extension (""
means no extension); any other key is a glob on the path relative to the source,
where * also matches '/'. The first matching rule, in the order written, wins.
include and exclude take the same patterns, tried on the relative path and on
each of its folders: files they leave out are neither uploaded nor deleted.
"""

HELP_EPILOG = """\
examples:
  drone-s3-sync --bucket my-site --source public --delete \\
      --cache-control '{".html": "max-age=60", "assets/*": "max-age=31536000"}'
  drone-s3-sync public s3://my-site/docs --delete=false
  PLUGIN_BUCKET=my-site PLUGIN_SOURCE=public drone-s3-sync
  drone-s3-sync --config deploy.yml --dry-run

{exit_statuses}
Set DEBUG=1 for detailed logs (secrets are never printed).
"""
