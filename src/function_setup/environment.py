"""A function's settings, parsed once per container from its environment into one typed object.

Each function declares a frozen dataclass whose fields are named like its environment variables
(lower-cased); :func:`settings_from_environment` reads them, converts each to its default's type
(a field without a default is a required string) and lets the dataclass check its ranges with
:func:`check_settings`. Every problem is a :class:`ConfigurationError` that names the variable,
never its value's meaning beyond the text the operator typed. Domain code never reads
``os.environ``: each function's ``app.py`` does, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


class ConfigurationError(ValueError):
    """An environment variable is missing or out of range (raised at cold start, never later)."""


def settings_from_environment(
    settings_class: type[SettingsT], environ: Mapping[str, str]
) -> SettingsT:
    """``settings_class`` built from environment variables named like its fields, upper-cased.

    An unset or empty variable leaves the field at its default; a field without a default is
    required.
    """
    values: dict[str, Any] = {}
    for f in fields(settings_class):
        name = f.name.upper()
        raw = environ.get(name)
        if raw is None or raw == "":
            if f.default is MISSING:  # no default: required
                raise ConfigurationError(f"environment variable {name} is required")
            continue
        kind = str if f.default is MISSING else type(f.default)
        try:
            values[f.name] = raw if kind is str else kind(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc
    return settings_class(**values)


def check_settings(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise :class:`ConfigurationError` with the message of the first check that failed."""
    for ok, message in checks:
        if not ok:
            raise ConfigurationError(message)
