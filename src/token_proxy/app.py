"""Lambda entry point of the token proxy: wiring only.

``lambda_handler`` turns an HTTP API or function URL event (both payload format 2.0) into a
response: :mod:`token_proxy.request` parses
it, :class:`~token_proxy.service.TokenService` answers it, and every refusal is an
:class:`~token_proxy.errors.OAuthError` turned into RFC 6749 JSON in one place. The service and
its clients are built on first use, once per container, never at import time.

A direct invocation with an ``action`` (never an HTTP API event: see
:mod:`token_proxy.admin`) is an operator's command, e.g. invalidating a client's cached tokens.

Every request has one deadline: the Lambda context's remaining time less a margin
(:mod:`token_proxy.deadline`), which bounds everything the service does for it.

Nothing here logs the event, a header, a secret or a token: refusals log their error code,
answers their status, authentication method and client: the client id of a token's answer
(Cognito confirmed it), only the client id's keyed fingerprint (``client_fp``) otherwise, since
an unconfirmed client id may be a secret in the wrong field. Every answer adds a metric: the
service counts cache hits, misses, Cognito calls and its own 429 and 503 answers, and the
proxy's other refusals are counted by their RFC 6749 error (so an invocation never ends with
an empty metric set, which Powertools would warn about on every refused request).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from function_setup.environment import ConfigurationError
from function_setup.powertools import function_logger, function_metrics
from token_proxy.admin import handle_admin_event, is_admin_event
from token_proxy.errors import CacheKeyUnavailable, OAuthError, ServerError, TemporarilyUnavailable
from token_proxy.model import HttpResponse, TokenRequest
from token_proxy.request import parse_token_request
from token_proxy.secrets_manager import SecretReader
from token_proxy.service import UNAVAILABLE_DESCRIPTION, TokenService
from token_proxy.settings import Settings
from token_proxy.telemetry import refused_metric
from token_proxy.upstream_trace import XRayAttempts
from token_proxy.wiring import (
    build_cognito_token_client,
    build_dynamodb_token_store,
    build_token_service,
    read_cache_keys,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from token_proxy.ports import MetricsSink, TokenHandler


#: Modules the tracer patches, on first use rather than at import (patching every library
#: X-Ray supports at import costs cold-start time for modules this function never uses). The
#: Cognito client's attempts are not among them: X-Ray has no urllib3 patch, and its http.client
#: one does not see urllib3 2.x; the client records them (:mod:`token_proxy.upstream_trace`).
TRACED_MODULES = ("botocore",)
#: The service name outside Lambda (template.yaml sets POWERTOOLS_SERVICE_NAME).
SERVICE_NAME = "token-proxy"


def sdk_tracing_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the X-Ray SDK records subsegments (POWERTOOLS_TRACE_DISABLED, Powertools' switch).

    Building a Tracer imports the X-Ray SDK, whose recorder creates an X-Ray API client at import
    (about 150 ms of cold start, measured by the benchmark), even when tracing is disabled. So
    the Tracer exists only when SDK tracing is on; Lambda's active tracing still records every
    invocation without it.
    """
    return environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in {"1", "true"}


logger = function_logger("token_proxy", SERVICE_NAME)
metrics = function_metrics(SERVICE_NAME)
tracer: Tracer | None = Tracer(auto_patch=False) if sdk_tracing_enabled(os.environ) else None


_Handler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The configuration, read from the environment once per container."""
    return Settings.from_env(os.environ)


@functools.lru_cache(maxsize=1)
def get_token_service() -> TokenService:
    """The token service and its clients, built once per container (see :func:`reset`)."""
    settings = get_settings()
    if tracer is not None:
        tracer.patch(TRACED_MODULES)  # X-Ray skips modules it already patched
    # One Secrets Manager client reads both secrets. The cache key is read first: while it
    # cannot be read, each request tries again without building the other clients.
    secrets = SecretReader()
    keys = read_cache_keys(settings, secrets)
    return build_token_service(
        settings,
        store=build_dynamodb_token_store(settings),
        cognito=build_cognito_token_client(
            settings,
            metrics=metrics,
            secrets=secrets,
            trace=XRayAttempts(tracer.provider) if tracer is not None else None,
        ),
        keys=keys,
        metrics=metrics,
    )


def reset() -> None:
    """Forget the cached settings and service (a new container, for tests)."""
    get_token_service.cache_clear()
    get_settings.cache_clear()


def handle_event(
    event: Mapping[str, Any],
    service: TokenHandler,
    settings: Settings,
    sink: MetricsSink | None = None,
    remaining_seconds: float | None = None,
) -> HttpResponse:
    """The response to one HTTP API event within ``remaining_seconds`` (the function's time
    left; its timeout when not given); never raises. Refusals are counted in ``sink``
    (default: the handler's metrics)."""
    try:
        request = parse_token_request(event, max_body_bytes=settings.max_body_bytes)
        response = service.handle(request, remaining_seconds=remaining_seconds)
    except OAuthError as exc:
        logger.info(
            "token request refused",
            extra={"status": exc.status, "error": exc.error, "error_description": exc.description},
        )
        if not exc.counted_by_service:
            (sink or metrics).add_metric(refused_metric(exc.error), MetricUnit.Count, 1)
        return exc.to_response()
    except Exception as exc:  # last resort: no input may ever get here
        logger.error("token request failed", extra={"exception_type": type(exc).__name__})
        return ServerError().to_response()
    # Answers are counted by the metrics and the API's access log; a log line per cache hit
    # would be most of a hit's cost (time and log volume), so 200s are logged at DEBUG (and
    # only built when DEBUG is on).
    if response.status == 200:
        if logger.log_level <= logging.DEBUG:
            logger.debug("token request answered", extra=_answered(request, response, None))
        return response
    logger.info(
        "token request answered",
        extra=_answered(request, response, service.fingerprint(request.client_id)),
    )
    return response


def _answered(
    request: TokenRequest, response: HttpResponse, fingerprint: str | None
) -> dict[str, Any]:
    """The answer's log fields: the client id when Cognito confirmed it (a token), else its
    fingerprint only."""
    who = {"client_id": request.client_id} if fingerprint is None else {"client_fp": fingerprint}
    return {
        "status": response.status,
        **who,
        "auth_method": request.auth_method,
        "scope_count": len(request.scopes),
    }


def _traced(handler: _Handler) -> _Handler:
    """Trace the handler with the Powertools Tracer when SDK tracing is on (never its response:
    it holds a token)."""
    if tracer is None:
        return handler
    traced: _Handler = tracer.capture_lambda_handler(capture_response=False)(handler)
    return traced


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False
)
@metrics.log_metrics(capture_cold_start_metric=True)
@_traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining_seconds = context.get_remaining_time_in_millis() / 1000.0
    if is_admin_event(event):  # an operator's direct invocation; failures raise to the caller
        return handle_admin_event(
            event,
            get_token_service(),
            metrics=metrics,
            l1_max_age_seconds=get_settings().l1_max_age_seconds,
            remaining_seconds=remaining_seconds,
        )
    try:
        service, settings = get_token_service(), get_settings()
    except ConfigurationError as exc:  # names an environment variable, never a secret
        logger.error("the token proxy is misconfigured", extra={"problem": str(exc)})
        return ServerError().to_response().to_api_gateway()
    except CacheKeyUnavailable as exc:  # tried again by the next request
        logger.error("the cache key secret could not be read", extra={"problem": str(exc)})
        return TemporarilyUnavailable(UNAVAILABLE_DESCRIPTION).to_response().to_api_gateway()
    except Exception as exc:
        logger.error(
            "the token proxy could not start", extra={"exception_type": type(exc).__name__}
        )
        return ServerError().to_response().to_api_gateway()
    response = handle_event(event, service, settings, remaining_seconds=remaining_seconds)
    return response.to_api_gateway()
