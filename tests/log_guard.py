"""The suite-wide log guard: no log record may carry a secret, a token or an Authorization value.

A pytest plugin (``tests/conftest.py`` loads it). A handler on the root logger, and on every
logger that does not propagate, checks each record as it is emitted: its message, arguments,
``extra`` fields and formatted exception against

* the registry of known secret values: client secrets and origin values the tests, harnesses,
  events and local client files use (harvested from their module constants and files at
  collection, and added by fixtures at run time with :func:`register_secret`), each also in its
  form-urlencoded spelling;
* generic detectors: a JWT-shaped string (``eyJ<b64url>.<b64url>.``) and an HTTP Basic value
  (``Basic <base64 of something with a colon>``).

A test during which a record leaked fails at teardown; a leak outside any test (collection,
session fixtures) fails the run at session finish. Reports name the logger, level, source
line and kind of value, never the value itself.

Levels are left as the code under test sets them (records a logger does not create are not
checked); tests that want their DEBUG lines checked lower the level with ``caplog.set_level``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Shorter values are too likely to occur by chance in a log line to be checked as secrets.
MIN_SECRET_CHARS = 8

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.")
BASIC_VALUE = re.compile(r"\bBasic\s+([A-Za-z0-9+/]+={0,2})", re.IGNORECASE)

#: Module constants whose values are secrets: names that say so, minus names of things that
#: merely point at or describe a secret.
_SECRET_NAME = re.compile(r"SECRET|ORIGIN_VALUE|^ORIGIN$|PASSWORD")
_NOT_A_SECRET_NAME = re.compile(
    r"ARN|NAME|PATH|URL|_ID$|_IDS$|TAG|HEADER|METRIC|ERROR|BYTES|CHARS|SECONDS|LENGTH|STAGE"
)
_STANDARD_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# ---------------------------------------------------------------------- the registry


class SecretRegistry:
    """Known secret values (thread-safe: servers on loopback log from their own threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()

    def add(self, *values: object) -> None:
        spellings: set[str] = set()
        for value in values:
            if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
                continue
            spellings.update({value, quote_plus(value), quote(value, safe="")})
        with self._lock:
            self._values = self._values | spellings

    def values(self) -> frozenset[str]:
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self._values


REGISTRY = SecretRegistry()


def register_secret(*values: object) -> None:
    """Add values no log record may contain (fixtures call this for what they make up)."""
    REGISTRY.add(*values)


# ---------------------------------------------------------------------- the checker


def _is_basic_credentials(candidate: str) -> bool:
    try:
        decoded = base64.b64decode(candidate, validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def find_leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """What kinds of forbidden value ``text`` holds (descriptions only, never the values)."""
    kinds: list[str] = []
    if any(secret in text for secret in secrets):
        kinds.append("a registered secret value")
    if JWT_SHAPED.search(text):
        kinds.append("a JWT-shaped string")
    if any(_is_basic_credentials(m.group(1)) for m in BASIC_VALUE.finditer(text)):
        kinds.append("an HTTP Basic credentials value")
    return kinds


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def record_text(record: logging.LogRecord) -> str:
    """Everything of a record a handler could write: message, arguments, extras, exception."""
    parts = [_text_of(record.msg)]
    try:
        parts.append(record.getMessage())
    except Exception:  # a malformed format string: the raw parts are still checked
        parts.append(_text_of(record.args))
    parts.extend(
        _text_of(value)
        for name, value in vars(record).items()
        if name not in _STANDARD_RECORD_ATTRIBUTES
    )
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Leak:
    test: str | None
    logger: str
    level: str
    where: str
    kinds: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"{self.level} record of logger {self.logger!r} at {self.where}"
            f" holds {' and '.join(self.kinds)}"
        )


class LeakCheckingHandler(logging.Handler):
    """Checks every record it sees; keeps a description of those that leak."""

    def __init__(self, registry: SecretRegistry) -> None:
        super().__init__(level=logging.NOTSET)
        self.registry = registry
        self.current_test: str | None = None
        self.leaks: list[Leak] = []
        self.checked = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Every record is checked: filters others attach to root handlers (the proxy's
        ``SuppressFilter``, which keeps Lambda from writing its lines twice) do not apply."""
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record_text(record)
        except Exception:
            text = _text_of(record.msg)
        self.checked += 1
        kinds = find_leaks(text, self.registry.values())
        if kinds:
            self.leaks.append(
                Leak(
                    self.current_test,
                    record.name,
                    record.levelname,
                    f"{record.pathname}:{record.lineno}",
                    tuple(kinds),
                )
            )

    def attach(self) -> None:
        """On the root logger and on every logger whose records do not reach the root."""
        loggers = [logging.getLogger()] + [
            logger
            for logger in list(logging.Logger.manager.loggerDict.values())
            if isinstance(logger, logging.Logger) and not logger.propagate
        ]
        for logger in loggers:
            if self not in logger.handlers:
                logger.addHandler(self)

    def detach(self) -> None:
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger) and self in logger.handlers:
                logger.removeHandler(self)


HANDLER = LeakCheckingHandler(REGISTRY)


# ---------------------------------------------------------------------- what the suite knows


def harvest_module_constants(modules: Iterable[Any]) -> int:
    """Register module-level string constants named like secrets, and the ``client_secret`` of
    module-level client registrations (alone or in a list or tuple); returns how many."""
    count = 0
    for module in modules:
        for name, value in list(vars(module).items()):
            if not name.isupper():
                continue
            if (
                isinstance(value, str)
                and _SECRET_NAME.search(name)
                and not _NOT_A_SECRET_NAME.search(name)
            ):
                REGISTRY.add(value)
                count += 1
                continue
            for candidate in value if isinstance(value, list | tuple) else (value,):
                secret = getattr(candidate, "client_secret", None)
                if isinstance(secret, str):
                    REGISTRY.add(secret)
                    count += 1
    return count


def _basic_secrets(authorization: str) -> Iterator[str]:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return
    yield credentials.strip()
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return
    yield decoded.partition(":")[2]


def event_secrets(event: Any) -> Iterator[str]:
    """Client secrets and Authorization values an HTTP API event file carries."""
    if not isinstance(event, dict):
        return
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "authorization" and isinstance(value, str):
            yield value
            yield from _basic_secrets(value)
    body = event.get("body")
    if isinstance(body, str):
        if event.get("isBase64Encoded") is True:
            body = base64.b64decode(body).decode("utf-8", "replace")
        yield from (v for k, v in parse_qsl(body) if k == "client_secret")
    query = event.get("rawQueryString")
    if isinstance(query, str):
        yield from (v for k, v in parse_qsl(query) if k == "client_secret")


def harvest_files(root: Path = ROOT) -> None:
    """The secrets of the events/ files and of the local issuer's client files."""
    for path in sorted((root / "events").glob("*.json")):
        REGISTRY.add(*event_secrets(json.loads(path.read_text(encoding="utf-8"))))
    for path in sorted((root / "local").glob("clients*.json")):
        clients = json.loads(path.read_text(encoding="utf-8"))
        REGISTRY.add(*(c.get("client_secret") for c in clients if isinstance(c, dict)))


# ---------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    harvest_files()
    HANDLER.attach()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # Test modules and the harnesses they import are loaded by now.
    modules = {id(item.module): item.module for item in items if isinstance(item, pytest.Function)}
    modules.update(
        (id(module), module)
        for name, module in list(sys.modules.items())
        if name.startswith("tests.") and module is not None
    )
    harvest_module_constants(modules.values())


@pytest.fixture(autouse=True)
def _no_secret_in_any_log_record(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test (at teardown) if a record emitted during it leaked."""
    HANDLER.attach()  # loggers created since (Powertools' own) are covered too
    HANDLER.current_test = request.node.nodeid
    first = len(HANDLER.leaks)
    yield
    HANDLER.current_test = None
    leaked = HANDLER.leaks[first:]
    if leaked:
        pytest.fail(
            "a log record leaked a secret:\n" + "\n".join(leak.describe() for leak in leaked),
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    outside = [leak for leak in HANDLER.leaks if leak.test is None]
    HANDLER.detach()
    if outside:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "log guard: a record outside any test leaked a secret")
            for leak in outside:
                reporter.write_line(leak.describe())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"log guard: {HANDLER.checked} log records checked against "
        f"{len(REGISTRY.values())} known secret spellings; {len(HANDLER.leaks)} leaked"
    )
