"""A strict evaluator of the part of the CloudWatch Logs Insights query language that the saved
queries in template.yaml use, run over JSON log records as Logs Insights discovers them.

Supported (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_QuerySyntax.html),
and nothing else (anything else raises :class:`QueryError`, so a query cannot pass here by
using syntax this evaluator only pretends to know):

* commands separated by ``|``: ``fields a, b``; ``filter <condition>``;
  ``stats <aggregate> [as name], ... [by field, ...]``; ``sort field [asc|desc]``; ``limit N``;
* conditions: ``and``, ``or``, ``not``, parentheses, ``= != < <= > >=`` between a field and a
  double-quoted string or a number, ``field in [v, ...]``, ``ispresent(field)``. As in Logs
  Insights, a comparison with a field the record lacks is false;
* aggregates: ``count(*)``, ``count(field)``, ``sum``, ``avg``, ``min``, ``max``, ``pct(field, p)``.

Each record is one log event's JSON object (a Powertools line); ``@timestamp`` is taken from
its ``timestamp``. :func:`fields_read` names the log fields a query reads (not the ``@`` system
fields, nor the names its ``stats`` command gives its results), split into the fields its
``filter``, ``stats`` and ``sort`` commands work with and those it only displays;
:func:`matching` the records its ``filter`` commands select.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>|\(|\)|\[|\]|,|\*)
      | (?P<name>[@A-Za-z_][A-Za-z0-9_.@]*)
    )""",
    re.VERBOSE,
)
_AGGREGATES = {"count", "sum", "avg", "min", "max", "pct"}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class QueryError(ValueError):
    """The query uses syntax outside the supported subset, or is malformed."""


@dataclass(frozen=True)
class FieldsRead:
    """The log fields a query reads: to select and group (``used``), or only to show them."""

    used: frozenset[str]
    displayed: frozenset[str]


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    position: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("the command ends too early")
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        _, text = self.take()
        if text.lower() != value:
            raise QueryError(f"expected {value!r}, found {text!r}")

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1].lower() == value

    def done(self) -> bool:
        return self.peek() is None


def _tokenize(text: str) -> _Tokens:
    items: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"cannot read the query at {text[position : position + 20]!r}")
        kind = str(match.lastgroup)
        items.append((kind, match.group(kind)))
        position = match.end()
    return _Tokens(items)


def _split_commands(query: str) -> list[str]:
    """The commands of a query: ``|`` outside quotes separates them."""
    commands, current, quoted = [], [], False
    for char in query:
        if char == '"':
            quoted = not quoted
        if char == "|" and not quoted:
            commands.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    commands.append("".join(current).strip())
    if any(not command for command in commands):
        raise QueryError("an empty command")
    return commands


# ---------------------------------------------------------------------- conditions
@dataclass
class _Condition:
    evaluate: Callable[[Mapping[str, Any]], bool]
    fields: set[str] = field(default_factory=set)


def _literal(tokens: _Tokens) -> Any:
    kind, text = tokens.take()
    if kind == "string":
        return text[1:-1].replace('\\"', '"')
    if kind == "number":
        return float(text) if "." in text else int(text)
    raise QueryError(f"expected a string or a number, found {text!r}")


def _compare(operator: str, value: Any, literal: Any) -> bool:
    if isinstance(literal, (int, float)) and not isinstance(value, bool):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
    elif not isinstance(value, str):
        value = str(value)
    try:
        return _COMPARISONS[operator](value, literal)
    except TypeError:
        return False


def _primary(tokens: _Tokens) -> _Condition:
    if tokens.at("("):
        tokens.take()
        inner = _or(tokens)
        tokens.expect(")")
        return inner
    if tokens.at("not"):
        tokens.take()
        inner = _primary(tokens)
        return _Condition(lambda r: not inner.evaluate(r), inner.fields)
    kind, name = tokens.take()
    if kind != "name":
        raise QueryError(f"expected a field, found {name!r}")
    if name.lower() == "ispresent":
        tokens.expect("(")
        _, target = tokens.take()
        tokens.expect(")")
        return _Condition(lambda r: target in r, {target})
    if tokens.at("in"):
        tokens.take()
        tokens.expect("[")
        members = [_literal(tokens)]
        while tokens.at(","):
            tokens.take()
            members.append(_literal(tokens))
        tokens.expect("]")
        return _Condition(
            lambda r: name in r and any(_compare("=", r[name], m) for m in members), {name}
        )
    _, operator = tokens.take()
    if operator not in _COMPARISONS:
        raise QueryError(f"unsupported operator {operator!r}")
    literal = _literal(tokens)
    return _Condition(lambda r: name in r and _compare(operator, r[name], literal), {name})


def _and(tokens: _Tokens) -> _Condition:
    parts = [_primary(tokens)]
    while tokens.at("and"):
        tokens.take()
        parts.append(_primary(tokens))
    return _Condition(
        lambda r: all(p.evaluate(r) for p in parts), set().union(*(p.fields for p in parts))
    )


def _or(tokens: _Tokens) -> _Condition:
    parts = [_and(tokens)]
    while tokens.at("or"):
        tokens.take()
        parts.append(_and(tokens))
    return _Condition(
        lambda r: any(p.evaluate(r) for p in parts), set().union(*(p.fields for p in parts))
    )


# ---------------------------------------------------------------------- commands
@dataclass
class _Aggregate:
    function: str
    target: str | None  # None: count(*)
    percentile: float | None
    name: str

    def value(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        if self.function == "count":
            return len(rows) if self.target is None else sum(self.target in r for r in rows)
        assert self.target is not None
        present = [r[self.target] for r in rows if self.target in r]
        if not present:
            return None
        if self.function in ("min", "max"):  # numbers, or times such as @timestamp
            return min(present) if self.function == "min" else max(present)
        values = sorted(_number(v) for v in present)
        if self.function == "sum":
            return sum(values)
        if self.function == "avg":
            return sum(values) / len(values)
        assert self.percentile is not None
        return values[max(0, math.ceil(self.percentile / 100 * len(values)) - 1)]


def _number(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    raise QueryError(f"not a number: {value!r}")


def _names(tokens: _Tokens) -> list[str]:
    names = []
    while True:
        kind, name = tokens.take()
        if kind != "name":
            raise QueryError(f"expected a field, found {name!r}")
        names.append(name)
        if not tokens.at(","):
            return names
        tokens.take()


def _aggregates(tokens: _Tokens) -> tuple[list[_Aggregate], list[str]]:
    aggregates: list[_Aggregate] = []
    while True:
        _, function = tokens.take()
        function = function.lower()
        if function not in _AGGREGATES:
            raise QueryError(f"unsupported stats function {function!r}")
        tokens.expect("(")
        target: str | None = None
        percentile: float | None = None
        if tokens.at("*"):
            if function != "count":
                raise QueryError(f"{function}(*) is not a function")
            tokens.take()
        else:
            kind, target = tokens.take()
            if kind != "name":
                raise QueryError(f"expected a field, found {target!r}")
            if function == "pct":
                tokens.expect(",")
                percentile = float(_literal(tokens))
        tokens.expect(")")
        name = f"{function}({target or '*'})"
        if tokens.at("as"):
            tokens.take()
            name = tokens.take()[1]
        aggregates.append(_Aggregate(function, target, percentile, name))
        if not tokens.at(","):
            break
        tokens.take()
    groups: list[str] = []
    if tokens.at("by"):
        tokens.take()
        groups = _names(tokens)
    return aggregates, groups


def _timestamped(record: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(record)
    if "timestamp" in row:
        row.setdefault("@timestamp", row["timestamp"])
    return row


def run(query: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows ``query`` returns for ``records``."""
    rows = [_timestamped(r) for r in records]
    shown: list[str] | None = None
    for command in _split_commands(query):
        tokens = _tokenize(command)
        _, verb = tokens.take()
        verb = verb.lower()
        if verb == "fields":
            shown = _names(tokens)
        elif verb == "filter":
            condition = _or(tokens)
            rows = [r for r in rows if condition.evaluate(r)]
        elif verb == "stats":
            aggregates, groups = _aggregates(tokens)
            buckets: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
            for row in rows:
                buckets.setdefault(tuple(row.get(g) for g in groups), []).append(row)
            rows = [
                {**dict(zip(groups, key, strict=True)), **{a.name: a.value(b) for a in aggregates}}
                for key, b in buckets.items()
            ]
            shown = None
        elif verb == "sort":
            (name,) = _names(tokens)
            descending = False
            if tokens.at("desc") or tokens.at("asc"):
                descending = tokens.take()[1].lower() == "desc"
            present = [r for r in rows if r.get(name) is not None]
            absent = [r for r in rows if r.get(name) is None]
            rows = sorted(present, key=lambda r: r[name], reverse=descending) + absent
        elif verb == "limit":
            rows = rows[: int(_literal(tokens))]
        else:
            raise QueryError(f"unsupported command {verb!r}")
        if not tokens.done():
            raise QueryError(f"unexpected {tokens.peek()!r} in {command!r}")
    if shown is not None:
        rows = [{name: row.get(name) for name in shown} for row in rows]
    return rows


def matching(query: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records the query's ``filter`` commands keep: the log lines it counts or shows."""
    rows = [_timestamped(r) for r in records]
    for command in _split_commands(query):
        tokens = _tokenize(command)
        if tokens.take()[1].lower() == "filter":
            condition = _or(tokens)
            rows = [r for r in rows if condition.evaluate(r)]
    return rows


def fields_read(query: str) -> FieldsRead:
    """The log fields ``query`` reads (see the module's docstring)."""
    used: set[str] = set()
    displayed: set[str] = set()
    produced: set[str] = set()
    for command in _split_commands(query):
        tokens = _tokenize(command)
        _, verb = tokens.take()
        verb = verb.lower()
        if verb == "fields":
            displayed.update(_names(tokens))
        elif verb == "filter":
            used.update(_or(tokens).fields)
        elif verb == "stats":
            aggregates, groups = _aggregates(tokens)
            used.update(a.target for a in aggregates if a.target is not None)
            used.update(groups)
            produced.update(a.name for a in aggregates)
        elif verb == "sort":
            used.update(_names(tokens))
        elif verb != "limit":
            raise QueryError(f"unsupported command {verb!r}")

    def logged(names: set[str]) -> frozenset[str]:
        return frozenset(n for n in names if not n.startswith("@") and n not in produced)

    return FieldsRead(used=logged(used), displayed=logged(displayed - used))
