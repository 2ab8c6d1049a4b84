"""The local issuer served over HTTP on loopback behind a web ACL that bootstrap created in a
moto server from template.yaml (shared by the issuer's and the web ACL rules' tests)."""

from __future__ import annotations

from collections.abc import Iterable

from local.cloudformation_resources import LocalAwsResources
from local.cognito_token_endpoint import (
    ClientRegistration,
    LocalIssuer,
    RunningIssuer,
    WebAclSource,
)
from local.cognito_token_endpoint import serve_in_thread as serve_issuer
from local.moto_server import RunningMotoServer

REGION = "eu-west-1"


def serve_behind_web_acl(
    moto: RunningMotoServer, stack: LocalAwsResources, clients: Iterable[ClientRegistration]
) -> RunningIssuer:
    """An issuer with ``clients`` whose web ACL is re-read for every request, so changes to
    the pattern set show at once."""
    web_acl = WebAclSource(
        moto.endpoint_url,
        REGION,
        web_acl_name=stack.web_acl_name,
        web_acl_id=stack.web_acl_id,
        max_age_seconds=0,
    )
    return serve_issuer(LocalIssuer(clients, web_acl=web_acl))
