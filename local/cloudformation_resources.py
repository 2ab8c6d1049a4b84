"""Creates the AWS side of the stack in a local AWS endpoint (moto's server) from
``template.yaml``'s own resource definitions, so the local rule is the deployed rule.

Created: the token table (key schema, billing, TTL, SSE with the KMS key), the KMS key
(description, rotation, key policy), the origin-verify secret (a value generated as
``GenerateSecretString`` asks, or a given one) with its rotation schedule (the rotation function
recorded, not run: ``make rotate`` runs it), the cache key secret (generated the same way), the
regex pattern set (its expressions with the secret's value substituted for the
``{{resolve:secretsmanager:...}}`` dynamic reference), the WAF rule group and the web ACL
(rules, custom response bodies and visibility configs, the ARNs they reference resolved), the
web ACL's association with the user pool, and the CloudWatch alarms. The user pool is the
user's, not the stack's: a moto user pool stands in for it, and its ID is the ``UserPoolId``
parameter. Resources whose ``Condition`` is false are not created, as CloudFormation skips them.
Not created: functions, roles, the HTTP API, log groups, the dashboard, schedules (they have no
local counterpart or moto cannot run them without Docker); their ``Ref``/``GetAtt`` values are
made up the way CloudFormation would name them.

What was created is also described the way CloudFormation describes a stack (its parameters,
its outputs and its resources' physical IDs), for ``make verify``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.cloudformation_intrinsics import (
    IntrinsicResolver,
    SecretsManagerReference,
    StackContext,
    UnresolvedReferenceError,
)
from local.cloudformation_template import (
    default_template,
    dynamodb_create_table_kwargs,
    dynamodb_ttl_attribute,
)
from local.existing_web_acl import create_existing_web_acl
from local.moto_server import aws_client, local_aws_environment

DEFAULT_STACK_NAME = "token-proxy-local"
DEFAULT_REGION = "eu-west-1"

# Logical ids in template.yaml.
TABLE = "TokenTable"
TABLE_KEY = "TokenTableKey"
SECRET = "OriginSecret"  # noqa: S105 - a logical id
CACHE_KEY_SECRET = "CacheKeySecret"  # noqa: S105 - a logical id
ROTATION = "OriginSecretRotation"
PATTERN_SET = "OriginPatternSet"
WEB_ACL = "OriginWebAcl"
WEB_ACL_ASSOCIATION = "OriginWebAclAssociation"
RULE_GROUP = "OriginRuleGroup"
PROXY_FUNCTION = "TokenProxyFunction"
ROTATOR_FUNCTION = "RotatorFunction"
PROXY_ROLE = "TokenProxyRole"
ROTATOR_ROLE = "RotatorFunctionRole"  # SAM's name for the function's generated role
HTTP_API = "TokenApi"
DASHBOARD = "Dashboard"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
#: The made-up ID of the local HTTP API (the proxy's real local URL replaces TokenEndpoint).
LOCAL_API_ID = "local"

_GENERATE_SECRET_STRING_OPTIONS = (
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)
_RATE_DAYS = re.compile(r"^rate\((\d+) days?\)$")


@dataclass(frozen=True, slots=True)
class LocalAwsResources:
    """What :func:`bootstrap` created, and the environments of the two handlers.

    ``web_acl_*`` name the web ACL associated with the user pool.

    ``proxy_environment`` and ``rotator_environment`` hold the variables template.yaml gives
    each function (Globals included, intrinsics resolved, ``COGNITO_TOKEN_URL`` pointing at the
    local issuer) plus those pointing the SDK at the local endpoint (``AWS_ENDPOINT_URL``,
    region, fake credentials).
    """

    endpoint_url: str
    region: str
    account_id: str
    stack_name: str
    table_name: str
    table_arn: str
    kms_key_id: str
    kms_key_arn: str
    secret_name: str
    secret_arn: str
    cache_key_secret_arn: str
    pattern_set_name: str
    pattern_set_id: str
    pattern_set_arn: str
    pattern_set_scope: str
    web_acl_name: str
    web_acl_id: str
    web_acl_arn: str
    web_acl_scope: str
    cognito_token_url: str
    user_pool_id: str = ""
    user_pool_arn: str = ""
    rule_group_arn: str | None = None
    alarm_names: tuple[str, ...] = ()
    proxy_environment: dict[str, str] = field(default_factory=dict)
    rotator_environment: dict[str, str] = field(default_factory=dict)
    #: The stack as CloudFormation describes it: DescribeStacks' Parameters and Outputs and
    #: ListStackResources' summaries (LogicalResourceId, ResourceType, PhysicalResourceId).
    parameters: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    stack_resources: tuple[dict[str, str], ...] = ()


def bootstrap(
    endpoint_url: str,
    *,
    cognito_token_url: str,
    region: str = DEFAULT_REGION,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, Any] | None = None,
    origin_secret_value: str | None = None,
    enable_rotation: bool = True,
    template: Mapping[str, Any] | None = None,
) -> LocalAwsResources:
    """Create the template's AWS resources in the endpoint and return their names and ARNs.

    ``cognito_token_url`` is the local issuer's token URL (it replaces the template's
    ``https://${CognitoDomain}/oauth2/token`` in both environments). ``parameters`` override
    the template's parameters (``CognitoDomain`` gets a local placeholder, ``UserPoolId`` the
    ID of a user pool created in the endpoint, and ``OriginRuleAction`` is ``Block``).
    With ``enable_rotation`` the secret reports ``RotationEnabled`` with the template's
    schedule and rotation function, as after CloudFormation created its RotationSchedule
    (moto cannot run the function without Docker: ``make rotate`` runs it).
    """
    tpl = template if template is not None else default_template()
    context = StackContext(stack_name=stack_name, region=region)
    clients = _Clients(endpoint_url, region)
    pool = clients.cognito.create_user_pool(PoolName=f"{stack_name}-users")["UserPool"]
    resolver = IntrinsicResolver(
        tpl,
        context,
        parameters={
            **_local_parameter_defaults(context),
            "UserPoolId": pool["Id"],
            **(parameters or {}),
        },
        dynamic_references=lambda service, ref: _resolve_dynamic_reference(clients, service, ref),
    )
    _register_uncreated_resources(resolver, context, tpl)
    created = _CreatedResources(resolver, tpl)

    kms_key_id, kms_key_arn = _create_kms_key(clients, resolver, tpl)
    created.add(TABLE_KEY, kms_key_id)
    table_name, table_arn = _create_table(clients, resolver, tpl, context)
    created.add(TABLE, table_name)
    secret_name, secret_arn = _create_secret(
        clients,
        resolver=resolver,
        template=tpl,
        context=context,
        value=origin_secret_value,
        enable_rotation=enable_rotation,
    )
    created.add(SECRET, secret_arn)
    if enable_rotation and ROTATION in tpl["Resources"]:
        created.add(ROTATION, secret_arn)
    cache_key_secret_arn = _create_cache_key_secret(clients, resolver, tpl, context)
    pattern_set = _create_pattern_set(clients, resolver, tpl)
    created.add(PATTERN_SET, resolver.ref(PATTERN_SET))
    rule_group_arn = None
    if created.exists(RULE_GROUP):
        rule_group_arn = _create_rule_group(clients, resolver, tpl)["ARN"]
        created.add(RULE_GROUP, resolver.ref(RULE_GROUP))
    if created.exists(WEB_ACL):
        web_acl = _create_web_acl(clients, resolver, tpl)
        created.add(WEB_ACL, resolver.ref(WEB_ACL))
        association = resolver.resolve(tpl["Resources"][WEB_ACL_ASSOCIATION]["Properties"])
        pool_arn = str(association["ResourceArn"])
        clients.wafv2.associate_web_acl(WebACLArn=association["WebACLArn"], ResourceArn=pool_arn)
        created.add(WEB_ACL_ASSOCIATION, f"{pool_arn}|{association['WebACLArn']}")
    else:  # WebAcl External: the pool's own web ACL, extended as the README says
        pool_arn = str(pool["Arn"])
        web_acl = create_existing_web_acl(
            clients.wafv2,
            name=f"{stack_name}-existing"[:128],
            rule_group_arn=str(rule_group_arn),
            pool_arn=pool_arn,
        )
        web_acl["Scope"] = "REGIONAL"
    alarm_names = _create_alarms(clients, resolver, tpl, created)

    aws_env = local_aws_environment(endpoint_url, region)
    return LocalAwsResources(
        endpoint_url=endpoint_url,
        region=region,
        account_id=context.account_id,
        stack_name=stack_name,
        table_name=table_name,
        table_arn=table_arn,
        kms_key_id=kms_key_id,
        kms_key_arn=kms_key_arn,
        secret_name=secret_name,
        secret_arn=secret_arn,
        cache_key_secret_arn=cache_key_secret_arn,
        pattern_set_name=pattern_set["Name"],
        pattern_set_id=pattern_set["Id"],
        pattern_set_arn=pattern_set["ARN"],
        pattern_set_scope=pattern_set["Scope"],
        web_acl_name=web_acl["Name"],
        web_acl_id=web_acl["Id"],
        web_acl_arn=web_acl["ARN"],
        web_acl_scope=web_acl["Scope"],
        cognito_token_url=cognito_token_url,
        user_pool_id=str(resolver.parameter("UserPoolId")),
        user_pool_arn=pool_arn,
        rule_group_arn=rule_group_arn,
        alarm_names=alarm_names,
        proxy_environment={
            **function_environment(resolver, tpl, PROXY_FUNCTION, cognito_token_url),
            **aws_env,
        },
        rotator_environment={
            **function_environment(resolver, tpl, ROTATOR_FUNCTION, cognito_token_url),
            **aws_env,
        },
        parameters={name: str(value) for name, value in resolver.parameters().items()},
        outputs=stack_outputs(resolver, tpl),
        stack_resources=created.summaries(),
    )


def stack_outputs(resolver: IntrinsicResolver, template: Mapping[str, Any]) -> dict[str, str]:
    """The template's Outputs that resolve locally (those whose Condition holds)."""
    outputs: dict[str, str] = {}
    for name, output in (template.get("Outputs") or {}).items():
        if "Condition" in output and not resolver.condition(str(output["Condition"])):
            continue
        try:
            outputs[name] = _env_text(resolver.resolve(output["Value"]))
        except UnresolvedReferenceError:
            continue  # refers to something that has no local counterpart
    return outputs


def function_environment(
    resolver: IntrinsicResolver,
    template: Mapping[str, Any],
    logical_id: str,
    cognito_token_url: str,
) -> dict[str, str]:
    """A function's environment as the template sets it (Globals first), values resolved."""
    global_vars = (
        ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    ).get("Variables") or {}
    own_vars = (template["Resources"][logical_id]["Properties"].get("Environment") or {}).get(
        "Variables"
    ) or {}
    resolved = resolver.resolve({**global_vars, **own_vars})
    env = {name: _env_text(value) for name, value in resolved.items()}
    if "COGNITO_TOKEN_URL" in env:
        env["COGNITO_TOKEN_URL"] = cognito_token_url
    return env


def web_acl_create_kwargs(
    resolver: IntrinsicResolver, template: Mapping[str, Any], logical_id: str = WEB_ACL
) -> dict[str, Any]:
    """``wafv2.create_web_acl`` arguments from the template's WebACL (intrinsics resolved,
    CloudFormation's property names turned into the API's)."""
    return _waf_create_kwargs(
        resolver.resolve(template["Resources"][logical_id]["Properties"]),
        required=("DefaultAction",),
        optional=("Description", "CustomResponseBodies", "CaptchaConfig", "ChallengeConfig"),
    )


def _waf_create_kwargs(
    props: Mapping[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    """Create arguments of a web ACL or rule group: what both have, then their own."""
    kwargs: dict[str, Any] = {
        "Name": props["Name"],
        "Scope": props["Scope"],
        "VisibilityConfig": props["VisibilityConfig"],
        "Rules": [cfn_to_api_shape(rule) for rule in props.get("Rules") or []],
        **{name: props[name] for name in required},
    }
    kwargs.update({name: props[name] for name in optional if name in props})
    return kwargs


def cfn_to_api_shape(value: Any) -> Any:
    """CloudFormation's WAFv2 statement shape -> the WAFv2 API's.

    The differences our statements meet: reference statements name the set or rule group
    ``Arn`` in CloudFormation and ``ARN`` in the API; ``SearchStringBase64`` exists only in
    CloudFormation.
    """
    if isinstance(value, list):
        return [cfn_to_api_shape(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in (
            "RegexPatternSetReferenceStatement",
            "IPSetReferenceStatement",
            "RuleGroupReferenceStatement",
        ):
            statement = {("ARN" if k == "Arn" else k): cfn_to_api_shape(v) for k, v in item.items()}
            out[key] = statement
        elif key == "SearchStringBase64":
            out["SearchString"] = base64.b64decode(str(item))
        else:
            out[key] = cfn_to_api_shape(item)
    return out


# ---------------------------------------------------------------------- internals
class _Clients:
    def __init__(self, endpoint_url: str, region: str) -> None:
        self.dynamodb = aws_client("dynamodb", endpoint_url, region)
        self.kms = aws_client("kms", endpoint_url, region)
        self.secretsmanager = aws_client("secretsmanager", endpoint_url, region)
        self.wafv2 = aws_client("wafv2", endpoint_url, region)
        self.cognito = aws_client("cognito-idp", endpoint_url, region)
        self.cloudwatch = aws_client("cloudwatch", endpoint_url, region)


class _CreatedResources:
    """The stack's resources as ListStackResources summarises them, and which ones exist
    (a resource whose Condition is false does not)."""

    def __init__(self, resolver: IntrinsicResolver, template: Mapping[str, Any]) -> None:
        self._resolver = resolver
        self._resources: Mapping[str, Any] = template["Resources"]
        self._summaries: list[dict[str, str]] = []

    def exists(self, logical_id: str) -> bool:
        spec = self._resources.get(logical_id)
        if spec is None:
            return False
        return "Condition" not in spec or self._resolver.condition(str(spec["Condition"]))

    def add(self, logical_id: str, physical_id: Any) -> None:
        self._summaries.append(
            {
                "LogicalResourceId": logical_id,
                "ResourceType": str(self._resources[logical_id]["Type"]),
                "PhysicalResourceId": str(physical_id),
            }
        )

    def summaries(self) -> tuple[dict[str, str], ...]:
        return tuple(self._summaries)


def _local_parameter_defaults(context: StackContext) -> dict[str, str]:
    return {
        "CognitoDomain": "localhost",
        "UserPoolId": f"{context.region}_local",
        # The local issuer reads the web ACL from moto on every request: nothing to wait for.
        "WafPropagationSeconds": "0",
        # A deployment starts counting (no live client is refused); the local pool has no
        # clients to move over, so it enforces the rule unless told otherwise.
        "OriginRuleAction": "Block",
    }


def _register_uncreated_resources(
    resolver: IntrinsicResolver, context: StackContext, template: Mapping[str, Any]
) -> None:
    """Names and ARNs for the resources the local stack does not create in AWS."""
    prefix = f"arn:{context.partition}"
    for role in (PROXY_ROLE, ROTATOR_ROLE):
        role_name = f"{context.stack_name}-{role}"
        resolver.register(
            role, role_name, Arn=f"{prefix}:iam::{context.account_id}:role/{role_name}"
        )
    resolver.register(HTTP_API, LOCAL_API_ID)
    if DASHBOARD in template["Resources"]:
        dashboard = template["Resources"][DASHBOARD]["Properties"].get("DashboardName")
        resolver.register(DASHBOARD, resolver.resolve(dashboard) if dashboard else DASHBOARD)
    for logical_id in (PROXY_FUNCTION, ROTATOR_FUNCTION):
        name = f"{context.stack_name}-{logical_id}"
        resolver.register(
            logical_id,
            name,
            Arn=f"{prefix}:lambda:{context.region}:{context.account_id}:function:{name}",
        )


def _properties(resolver: IntrinsicResolver, template: Mapping[str, Any], logical_id: str) -> Any:
    return resolver.resolve(template["Resources"][logical_id].get("Properties") or {})


def _create_kms_key(
    clients: _Clients, resolver: IntrinsicResolver, template: Mapping[str, Any]
) -> tuple[str, str]:
    props = _properties(resolver, template, TABLE_KEY)
    kwargs: dict[str, Any] = {"Description": props.get("Description", "")}
    if "KeyPolicy" in props:
        kwargs["Policy"] = json.dumps(props["KeyPolicy"])
    if "KeySpec" in props:
        kwargs["KeySpec"] = props["KeySpec"]
    if "KeyUsage" in props:
        kwargs["KeyUsage"] = props["KeyUsage"]
    metadata = clients.kms.create_key(**kwargs)["KeyMetadata"]
    if props.get("EnableKeyRotation"):
        clients.kms.enable_key_rotation(KeyId=metadata["KeyId"])
    resolver.register(TABLE_KEY, metadata["KeyId"], Arn=metadata["Arn"], KeyId=metadata["KeyId"])
    return str(metadata["KeyId"]), str(metadata["Arn"])


def _create_table(
    clients: _Clients,
    resolver: IntrinsicResolver,
    template: Mapping[str, Any],
    context: StackContext,
) -> tuple[str, str]:
    props = _properties(resolver, template, TABLE)
    name = str(props.get("TableName") or f"{context.stack_name}-{TABLE}")
    kwargs = dynamodb_create_table_kwargs(name, TABLE, dict(template))
    sse = props.get("SSESpecification")
    if sse:
        # CloudFormation's SSEEnabled is the API's Enabled.
        spec: dict[str, Any] = {"Enabled": bool(sse.get("SSEEnabled"))}
        if "SSEType" in sse:
            spec["SSEType"] = sse["SSEType"]
        if "KMSMasterKeyId" in sse:
            spec["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
        kwargs["SSESpecification"] = spec
    table = clients.dynamodb.create_table(**kwargs)["TableDescription"]
    if (props.get("TimeToLiveSpecification") or {}).get("Enabled"):
        clients.dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={
                "AttributeName": dynamodb_ttl_attribute(TABLE, dict(template)),
                "Enabled": True,
            },
        )
    resolver.register(TABLE, name, Arn=table["TableArn"])
    return name, str(table["TableArn"])


def _create_secret(
    clients: _Clients,
    *,
    resolver: IntrinsicResolver,
    template: Mapping[str, Any],
    context: StackContext,
    value: str | None,
    enable_rotation: bool,
) -> tuple[str, str]:
    props = _properties(resolver, template, SECRET)
    name = str(props.get("Name") or f"{context.stack_name}-{SECRET}")
    if value is None:
        value = _generated_secret_string(clients, props)
    kwargs: dict[str, Any] = {"Name": name}
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    if props.get("KmsKeyId"):
        kwargs["KmsKeyId"] = props["KmsKeyId"]
    # Created without a value first: moto enables rotation without adding a version only on a
    # secret that has none. The value then becomes the one AWSCURRENT version.
    arn = str(clients.secretsmanager.create_secret(**kwargs)["ARN"])
    if enable_rotation:
        rules = _rotation_rules(resolver, template)
        if rules:
            clients.secretsmanager.rotate_secret(
                SecretId=arn,
                RotationRules=rules,
                RotateImmediately=False,
                **_rotation_function(resolver, template),
            )
    clients.secretsmanager.put_secret_value(SecretId=arn, SecretString=value)
    resolver.register(SECRET, arn, Id=arn)
    return name, arn


def _create_cache_key_secret(
    clients: _Clients,
    resolver: IntrinsicResolver,
    template: Mapping[str, Any],
    context: StackContext,
) -> str:
    """The cache key secret as the template defines it (a generated value, no rotation)."""
    props = _properties(resolver, template, CACHE_KEY_SECRET)
    kwargs: dict[str, Any] = {
        "Name": str(props.get("Name") or f"{context.stack_name}-{CACHE_KEY_SECRET}"),
        "SecretString": _generated_secret_string(clients, props),
    }
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    arn = str(clients.secretsmanager.create_secret(**kwargs)["ARN"])
    resolver.register(CACHE_KEY_SECRET, arn, Id=arn)
    return arn


def _generated_secret_string(clients: _Clients, props: Mapping[str, Any]) -> str:
    if "SecretString" in props:
        return str(props["SecretString"])
    spec = props.get("GenerateSecretString")
    if spec is None:
        raise UnresolvedReferenceError(
            "the secret has neither SecretString nor GenerateSecretString"
        )
    options = {k: spec[k] for k in _GENERATE_SECRET_STRING_OPTIONS if k in spec}
    options.setdefault("PasswordLength", 32)  # CloudFormation's default
    password = str(clients.secretsmanager.get_random_password(**options)["RandomPassword"])
    if "GenerateStringKey" in spec:
        document = json.loads(spec.get("SecretStringTemplate") or "{}")
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


def _rotation_function(resolver: IntrinsicResolver, template: Mapping[str, Any]) -> dict[str, str]:
    """The schedule's RotationLambdaARN (moto records it without running it: moto_fidelity)."""
    arn = template["Resources"][ROTATION]["Properties"].get("RotationLambdaARN")
    return {"RotationLambdaARN": str(resolver.resolve(arn))} if arn else {}


def _rotation_rules(resolver: IntrinsicResolver, template: Mapping[str, Any]) -> dict[str, Any]:
    if ROTATION not in template["Resources"]:
        return {}
    raw_rules = template["Resources"][ROTATION]["Properties"].get("RotationRules") or {}
    rules = resolver.resolve(raw_rules)
    if "AutomaticallyAfterDays" in rules:
        return {"AutomaticallyAfterDays": int(rules["AutomaticallyAfterDays"])}
    match = _RATE_DAYS.match(str(rules.get("ScheduleExpression", "")))
    # moto models AutomaticallyAfterDays only; a rate in days maps onto it exactly.
    return {"AutomaticallyAfterDays": int(match.group(1))} if match else {}


def _resolve_dynamic_reference(clients: _Clients, service: str, reference: str) -> str:
    if service != "secretsmanager":
        raise UnresolvedReferenceError(f"dynamic references to {service} are not supported locally")
    ref = SecretsManagerReference.parse(reference)
    kwargs: dict[str, Any] = {"SecretId": ref.secret_id}
    if ref.version_id:
        kwargs["VersionId"] = ref.version_id
    else:
        kwargs["VersionStage"] = ref.version_stage or "AWSCURRENT"
    secret_string = str(clients.secretsmanager.get_secret_value(**kwargs)["SecretString"])
    if ref.json_key:
        return str(json.loads(secret_string)[ref.json_key])
    return secret_string


def _create_pattern_set(
    clients: _Clients, resolver: IntrinsicResolver, template: Mapping[str, Any]
) -> dict[str, Any]:
    props = _properties(resolver, template, PATTERN_SET)
    kwargs: dict[str, Any] = {
        "Name": props["Name"],
        "Scope": props["Scope"],
        # CloudFormation lists strings; the API lists {"RegexString": ...}.
        "RegularExpressionList": [{"RegexString": r} for r in props["RegularExpressionList"]],
    }
    if props.get("Description"):
        kwargs["Description"] = props["Description"]
    summary = clients.wafv2.create_regex_pattern_set(**kwargs)["Summary"]
    return _register_waf_resource(resolver, PATTERN_SET, summary, props["Scope"])


def _create_web_acl(
    clients: _Clients, resolver: IntrinsicResolver, template: Mapping[str, Any]
) -> dict[str, Any]:
    kwargs = web_acl_create_kwargs(resolver, template)
    summary = clients.wafv2.create_web_acl(**kwargs)["Summary"]
    return _register_waf_resource(resolver, WEB_ACL, summary, kwargs["Scope"])


def _create_rule_group(
    clients: _Clients, resolver: IntrinsicResolver, template: Mapping[str, Any]
) -> dict[str, Any]:
    props = _properties(resolver, template, RULE_GROUP)
    kwargs = _waf_create_kwargs(
        {**props, "Capacity": int(props["Capacity"])},
        required=("Capacity",),
        optional=("Description", "CustomResponseBodies"),
    )
    summary = clients.wafv2.create_rule_group(**kwargs)["Summary"]
    return _register_waf_resource(resolver, RULE_GROUP, summary, kwargs["Scope"])


#: AWS::CloudWatch::Alarm properties the PutMetricAlarm API takes as numbers.
_ALARM_INTEGERS = ("Period", "EvaluationPeriods", "DatapointsToAlarm")


def _create_alarms(
    clients: _Clients,
    resolver: IntrinsicResolver,
    template: Mapping[str, Any],
    created: _CreatedResources,
) -> tuple[str, ...]:
    """The template's alarms, by the names they declare (PutMetricAlarm takes the same
    property names as AWS::CloudWatch::Alarm; CloudFormation hands parameters over as text)."""
    names: list[str] = []
    for logical_id, spec in template["Resources"].items():
        if spec["Type"] != ALARM_TYPE or not created.exists(logical_id):
            continue
        props = dict(_properties(resolver, template, logical_id))
        props.setdefault("AlarmName", f"{resolver.context.stack_name}-{logical_id}")
        for name in _ALARM_INTEGERS:
            if name in props:
                props[name] = int(props[name])
        props["Threshold"] = float(props["Threshold"])
        for query in props.get("Metrics") or []:
            if "MetricStat" in query:
                query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        clients.cloudwatch.put_metric_alarm(**props)
        resolver.register(logical_id, props["AlarmName"])
        created.add(logical_id, props["AlarmName"])
        names.append(str(props["AlarmName"]))
    return tuple(names)


def _register_waf_resource(
    resolver: IntrinsicResolver, logical_id: str, summary: Mapping[str, Any], scope: str
) -> dict[str, Any]:
    """Register a created WAF resource as CloudFormation returns it (Ref "name|id|scope")."""
    resolver.register(
        logical_id,
        f"{summary['Name']}|{summary['Id']}|{scope}",
        Arn=summary["ARN"],
        Id=summary["Id"],
    )
    return {"Name": summary["Name"], "Id": summary["Id"], "ARN": summary["ARN"], "Scope": scope}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
