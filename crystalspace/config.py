"""Configuration loading, shared by every component: YAML files (one-line errors, relative paths
against the file), ``--set key=value`` overrides read as YAML, and pydantic validation with one
error line. Each component owns its pydantic model (``space.config``, ``mlff.config``,
``gen.config``, ``maps.config``, …) and builds it with :func:`make_config`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError

from crystalspace.errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """Invalid configuration given by the user."""


def path_field(**kwargs: Any) -> Any:
    """A pydantic field holding a path (or a list of them): relative in a config file means
    relative to the file. ``names``: values that are names, not paths (``mp``, ``smact14``)."""
    names = kwargs.pop("names", ())
    return Field(json_schema_extra={"path": True, "names": list(names)}, **kwargs)


def make_config(model: type[M], file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> M:
    """``model`` from an optional YAML file, then ``overrides`` on top (a ``--set`` or option value
    given as text is read as YAML; ``key.sub=value`` sets one entry of a mapping field), validated
    with one :class:`ConfigError` line."""
    return validated(model, apply_overrides(read_config_file(file, model), overrides))


def job_arguments(parser: argparse.ArgumentParser, default_config: Path) -> None:
    """Add ``--config FILE`` and repeatable ``--set key=value``: the options a job entrypoint
    (``pipelines/*.py``, run by ``ray job submit``) shares with the ``crystalspace`` command line."""
    parser.add_argument("--config", type=Path, default=default_config, help="YAML config")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, read as YAML (repeatable)")  # fmt: skip


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` with ``overrides`` set (None values skipped, text read as YAML, dotted keys nested)."""
    out = dict(data)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        value = parse_value(key, value) if isinstance(value, str) else value
        head, dot, rest = key.partition(".")
        if dot:
            out[head] = {**(out.get(head) or {}), rest: value}
        else:
            out[key] = value
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-5`` as a number (YAML 1.2; PyYAML's 1.1 needs ``1.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+.0123456789")
)


def load_yaml(text: str) -> Any:
    """A YAML value (config files and ``--set key=value`` values alike)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def read_config_file(file: str | Path | None, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """The mapping in a YAML config file ({} without a file), or one clear :class:`ConfigError`.

    Relative paths in the file (the ``model``'s fields marked ``path``) resolve against the
    file's folder, so a config file means the same from any working directory.
    """
    if file is None:
        return {}
    try:
        text = Path(file).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {file} is not a YAML text file (not UTF-8)") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {file} is not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config {file} must be a mapping of settings (key: value), not a {type(data).__name__}"
        )
    return resolve_paths(data, model, Path(file).resolve().parent) if model else data


def parse_value(key: str, text: str) -> Any:
    """A ``--set key=value`` value read as YAML (``1e-5``, ``[1, 2]``, ``{a: 1}``), or one clear error."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: {text!r} is not a valid value: {_yaml_problem(exc)}") from None


def parse_sets(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["key=value", …]`` -> ``{key: value}`` (values still text), one error for an item without ``=``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(problem)


def resolve_paths(data: dict[str, Any], model: type[BaseModel], base: Path) -> dict[str, Any]:
    """``data`` with the relative paths of ``model``'s path fields joined to ``base``."""
    out = dict(data)
    for key, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if key in out and extra.get("path"):
            names = {str(n) for n in extra.get("names") or ()}  # type: ignore[union-attr]
            value = out[key]
            out[key] = (
                [_join(v, base, names) for v in value]
                if isinstance(value, list)
                else _join(value, base, names)
            )
    return out


def relative_to_file(data: dict[str, Any], keys: tuple[str, ...], file: str | Path) -> dict[str, Any]:
    """``data`` with the relative paths under ``keys`` joined to ``file``'s folder (for configs
    that are not pydantic models)."""
    base = Path(file).resolve().parent
    return {k: _join(v, base, set()) if k in keys else v for k, v in data.items()}


def _join(value: Any, base: Path, names: set[str]) -> Any:
    if not isinstance(value, str) or value in names or "://" in value or Path(value).is_absolute():
        return value
    return str(base / value)


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``model(**data)``, its first validation error as one :class:`ConfigError` line."""
    try:
        return model(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])  # empty for a check across fields
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {message}" if where else message) from None
