"""An AWS WAF (v2) web ACL evaluator for the statements ``template.yaml`` uses.

The local issuer runs every request through this module with the web ACL and regex pattern
set read from the AWS endpoint, so the rule that protects the local issuer is the deployed rule.

Supported: ``AndStatement``, ``OrStatement``, ``NotStatement``, ``ByteMatchStatement`` and
``RegexPatternSetReferenceStatement`` on ``UriPath``, ``QueryString``, ``Body`` (with
``OversizeHandling``) and ``SingleHeader``; the text transformations ``NONE``, ``URL_DECODE``,
``LOWERCASE`` and ``COMPRESS_WHITE_SPACE``; rule actions ``Allow``, ``Block`` (with custom
responses) and ``Count``. Anything else raises :class:`UnsupportedStatementError` rather than being
silently skipped.

The web ACL may be given as WAFv2's ``GetWebACL`` returns it through boto3 (``SearchString``
as bytes, ``RegexPatternSetReferenceStatement.ARN``) or as ``template.yaml`` defines it once its
intrinsics are resolved (``SearchString`` as text or ``SearchStringBase64``, ``Arn``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

#: How much of a body a Cognito user pool forwards to WAF: 16 KB unless the web ACL's
#: AssociationConfig raises it (8 KB is ALB's and AppSync's fixed limit)
#: (https://docs.aws.amazon.com/waf/latest/APIReference/API_AssociationConfig.html).
COGNITO_BODY_INSPECTION_LIMIT = 16 * 1024

_CONTENT_TYPES = {
    "APPLICATION_JSON": "application/json",
    "TEXT_HTML": "text/html",
    "TEXT_PLAIN": "text/plain",
}
_WHITE_SPACE = re.compile(rb"[ \t\n\r\f\v\xa0]+")
_WORD_BYTE = rb"[A-Za-z0-9_]"

#: Regular expressions of a regex pattern set, by the set's ARN.
RegexLookup = Callable[[str], Iterable[str]] | Mapping[str, Iterable[str]]


class UnsupportedStatementError(ValueError):
    """The web ACL uses a statement, field or transformation this evaluator does not model."""


@dataclass(frozen=True, slots=True)
class Request:
    """What WAF inspects of one HTTP request.

    ``path`` is the raw (still percent-encoded) URI path and ``query_string`` the raw query
    string without ``?``, as they arrived on the wire. ``headers`` may repeat names; a
    ``SingleHeader`` field inspects the first value of a name (compared case-insensitively).
    """

    method: str
    path: str
    query_string: str = ""
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = ()
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        for key, value in pairs:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The web ACL's decision: the terminating rule (None for the default action) and, for a
    block, the response WAF sends instead of forwarding the request."""

    action: Literal["ALLOW", "BLOCK"]
    rule_name: str | None = None
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def blocked(self) -> bool:
        return self.action == "BLOCK"


class WebAclEvaluator:
    """Evaluates one web ACL: rules in priority order, the first terminating action wins."""

    def __init__(
        self,
        web_acl: Mapping[str, Any],
        regex_sets: RegexLookup,
        body_inspection_limit: int = COGNITO_BODY_INSPECTION_LIMIT,
    ) -> None:
        self._acl = web_acl
        self._rules = sorted(web_acl.get("Rules") or [], key=lambda rule: int(rule["Priority"]))
        self._bodies: Mapping[str, Any] = web_acl.get("CustomResponseBodies") or {}
        self._regex_sets = regex_sets
        self._body_limit = body_inspection_limit
        self._compiled: dict[str, list[re.Pattern[bytes]]] = {}

    def evaluate(self, request: Request) -> Verdict:
        for rule in self._rules:
            if "Action" not in rule or rule["Action"] is None:
                raise UnsupportedStatementError(
                    f"rule {rule.get('Name')} has no Action (rule group?)"
                )
            if not self.matches(rule["Statement"], request):
                continue
            action = rule["Action"]
            if "Count" in action:
                continue  # non-terminating
            if "Allow" in action:
                return Verdict("ALLOW", rule_name=rule["Name"])
            if "Block" in action:
                return self._block(rule["Name"], action["Block"] or {})
            raise UnsupportedStatementError(f"rule action {sorted(action)} is not modelled")
        default = self._acl.get("DefaultAction") or {"Allow": {}}
        if "Block" in default:
            return self._block(None, default["Block"] or {})
        return Verdict("ALLOW")

    def _block(self, rule_name: str | None, block: Mapping[str, Any]) -> Verdict:
        custom = block.get("CustomResponse")
        if not custom:
            return Verdict("BLOCK", rule_name=rule_name, status=403)
        body, content_type = b"", None
        key = custom.get("CustomResponseBodyKey")
        if key:
            if key not in self._bodies:
                raise UnsupportedStatementError(f"custom response body {key} is not defined")
            spec = self._bodies[key]
            body = str(spec["Content"]).encode("utf-8")
            content_type = _CONTENT_TYPES.get(str(spec["ContentType"]), "text/plain")
        # WAF prefixes the names of custom response headers with x-amzn-waf-.
        headers = tuple(
            (f"x-amzn-waf-{h['Name']}", str(h["Value"]))
            for h in custom.get("ResponseHeaders") or []
        )
        return Verdict(
            "BLOCK",
            rule_name=rule_name,
            status=int(custom["ResponseCode"]),
            body=body,
            content_type=content_type,
            headers=headers,
        )

    # ------------------------------------------------------------------ statements
    def matches(self, statement: Mapping[str, Any], request: Request) -> bool:
        """Whether one statement (and its nested statements) matches the request."""
        if len(statement) != 1:
            raise UnsupportedStatementError(
                f"a statement has exactly one key, got {sorted(statement)}"
            )
        ((kind, body),) = statement.items()
        if kind == "AndStatement":
            return all(self.matches(s, request) for s in body["Statements"])
        if kind == "OrStatement":
            return any(self.matches(s, request) for s in body["Statements"])
        if kind == "NotStatement":
            return not self.matches(body["Statement"], request)
        if kind == "ByteMatchStatement":
            return self._byte_match(body, request)
        if kind == "RegexPatternSetReferenceStatement":
            return self._regex_set_match(body, request)
        raise UnsupportedStatementError(f"{kind} is not modelled")

    def _byte_match(self, spec: Mapping[str, Any], request: Request) -> bool:
        value = self._inspected(spec, request)
        if isinstance(value, bool):
            return value
        return positional_match(str(spec["PositionalConstraint"]), value, search_string_bytes(spec))

    def _regex_set_match(self, spec: Mapping[str, Any], request: Request) -> bool:
        value = self._inspected(spec, request)
        if isinstance(value, bool):
            return value
        arn = str(spec.get("ARN") or spec.get("Arn"))
        return any(pattern.search(value) for pattern in self._patterns(arn))

    def _patterns(self, arn: str) -> list[re.Pattern[bytes]]:
        if arn not in self._compiled:
            lookup = self._regex_sets
            regexes = lookup[arn] if isinstance(lookup, Mapping) else lookup(arn)
            self._compiled[arn] = [re.compile(r.encode("utf-8")) for r in regexes]
        return self._compiled[arn]

    def _inspected(self, spec: Mapping[str, Any], request: Request) -> bytes | bool:
        """The transformed bytes to inspect, or the statement's outcome when there are none:
        False for an absent component, the OversizeHandling outcome for an oversize body."""
        raw = self._field(spec["FieldToMatch"], request)
        if raw is None or raw is _OVERSIZE_NO_MATCH:
            return False
        if raw is _OVERSIZE_MATCH:
            return True
        if not isinstance(raw, bytes):
            raise TypeError("unexpected field value")
        return transform(raw, spec.get("TextTransformations") or [])

    def _field(self, field_to_match: Mapping[str, Any], request: Request) -> object:
        """The component's bytes, None when it is absent, or an oversize marker."""
        if len(field_to_match) != 1:
            raise UnsupportedStatementError(
                f"FieldToMatch {sorted(field_to_match)} is not modelled"
            )
        ((kind, options),) = field_to_match.items()
        options = options or {}
        if kind == "UriPath":
            return request.path.encode("utf-8", "surrogateescape")
        if kind == "QueryString":
            return request.query_string.encode("utf-8", "surrogateescape")
        if kind == "SingleHeader":
            value = request.header(str(options["Name"]))
            return None if value is None else value.encode("latin-1", "replace")
        if kind == "Body":
            if len(request.body) <= self._body_limit:
                return request.body
            handling = str(options.get("OversizeHandling", "CONTINUE"))
            if handling == "MATCH":
                return _OVERSIZE_MATCH
            if handling == "NO_MATCH":
                return _OVERSIZE_NO_MATCH
            return request.body[: self._body_limit]
        raise UnsupportedStatementError(f"FieldToMatch {kind} is not modelled")


_OVERSIZE_MATCH = object()
_OVERSIZE_NO_MATCH = object()


def search_string_bytes(spec: Mapping[str, Any]) -> bytes:
    """A ByteMatchStatement's search string as bytes, whatever form the definition has.

    boto3 decodes WAFv2's base64 blob into bytes (moto returns it that way too); the template
    has text (``SearchString``) or base64 (``SearchStringBase64``, CloudFormation only).
    """
    if "SearchStringBase64" in spec:
        return base64.b64decode(str(spec["SearchStringBase64"]))
    raw = spec["SearchString"]
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    return str(raw).encode("utf-8")


def transform(value: bytes, transformations: Iterable[Mapping[str, Any]]) -> bytes:
    """Apply WAF text transformations in ascending priority order."""
    for step in sorted(transformations, key=lambda t: int(t["Priority"])):
        kind = str(step["Type"])
        if kind == "NONE":
            continue
        if kind == "URL_DECODE":
            # %XX sequences and '+' decode; malformed sequences stay as they are.
            value = unquote_to_bytes(value.replace(b"+", b" "))
        elif kind == "LOWERCASE":
            value = value.lower()
        elif kind == "COMPRESS_WHITE_SPACE":
            value = _WHITE_SPACE.sub(b" ", value)
        else:
            raise UnsupportedStatementError(f"text transformation {kind} is not modelled")
    return value


def positional_match(constraint: str, value: bytes, search: bytes) -> bool:
    """WAF's PositionalConstraint semantics on bytes."""
    if constraint == "EXACTLY":
        return value == search
    if constraint == "STARTS_WITH":
        return value.startswith(search)
    if constraint == "ENDS_WITH":
        return value.endswith(search)
    if constraint == "CONTAINS":
        return search in value
    if constraint == "CONTAINS_WORD":
        # The search string must be bounded by non-word bytes (or the value's ends).
        pattern = rb"(?<!" + _WORD_BYTE + rb")" + re.escape(search) + rb"(?!" + _WORD_BYTE + rb")"
        return re.search(pattern, value) is not None
    raise UnsupportedStatementError(f"PositionalConstraint {constraint} is not modelled")
