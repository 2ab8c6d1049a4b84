"""Reads ``template.yaml`` so that tests and the local stack build resources from the same
definitions that get deployed (the DynamoDB key schema, the WAF rule, the regex pattern set),
and shows it as CloudFormation deploys it for given parameters (:func:`as_deployed`).

CloudFormation short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) load as their long-form
dicts (``{"Ref": ...}``, ``{"Fn::Sub": ...}``), exactly as CloudFormation reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from local.cloudformation_intrinsics import NO_VALUE, IntrinsicResolver, StackContext

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    # !Ref and !Condition are the long forms' "Ref" and "Condition"; every other tag is Fn::<tag>.
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (intrinsics in their long form)."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


@lru_cache(maxsize=1)
def default_template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def resource(logical_id: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """One resource's definition ({"Type": ..., "Properties": ...})."""
    resources = (template or default_template())["Resources"]
    if logical_id not in resources:
        raise KeyError(f"template.yaml has no resource {logical_id}")
    return dict(resources[logical_id])


def dynamodb_create_table_kwargs(
    table_name: str, logical_id: str = "TokenTable", template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``create_table`` arguments for the table's key schema, attributes, billing and indexes."""
    props = resource(logical_id, template)["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return kwargs


def create_token_table(client: Any, table_name: str) -> None:
    """Create the template's token table (key schema, indexes, TTL) with a DynamoDB client."""
    client.create_table(**dynamodb_create_table_kwargs(table_name))
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"AttributeName": dynamodb_ttl_attribute(), "Enabled": True},
    )


def dynamodb_ttl_attribute(
    logical_id: str = "TokenTable", template: dict[str, Any] | None = None
) -> str:
    """The attribute DynamoDB TTL is enabled on, as the template declares it."""
    spec = resource(logical_id, template)["Properties"]["TimeToLiveSpecification"]
    if not spec.get("Enabled"):
        raise ValueError("TTL is not enabled on the table in template.yaml")
    return str(spec["AttributeName"])


def as_deployed(
    parameters: Mapping[str, Any], template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The template as CloudFormation deploys it with ``parameters`` (the others at their
    defaults): resources and outputs whose ``Condition`` is false left out, each ``Fn::If``
    replaced by the branch its condition picks, ``AWS::NoValue`` removed. Every other intrinsic
    function stays as written (its resources do not exist here)."""
    tpl = template if template is not None else default_template()
    resolver = IntrinsicResolver(tpl, StackContext("as-deployed", "eu-west-1"), dict(parameters))

    def pick(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Fn::If"}:
                condition, when_true, when_false = value["Fn::If"]
                return pick(when_true if resolver.condition(str(condition)) else when_false)
            if value == {"Ref": "AWS::NoValue"}:
                return NO_VALUE
            picked = {key: pick(item) for key, item in value.items()}
            return {key: item for key, item in picked.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (pick(v) for v in value) if item is not NO_VALUE]
        return value

    deployed = {key: value for key, value in tpl.items() if key not in ("Resources", "Outputs")}
    for section in ("Resources", "Outputs"):
        deployed[section] = {
            name: pick(spec)
            for name, spec in (tpl.get(section) or {}).items()
            if "Condition" not in spec or resolver.condition(str(spec["Condition"]))
        }
    return deployed
