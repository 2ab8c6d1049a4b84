"""An AWS WAF (v2) web ACL evaluator for the statements ``template.yaml`` uses.

The local issuer runs every request through this module with the web ACL, the rule groups it
references and the regex pattern sets they reference, all read from the AWS endpoint, so the
rule that protects the local issuer is the deployed rule.

Supported: ``AndStatement``, ``OrStatement``, ``NotStatement``, ``ByteMatchStatement`` and
``RegexPatternSetReferenceStatement`` on ``UriPath``, ``QueryString``, ``Body`` (with
``OversizeHandling``) and ``SingleHeader``; the text transformations ``NONE``, ``URL_DECODE``,
``LOWERCASE`` and ``COMPRESS_WHITE_SPACE``; rule actions ``Allow``, ``Block`` (with custom
responses) and ``Count``; and a web ACL rule's ``RuleGroupReferenceStatement`` with its
``OverrideAction`` (``None`` or ``Count``) and ``RuleActionOverrides``. Anything else raises
:class:`UnsupportedStatementError` rather than being silently skipped.

Rule groups, as WAF documents them: a rule group reference is a web ACL rule of its own, never
nested (https://docs.aws.amazon.com/waf/latest/APIReference/API_RuleGroupReferenceStatement.html);
the group's rules run in their priority order with their own actions, or the action a
``RuleActionOverride`` of the reference names for them; a terminating action of the group ends
the web ACL's evaluation unless the reference's ``OverrideAction`` is ``Count``, which counts
the group's result instead (https://docs.aws.amazon.com/waf/latest/APIReference/API_OverrideAction.html).
A rule inside a group takes its custom response body from the group's ``CustomResponseBodies``,
an override in the web ACL from the web ACL's (CustomResponseBodyKey in
https://docs.aws.amazon.com/waf/latest/APIReference/API_CustomResponse.html).

Every rule that matched is reported in :attr:`Verdict.matches` with the web ACL rule's metric
name and, for a group's rule, ``"<group name>#<rule name>"``, the way WAF names them in sampled
requests (https://docs.aws.amazon.com/waf/latest/APIReference/API_SampledHTTPRequest.html).

The web ACL may be given as WAFv2's ``GetWebACL`` returns it through boto3 (``SearchString``
as bytes, ``RegexPatternSetReferenceStatement.ARN``) or as ``template.yaml`` defines it once its
intrinsics are resolved (``SearchString`` as text or ``SearchStringBase64``, ``Arn``); rule
groups likewise (``GetRuleGroup`` or the template's ``AWS::WAFv2::RuleGroup`` properties).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
#: A rule group (Name, Rules, CustomResponseBodies) as GetRuleGroup returns it, by its ARN.
RuleGroupLookup = Callable[[str], Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]

Action = Literal["ALLOW", "BLOCK", "COUNT"]


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
        for key, value in self.header_pairs():
            if key.lower() == wanted:
                return value
        return None

    def header_pairs(self) -> list[tuple[str, str]]:
        pairs = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return list(pairs)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched a request, as WAF reports it in a sampled request.

    ``metric_name`` is the web ACL rule's (for a rule group's rule, the reference rule's);
    ``rule_name_within_rule_group`` is ``"<group name>#<rule name>"`` for a group's rule;
    ``action`` is the action WAF applied and ``overridden_action`` the rule's own action when
    a rule action override replaced it. ``sampled`` is the web ACL rule's
    ``SampledRequestsEnabled``.
    """

    rule_name: str
    metric_name: str
    action: Action
    sampled: bool = True
    rule_name_within_rule_group: str | None = None
    overridden_action: Action | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The web ACL's decision: the terminating rule (None for the default action; for a rule
    group's rule, that rule, with the group's name in ``rule_group``) and, for a block, the
    response WAF sends instead of forwarding the request. ``matches`` lists every rule that
    matched, terminating or not (not part of equality)."""

    action: Literal["ALLOW", "BLOCK"]
    rule_name: str | None = None
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    rule_group: str | None = None
    matches: tuple[RuleMatch, ...] = field(default=(), compare=False)

    @property
    def blocked(self) -> bool:
        return self.action == "BLOCK"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A rule list's terminating result, before it becomes a Verdict."""

    action: Literal["ALLOW", "BLOCK"]
    rule_name: str
    spec: Mapping[str, Any]
    bodies: Mapping[str, Any]
    rule_group: str | None = None


class WebAclEvaluator:
    """Evaluates one web ACL: rules in priority order, the first terminating action wins."""

    def __init__(
        self,
        web_acl: Mapping[str, Any],
        regex_sets: RegexLookup,
        body_inspection_limit: int = COGNITO_BODY_INSPECTION_LIMIT,
        rule_groups: RuleGroupLookup | None = None,
    ) -> None:
        self._acl = web_acl
        self._rules = _by_priority(web_acl.get("Rules") or [])
        self._bodies: Mapping[str, Any] = web_acl.get("CustomResponseBodies") or {}
        self._regex_sets = regex_sets
        self._rule_groups = rule_groups or {}
        self._body_limit = body_inspection_limit
        self._compiled: dict[str, list[re.Pattern[bytes]]] = {}

    @property
    def web_acl_arn(self) -> str | None:
        arn = self._acl.get("ARN")
        return None if arn is None else str(arn)

    def evaluate(self, request: Request) -> Verdict:
        matches: list[RuleMatch] = []
        outcome = self._evaluate_acl_rules(request, matches)
        if outcome is not None:
            return self._verdict(outcome, matches)
        default = self._acl.get("DefaultAction") or {"Allow": {}}
        if "Block" in default:
            block = _Outcome("BLOCK", "", default["Block"] or {}, self._bodies)
            return replace(self._verdict(block, matches), rule_name=None)
        return Verdict("ALLOW", matches=tuple(matches))

    def _evaluate_acl_rules(self, request: Request, matches: list[RuleMatch]) -> _Outcome | None:
        for rule in self._rules:
            statement = rule["Statement"]
            visibility = rule.get("VisibilityConfig") or {}
            metric = str(visibility.get("MetricName") or rule["Name"])
            sampled = bool(visibility.get("SampledRequestsEnabled", True))
            if "RuleGroupReferenceStatement" in statement:
                outcome = self._evaluate_group(rule, request, matches, metric, sampled)
                if outcome is not None:
                    return outcome
                continue
            action = rule.get("Action")
            if not action:
                raise UnsupportedStatementError(
                    f"rule {rule.get('Name')} has no Action (a rule group of a kind not modelled?)"
                )
            if not self.matches(statement, request):
                continue
            kind = _action_kind(action)
            matches.append(RuleMatch(str(rule["Name"]), metric, kind, sampled))
            if kind != "COUNT":  # Count is non-terminating
                return _Outcome(
                    kind, str(rule["Name"]), action[_SPEC_KEY[kind]] or {}, self._bodies
                )
        return None

    def _evaluate_group(
        self,
        reference_rule: Mapping[str, Any],
        request: Request,
        matches: list[RuleMatch],
        metric: str,
        sampled: bool,
    ) -> _Outcome | None:
        reference = reference_rule["Statement"]["RuleGroupReferenceStatement"]
        group = self._rule_group(str(reference.get("ARN") or reference.get("Arn")))
        group_name = str(group["Name"])
        overrides = {
            str(o["Name"]): o["ActionToUse"] for o in reference.get("RuleActionOverrides") or []
        }
        for excluded in reference.get("ExcludedRules") or []:  # the older form of Count
            overrides.setdefault(str(excluded["Name"]), {"Count": {}})
        count_only = "Count" in (reference_rule.get("OverrideAction") or {"None": {}})
        group_bodies: Mapping[str, Any] = group.get("CustomResponseBodies") or {}
        for rule in _by_priority(group.get("Rules") or []):
            if not self.matches(rule["Statement"], request):
                continue
            name = str(rule["Name"])
            own = rule.get("Action")
            if not own:
                raise UnsupportedStatementError(
                    f"rule {name} of rule group {group_name} has no Action"
                )
            action, bodies = (
                (overrides[name], self._bodies) if name in overrides else (own, group_bodies)
            )
            kind = _action_kind(action)
            applied: Action = "COUNT" if count_only else kind
            matches.append(
                RuleMatch(
                    name,
                    metric,
                    applied,
                    sampled,
                    rule_name_within_rule_group=f"{group_name}#{name}",
                    overridden_action=_action_kind(own) if name in overrides else None,
                )
            )
            if kind == "COUNT":
                continue
            if count_only:  # the group's result is only counted; the web ACL goes on
                return None
            return _Outcome(
                kind, name, action[_SPEC_KEY[kind]] or {}, bodies, rule_group=group_name
            )
        return None

    def _rule_group(self, arn: str) -> Mapping[str, Any]:
        lookup = self._rule_groups
        try:
            return lookup[arn] if isinstance(lookup, Mapping) else lookup(arn)
        except KeyError:
            raise UnsupportedStatementError(f"rule group {arn} is not known") from None

    def _verdict(self, outcome: _Outcome, matches: list[RuleMatch]) -> Verdict:
        if outcome.action == "ALLOW":
            return Verdict(
                "ALLOW",
                rule_name=outcome.rule_name,
                rule_group=outcome.rule_group,
                matches=tuple(matches),
            )
        custom = outcome.spec.get("CustomResponse")
        if not custom:
            return Verdict(
                "BLOCK",
                rule_name=outcome.rule_name,
                status=403,
                rule_group=outcome.rule_group,
                matches=tuple(matches),
            )
        body, content_type = b"", None
        key = custom.get("CustomResponseBodyKey")
        if key:
            if key not in outcome.bodies:
                raise UnsupportedStatementError(f"custom response body {key} is not defined")
            spec = outcome.bodies[key]
            body = str(spec["Content"]).encode("utf-8")
            content_type = _CONTENT_TYPES.get(str(spec["ContentType"]), "text/plain")
        # WAF prefixes the names of custom response headers with x-amzn-waf-.
        headers = tuple(
            (f"x-amzn-waf-{h['Name']}", str(h["Value"]))
            for h in custom.get("ResponseHeaders") or []
        )
        return Verdict(
            "BLOCK",
            rule_name=outcome.rule_name,
            status=int(custom["ResponseCode"]),
            body=body,
            content_type=content_type,
            headers=headers,
            rule_group=outcome.rule_group,
            matches=tuple(matches),
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
_SPEC_KEY: dict[str, str] = {"ALLOW": "Allow", "BLOCK": "Block", "COUNT": "Count"}


def _by_priority(rules: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rules, key=lambda rule: int(rule["Priority"]))


def _action_kind(action: Mapping[str, Any]) -> Action:
    """ALLOW, BLOCK or COUNT for a RuleAction (moto and boto3 add null members: ignored)."""
    present = [key for key, value in action.items() if value is not None]
    for kind, key in _SPEC_KEY.items():
        if present == [key]:
            return kind  # type: ignore[return-value]
    raise UnsupportedStatementError(f"rule action {sorted(present)} is not modelled")


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
