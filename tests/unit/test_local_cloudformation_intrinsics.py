"""The intrinsic-function resolver the local stack builds its resources with."""

from __future__ import annotations

from typing import Any

import pytest

from local.cloudformation_intrinsics import (
    IntrinsicResolver,
    SecretsManagerReference,
    StackContext,
    UnresolvedReferenceError,
)
from local.cloudformation_template import default_template, resource

CONTEXT = StackContext(stack_name="demo", region="eu-west-1")
TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Domain": {"Type": "String"},
        "Days": {"Type": "Number", "Default": 30},
        "Optional": {"Type": "String", "Default": ""},
        "Names": {"Type": "CommaDelimitedList", "Default": "a,b,c"},
    },
    "Conditions": {
        "HasOptional": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Optional"}, ""]}]},
        "Both": {"Fn::And": [{"Condition": "HasOptional"}, {"Fn::Equals": ["x", "x"]}]},
    },
    "Resources": {"Thing": {"Type": "AWS::X::Y"}, "Later": {"Type": "AWS::X::Y"}},
}


def resolver(**parameters: Any) -> IntrinsicResolver:
    out = IntrinsicResolver(TEMPLATE, CONTEXT, parameters={"Domain": "d.example", **parameters})
    out.register("Thing", "thing-name", Arn="arn:aws:x:eu-west-1:123456789012:thing/t")
    return out


def test_refs_and_sub_resolve_parameters_pseudo_parameters_and_resources() -> None:
    # GIVEN a resolver with a parameter value, defaults and one created resource
    r = resolver()

    # WHEN / THEN references give CloudFormation's values (scalar parameters as strings)
    assert r.resolve({"Ref": "Days"}) == "30"
    assert r.resolve({"Ref": "Names"}) == ["a", "b", "c"]
    assert r.resolve({"Ref": "AWS::StackName"}) == "demo"
    assert r.resolve({"Ref": "Thing"}) == "thing-name"
    assert r.resolve({"Fn::Sub": "https://${Domain}/x/${AWS::Region}/${Thing.Arn}/${!Kept}"}) == (
        "https://d.example/x/eu-west-1/arn:aws:x:eu-west-1:123456789012:thing/t/${Kept}"
    )
    assert r.resolve({"Fn::Sub": ["${A}-${AWS::AccountId}", {"A": {"Ref": "Thing"}}]}) == (
        "thing-name-123456789012"
    )
    assert r.resolve({"Fn::GetAtt": ["Thing", "Arn"]}) == r.resolve({"Fn::GetAtt": "Thing.Arn"})


def test_conditions_if_and_no_value() -> None:
    # GIVEN the condition false by default and true with a value
    off, on = resolver(), resolver(Optional="set")
    value = {
        "Keep": 1,
        "Maybe": {"Fn::If": ["HasOptional", "yes", {"Ref": "AWS::NoValue"}]},
        "List": [1, {"Fn::If": ["Both", 2, {"Ref": "AWS::NoValue"}]}],
    }

    # WHEN / THEN AWS::NoValue removes the property or the list item
    assert off.resolve(value) == {"Keep": 1, "List": [1]}
    assert on.resolve(value) == {"Keep": 1, "Maybe": "yes", "List": [1, 2]}


def test_join_select_split() -> None:
    # GIVEN list functions / WHEN resolved / THEN they compose
    r = resolver()
    assert r.resolve({"Fn::Join": ["-", [{"Ref": "Domain"}, "x", {"Ref": "Days"}]]}) == (
        "d.example-x-30"
    )
    assert r.resolve({"Fn::Select": [1, {"Fn::Split": [".", {"Ref": "Domain"}]}]}) == "example"
    assert r.resolve({"Fn::Select": ["2", {"Ref": "Names"}]}) == "c"


def test_unknown_or_missing_references_raise() -> None:
    # GIVEN a resolver without values for some references
    r = IntrinsicResolver(TEMPLATE, CONTEXT)

    # WHEN / THEN each unknown thing is named in the error
    with pytest.raises(UnresolvedReferenceError, match="parameter Domain"):
        r.resolve({"Ref": "Domain"})
    with pytest.raises(UnresolvedReferenceError, match="Later has not been created"):
        r.resolve({"Fn::Sub": "${Later}"})
    with pytest.raises(UnresolvedReferenceError, match=r"Thing\.Id"):
        resolver().resolve({"Fn::GetAtt": ["Thing", "Id"]})
    with pytest.raises(UnresolvedReferenceError, match="not declared"):
        IntrinsicResolver(TEMPLATE, CONTEXT, parameters={"Nope": "x"})
    with pytest.raises(UnresolvedReferenceError, match="Fn::Cidr"):
        resolver().resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})


def test_dynamic_references_go_to_the_callback_after_sub() -> None:
    # GIVEN a callback that knows one secret
    calls: list[tuple[str, str]] = []

    def lookup(service: str, reference: str) -> str:
        calls.append((service, reference))
        return "s3cr3t"

    r = IntrinsicResolver(TEMPLATE, CONTEXT, {"Domain": "d"}, dynamic_references=lookup)
    r.register("Thing", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbC")

    # WHEN the template's own pattern-set expression form is resolved
    value = r.resolve({"Fn::Sub": "^{{resolve:secretsmanager:${Thing}:SecretString}}$"})

    # THEN the secret's ARN was substituted first, then the value
    assert value == "^s3cr3t$"
    assert calls == [
        (
            "secretsmanager",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbC:SecretString",
        )
    ]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("my-secret", SecretsManagerReference("my-secret")),
        (
            "arn:aws:secretsmanager:eu-west-1:1:secret:a-Bc:SecretString",
            SecretsManagerReference("arn:aws:secretsmanager:eu-west-1:1:secret:a-Bc"),
        ),
        (
            "arn:aws:secretsmanager:eu-west-1:1:secret:a-Bc:SecretString:pw:AWSPREVIOUS:",
            SecretsManagerReference(
                "arn:aws:secretsmanager:eu-west-1:1:secret:a-Bc", "pw", "AWSPREVIOUS"
            ),
        ),
        ("name:SecretString::AWSCURRENT", SecretsManagerReference("name", None, "AWSCURRENT")),
    ],
)
def test_secretsmanager_reference_parsing(
    reference: str, expected: SecretsManagerReference
) -> None:
    # GIVEN / WHEN parsed / THEN the secret id keeps its colons
    assert SecretsManagerReference.parse(reference) == expected


def test_the_templates_rotator_policies_follow_the_canary_conditions() -> None:
    # GIVEN template.yaml's rotator, whose second policy exists only with a canary secret and
    # whose third only with that secret's customer managed KMS key
    policies = resource("RotatorFunction")["Properties"]["Policies"]
    base = {"CognitoDomain": "localhost", "UserPoolId": "eu-west-1_x"}
    canary = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:canary-client-AbCdEf"
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    resolvers = [
        IntrinsicResolver(default_template(), CONTEXT, {**base, **extra})
        for extra in (
            {},
            {"CanaryClientSecretArn": canary},
            {"CanaryClientSecretArn": canary, "CanaryClientSecretKmsKeyArn": key},
        )
    ]
    for r in resolvers:
        r.register("OriginSecret", "arn:secret")
        r.register("OriginPatternSet", "n|i|REGIONAL", Arn="arn:set")
    without, with_canary, with_key = (r.resolve(policies) for r in resolvers)

    # WHEN / THEN HasCanary adds the read of that one secret
    assert len(without) == 1
    assert len(with_canary) == 2
    assert with_canary[1]["Statement"] == [
        {
            "Sid": "ReadCanaryClient",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": canary,
        }
    ]
    # AND HasCanaryKmsKey adds Decrypt with that one key, only through Secrets Manager in this
    # Region and only for that secret
    assert len(with_key) == 3
    assert with_key[2]["Statement"] == [
        {
            "Sid": "DecryptCanaryClientThroughSecretsManager",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
                    "kms:EncryptionContext:SecretARN": canary,
                }
            },
        }
    ]
