"""A small resolver for the CloudFormation intrinsic functions ``template.yaml`` uses.

The local stack creates its AWS resources from the template's own definitions; this module
turns those definitions into plain values: ``Ref`` (parameters, pseudo parameters, resources),
``Fn::Sub`` (``${X}``, ``${X.Attr}``, ``${!Literal}``, and the two-argument form),
``Fn::GetAtt``, ``Fn::If`` with the template's ``Conditions`` (``Fn::Equals``, ``Fn::Not``,
``Fn::And``, ``Fn::Or``, ``Condition``), ``Fn::Join``, ``Fn::Select``, ``Fn::Split``,
``Fn::Base64``, ``Fn::FindInMap`` and ``AWS::NoValue``. Dynamic references
(``{{resolve:secretsmanager:...}}``) are handed to a callback, as CloudFormation resolves them
when it creates the resource.

Resources are not created here: the caller registers each resource's ``Ref`` value and
attributes (:meth:`IntrinsicResolver.register`) as it creates them, and a reference to a
resource not registered yet raises :class:`UnresolvedReferenceError`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final


class UnresolvedReferenceError(ValueError):
    """A reference to something the resolver does not know (yet)."""


class _NoValue:
    """``AWS::NoValue``: the enclosing property or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z0-9-]+):(.+?)\}\}")


@dataclass(frozen=True, slots=True)
class StackContext:
    """The values of the pseudo parameters (moto's default account unless told otherwise)."""

    stack_name: str
    region: str
    account_id: str = "123456789012"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}"
                f":stack/{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }


#: Resolves the inside of one dynamic reference: (service, reference) -> value.
DynamicReferenceResolver = Callable[[str, str], str]


class IntrinsicResolver:
    """Resolves intrinsic functions against parameters, pseudo parameters and the resources
    registered so far."""

    def __init__(
        self,
        template: Mapping[str, Any],
        context: StackContext,
        parameters: Mapping[str, Any] | None = None,
        dynamic_references: DynamicReferenceResolver | None = None,
    ) -> None:
        self._template = template
        self._context = context
        self._pseudo = context.pseudo_parameters()
        self._parameters = self._parameter_values(template, parameters or {})
        self._dynamic_references = dynamic_references
        self._refs: dict[str, Any] = {}
        self._attributes: dict[tuple[str, str], Any] = {}
        self._conditions: dict[str, bool] = {}

    @property
    def context(self) -> StackContext:
        return self._context

    @staticmethod
    def _parameter_values(
        template: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        declared = template.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise UnresolvedReferenceError(
                f"parameters not declared in the template: {sorted(unknown)}"
            )
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                continue  # referenced without a value: an error at reference time
            kind = str(spec.get("Type", "String"))
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                values[name] = (
                    [str(v) for v in raw] if isinstance(raw, list) else str(raw).split(",")
                )
            else:
                # CloudFormation hands every scalar parameter over as a string (Numbers too).
                values[name] = str(raw)
        return values

    def parameter(self, name: str) -> Any:
        if name not in self._parameters:
            raise UnresolvedReferenceError(f"parameter {name} has no value and no default")
        return self._parameters[name]

    def parameters(self) -> dict[str, Any]:
        """Every parameter that has a value, as CloudFormation hands them over (strings)."""
        return dict(self._parameters)

    def register(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        """Record what ``Ref`` and ``Fn::GetAtt`` return for a resource that now exists."""
        self._refs[logical_id] = ref
        for name, value in attributes.items():
            self._attributes[(logical_id, name)] = value

    # ------------------------------------------------------------------ references
    def ref(self, name: str) -> Any:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in (self._template.get("Parameters") or {}):
            return self.parameter(name)
        if name in self._refs:
            return self._refs[name]
        if name in (self._template.get("Resources") or {}):
            raise UnresolvedReferenceError(f"resource {name} has not been created")
        raise UnresolvedReferenceError(f"unknown reference {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        key = (logical_id, attribute)
        if key in self._attributes:
            return self._attributes[key]
        raise UnresolvedReferenceError(f"attribute {logical_id}.{attribute} is not known")

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self._template.get("Conditions") or {}
            if name not in conditions:
                raise UnresolvedReferenceError(f"unknown condition {name}")
            self._conditions[name] = self._truth(conditions[name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, bool):
            return expression
        if not isinstance(expression, Mapping) or len(expression) != 1:
            raise UnresolvedReferenceError(f"not a condition expression: {expression!r}")
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(str(argument))
        if function == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return _as_text(left) == _as_text(right)
        if function == "Fn::Not":
            (inner,) = argument
            return not self._truth(inner)
        if function == "Fn::And":
            return all(self._truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self._truth(item) for item in argument)
        raise UnresolvedReferenceError(f"unsupported condition function {function}")

    # ------------------------------------------------------------------ resolution
    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function and dynamic reference resolved."""
        return self._resolve(value)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self.ref(str(argument))
                if isinstance(key, str) and key.startswith("Fn::"):
                    return self._function(key, argument)
            resolved: dict[str, Any] = {}
            for key, item in value.items():
                out = self._resolve(item)
                if out is not NO_VALUE:
                    resolved[key] = out
            return resolved
        if isinstance(value, list):
            return [out for out in (self._resolve(item) for item in value) if out is not NO_VALUE]
        if isinstance(value, str):
            return self._dynamic(value)
        return value

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::GetAtt":
            if isinstance(argument, str):
                logical_id, attribute = argument.split(".", 1)
            else:
                logical_id, attribute = (str(self._resolve(part)) for part in argument)
            return self.get_att(logical_id, attribute)
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self._resolve(when_true if self.condition(str(condition)) else when_false)
        if name == "Fn::Join":
            delimiter, items = argument
            return self._dynamic(str(delimiter).join(_as_text(i) for i in self._resolve(items)))
        if name == "Fn::Select":
            index, items = argument
            return self._resolve(items)[int(self._resolve(index))]
        if name == "Fn::Split":
            delimiter, text = argument
            return _as_text(self._resolve(text)).split(str(delimiter))
        if name == "Fn::Base64":
            return base64.b64encode(_as_text(self._resolve(argument)).encode()).decode("ascii")
        if name == "Fn::FindInMap":
            mapping, top, second = (_as_text(self._resolve(part)) for part in argument)
            return self._template["Mappings"][mapping][top][second]
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._truth({name: argument})
        raise UnresolvedReferenceError(f"unsupported intrinsic function {name}")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, raw_variables = argument
            variables = {name: self._resolve(v) for name, v in raw_variables.items()}

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return _as_text(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return _as_text(self.get_att(logical_id, attribute))
            return _as_text(self.ref(expression))

        return self._dynamic(_SUB_VARIABLE.sub(substitute, str(text)))

    def _dynamic(self, text: str) -> str:
        if "{{resolve:" not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            if self._dynamic_references is None:
                raise UnresolvedReferenceError("a dynamic reference needs a resolver callback")
            return self._dynamic_references(match.group(1), match.group(2))

        return _DYNAMIC_REFERENCE.sub(substitute, text)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise UnresolvedReferenceError(f"expected a scalar, got {value!r}")


@dataclass(frozen=True, slots=True)
class SecretsManagerReference:
    """``{{resolve:secretsmanager:secret-id:SecretString:json-key:version-stage:version-id}}``"""

    secret_id: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None

    @classmethod
    def parse(cls, reference: str) -> SecretsManagerReference:
        # The secret id may be an ARN, which contains colons: split at the SecretString marker.
        secret_id, marker, rest = reference.partition(":SecretString")
        if not marker:
            return cls(secret_id=reference)
        parts = rest.split(":")[1:] if rest.startswith(":") else []
        parts += [""] * (3 - len(parts))
        json_key, stage, version_id = (part or None for part in parts[:3])
        return cls(secret_id, json_key, stage, version_id)
