"""template.yaml's front ends, through SAM CLI's own transform (the ``samtranslator`` of the
pinned SAM CLI, in .venv-tools) and then as CloudFormation deploys them for each choice:
``Frontend=HttpApi`` (with and without a custom domain) and ``Frontend=FunctionUrl``.

For each: the resources that exist, no reference to a resource that does not, the public
permissions of the proxy function (a function URL with auth type NONE needs exactly two
statements: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html), and the token URL.
And the reasons the HTTP API is written with CloudFormation's own resources: SAM does not carry
a conditional ``AWS::Serverless::HttpApi``'s Condition to the permission its ``HttpApi`` event
adds to the function, and refuses an ``Fn::If`` as its ``Domain``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation_template import as_deployed, default_template

ROOT = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
REQUIRED = {
    "CognitoDomain": "my-prefix.auth.eu-west-1.amazoncognito.com",
    "UserPoolId": "eu-west-1_Ab1",
}
CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0000-4000-8000-123456789abc"
CUSTOM_DOMAIN = {
    "CustomDomainName": "auth-proxy.example.com",
    "CustomDomainCertificateArn": CERTIFICATE,
    "CustomDomainHostedZoneId": "Z0123456789ABCDEFGHIJ",
    "DisableExecuteApiEndpoint": "true",
}
HTTP_API_RESOURCES = {
    "TokenApi",
    "TokenApiApiGatewayDefaultStage",
    "TokenProxyFunctionTokenPermission",
    "TokenApiAccessLogs",
    "TokenApiThrottledMetric",
}
DOMAIN_RESOURCES = {"TokenApiDomainName", "TokenApiMapping", "TokenApiDomainRecord"}
FUNCTION_URL_RESOURCES = {
    "TokenFunctionUrl",
    "TokenFunctionUrlPublicAccess",
    "TokenFunctionUrlInvokeAccess",
}
PSEUDO = re.compile(r"^AWS::")
_SUB_NAME = re.compile(r"\$\{([^!}][^}]*)\}")

# Runs in .venv-tools (SAM CLI's environment): the template on stdin, the transformed one out.
_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
class NoManagedPolicies:
    def load(self):
        return {}
template = json.load(sys.stdin)
for spec in template["Resources"].values():
    if spec["Type"] == "AWS::Serverless::Function":
        spec["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
json.dump(transform(template, {}, NoManagedPolicies()), sys.stdout)
"""

pytestmark = pytest.mark.slow


def sam_transform(template: Mapping[str, Any]) -> dict[str, Any]:
    if not TOOLS_PYTHON.exists():
        pytest.fail("SAM CLI's environment is missing: run `make install` (make test does it)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1", "SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(  # noqa: S603 - SAM CLI's interpreter, a fixed script
        [str(TOOLS_PYTHON), "-c", _TRANSFORM],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    transformed: dict[str, Any] = json.loads(done.stdout)
    return transformed


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    """template.yaml after SAM's transform (its Conditions still to be evaluated)."""
    return sam_transform(default_template())


def references(value: Any) -> set[str]:
    """Every resource or parameter name a value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and len(value) == 1:
            found.add(str(value["Ref"]))
        elif "Fn::GetAtt" in value and len(value) == 1:
            target = value["Fn::GetAtt"]
            found.add(str(target[0] if isinstance(target, list) else target.split(".")[0]))
        elif "Fn::Sub" in value and len(value) == 1:
            argument = value["Fn::Sub"]
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            names = {n.split(".")[0] for n in _SUB_NAME.findall(text)} - set(variables)
            found |= names | references(variables)
            return found
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def deployed(transformed: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """What CloudFormation creates from the transformed template with these parameters; and
    nothing in it refers to a resource that was not created."""
    stack = as_deployed({**REQUIRED, **parameters}, transformed)
    known = set(stack["Resources"]) | set(stack["Parameters"])
    for section in ("Resources", "Outputs"):
        for name, spec in stack[section].items():
            dangling = {r for r in references(spec) if not PSEUDO.match(r)} - known
            assert not dangling, f"{section}/{name} refers to {sorted(dangling)}"
    return stack


def proxy_permissions(stack: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec["Properties"]
        for name, spec in stack["Resources"].items()
        if spec["Type"] == "AWS::Lambda::Permission"
        and spec["Properties"]["FunctionName"] == {"Ref": "TokenProxyFunction"}
    }


def test_the_default_front_end_is_the_http_api(transformed: dict[str, Any]) -> None:
    # GIVEN the template deployed with its defaults
    stack = deployed(transformed)
    resources = set(stack["Resources"])

    # THEN the HTTP API exists, and neither a function URL nor a custom domain
    assert resources >= HTTP_API_RESOURCES
    assert not resources & (FUNCTION_URL_RESOURCES | DOMAIN_RESOURCES)
    # AND API Gateway alone may invoke the function, for the token route only
    assert proxy_permissions(stack) == {
        "TokenProxyFunctionTokenPermission": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "TokenProxyFunction"},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}"
                ":${TokenApi}/*/POST/oauth2/token"
            },
        }
    }
    # AND the API keeps its default endpoint, which is the token URL
    api = stack["Resources"]["TokenApi"]["Properties"]["Body"]
    assert api["servers"] == [
        {"x-amazon-apigateway-endpoint-configuration": {"disableExecuteApiEndpoint": False}}
    ]
    assert list(api["paths"]) == ["/oauth2/token"]
    assert stack["Outputs"]["TokenEndpoint"]["Value"] == {
        "Fn::Sub": "https://${TokenApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/oauth2/token"
    }
    assert "CustomDomainTarget" not in stack["Outputs"]


def test_a_custom_domain_maps_the_stage_and_can_close_the_default_endpoint(
    transformed: dict[str, Any],
) -> None:
    # GIVEN a custom domain, its certificate, its hosted zone and the default endpoint off
    stack = deployed(transformed, **CUSTOM_DOMAIN)
    resources = stack["Resources"]

    # THEN a Regional domain with the certificate, mapped without a key to the API's stage,
    # and the alias A record in the zone
    assert set(resources) >= HTTP_API_RESOURCES | DOMAIN_RESOURCES
    domain = resources["TokenApiDomainName"]["Properties"]
    assert domain == {
        "DomainName": {"Ref": "CustomDomainName"},
        "DomainNameConfigurations": [
            {
                "CertificateArn": {"Ref": "CustomDomainCertificateArn"},
                "EndpointType": "REGIONAL",
                "SecurityPolicy": "TLS_1_2",
            }
        ],
    }
    mapping = resources["TokenApiMapping"]["Properties"]
    assert mapping == {
        "ApiId": {"Ref": "TokenApi"},
        "DomainName": {"Ref": "TokenApiDomainName"},
        "Stage": {"Ref": "TokenApiApiGatewayDefaultStage"},
    }
    record = resources["TokenApiDomainRecord"]["Properties"]
    assert record["Type"] == "A"
    assert record["AliasTarget"]["DNSName"] == {
        "Fn::GetAtt": ["TokenApiDomainName", "RegionalDomainName"]
    }
    # AND the execute-api endpoint is off, and the token URL is the domain's
    servers = resources["TokenApi"]["Properties"]["Body"]["servers"]
    assert servers == [
        {"x-amazon-apigateway-endpoint-configuration": {"disableExecuteApiEndpoint": True}}
    ]
    assert stack["Outputs"]["TokenEndpoint"]["Value"] == {
        "Fn::Sub": "https://${CustomDomainName}/oauth2/token"
    }
    assert "CustomDomainTarget" in stack["Outputs"]


def test_without_a_hosted_zone_the_dns_record_is_the_users(transformed: dict[str, Any]) -> None:
    # GIVEN a custom domain and its certificate only
    stack = deployed(
        transformed,
        CustomDomainName=CUSTOM_DOMAIN["CustomDomainName"],
        CustomDomainCertificateArn=CERTIFICATE,
    )
    # THEN the domain and its mapping exist, no record, and the default endpoint stays on
    assert set(stack["Resources"]) >= {"TokenApiDomainName", "TokenApiMapping"}
    assert "TokenApiDomainRecord" not in stack["Resources"]
    servers = stack["Resources"]["TokenApi"]["Properties"]["Body"]["servers"]
    assert servers[0]["x-amazon-apigateway-endpoint-configuration"] == {
        "disableExecuteApiEndpoint": False
    }


def test_the_function_url_front_end(transformed: dict[str, Any]) -> None:
    # GIVEN Frontend=FunctionUrl
    stack = deployed(transformed, Frontend="FunctionUrl")
    resources = stack["Resources"]

    # THEN the function URL exists, and no HTTP API resource
    assert set(resources) >= FUNCTION_URL_RESOURCES
    assert not set(resources) & (HTTP_API_RESOURCES | DOMAIN_RESOURCES)
    assert resources["TokenFunctionUrl"]["Properties"] == {
        "TargetFunctionArn": {"Fn::GetAtt": ["TokenProxyFunction", "Arn"]},
        "AuthType": "NONE",
        "InvokeMode": "BUFFERED",
    }
    # AND the function's policy has the two statements a public function URL needs, the
    # invoke grant good only through the URL; nothing else is public
    assert proxy_permissions(stack) == {
        "TokenFunctionUrlPublicAccess": {
            "Action": "lambda:InvokeFunctionUrl",
            "FunctionName": {"Ref": "TokenProxyFunction"},
            "Principal": "*",
            "FunctionUrlAuthType": "NONE",
        },
        "TokenFunctionUrlInvokeAccess": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "TokenProxyFunction"},
            "Principal": "*",
            "InvokedViaFunctionUrl": True,
        },
    }
    # AND the token URL is the function URL's host with the token path
    assert stack["Outputs"]["TokenEndpoint"]["Value"] == {
        "Fn::Sub": [
            "https://${Host}/oauth2/token",
            {
                "Host": {
                    "Fn::Select": [
                        2,
                        {"Fn::Split": ["/", {"Fn::GetAtt": ["TokenFunctionUrl", "FunctionUrl"]}]},
                    ]
                }
            },
        ]
    }
    # AND the 5xx alarm watches the function URL's own count
    alarm = resources["ApiServerErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Url5xxCount")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "TokenProxyFunction"}}]


def test_why_the_http_api_is_not_a_sam_resource() -> None:
    # GIVEN a conditional AWS::Serverless::HttpApi and a function whose HttpApi event uses it
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"Frontend": {"Type": "String", "Default": "HttpApi"}},
        "Conditions": {"UsesHttpApi": {"Fn::Equals": [{"Ref": "Frontend"}, "HttpApi"]}},
        "Resources": {
            "Api": {"Type": "AWS::Serverless::HttpApi", "Condition": "UsesHttpApi"},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "CodeUri": "src/",
                    "Events": {
                        "Token": {
                            "Type": "HttpApi",
                            "Properties": {
                                "ApiId": {"Ref": "Api"},
                                "Method": "POST",
                                "Path": "/oauth2/token",
                            },
                        }
                    },
                },
            },
        },
    }

    # WHEN SAM transforms it
    resources = sam_transform(template)["Resources"]

    # THEN the API and its stage carry the condition, but the permission the event adds names
    # the API without it: with the API absent, CloudFormation would refuse the template
    assert resources["Api"]["Condition"] == "UsesHttpApi"
    assert resources["ApiApiGatewayDefaultStage"]["Condition"] == "UsesHttpApi"
    permission = resources["FnTokenPermission"]
    assert "Condition" not in permission
    assert "Api" in references(permission["Properties"])


def test_why_the_custom_domain_is_not_the_sam_apis_domain() -> None:
    # GIVEN an AWS::Serverless::HttpApi whose Domain exists only with a custom domain name
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {
            "Name": {"Type": "String", "Default": ""},
            "Certificate": {"Type": "String", "Default": ""},
        },
        "Conditions": {"HasDomain": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, ""]}]}},
        "Resources": {
            "Api": {
                "Type": "AWS::Serverless::HttpApi",
                "Properties": {
                    "Domain": {
                        "Fn::If": [
                            "HasDomain",
                            {
                                "DomainName": {"Ref": "Name"},
                                "CertificateArn": {"Ref": "Certificate"},
                            },
                            {"Ref": "AWS::NoValue"},
                        ]
                    }
                },
            }
        },
    }

    # WHEN SAM transforms it, THEN it refuses: its Domain takes no Fn::If
    with pytest.raises(subprocess.CalledProcessError) as refused:
        sam_transform(template)
    assert "Custom Domains only works if both DomainName and CertificateArn" in refused.value.stderr
