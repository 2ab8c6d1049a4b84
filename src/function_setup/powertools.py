"""Each handler's Powertools ``Logger`` and ``Metrics``, built the same way in both functions.

The service name comes from ``POWERTOOLS_SERVICE_NAME`` (template.yaml sets it per function)
and the namespace from ``POWERTOOLS_METRICS_NAMESPACE``; the defaults apply only outside Lambda.
The package's own module loggers (``logging.getLogger(__name__)``) write through the handler's
Logger, so every line is Powertools JSON with the correlation id.

The AWS SDK's and urllib3's loggers are held at WARNING (:func:`quiet_sdk_loggers`): at DEBUG,
botocore writes whole request and response bodies (a GetSecretValue answer holds the secret, a
GetItem answer a sealed token), and a root logger at DEBUG would otherwise let them through.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.filters import SuppressFilter

from function_setup.metrics import DEFAULT_NAMESPACE

SERVICE_VARIABLE = "POWERTOOLS_SERVICE_NAME"
NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"
#: Loggers that write request or response bodies below WARNING (their children, such as
#: ``botocore.parsers`` and ``botocore.endpoint``, inherit the level).
SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


def quiet_sdk_loggers() -> None:
    """Hold the SDK's and urllib3's loggers at WARNING, whatever the root logger's level."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def function_logger(
    package: str, default_service: str | None = None, environ: Mapping[str, str] = os.environ
) -> Logger:
    """The handler's Logger (``default_service`` None keeps Powertools' own default), with the
    ``package.*`` module loggers routed through it."""
    logger = Logger(service=environ.get(SERVICE_VARIABLE) or default_service)
    route_package_logs(logger, package)
    quiet_sdk_loggers()
    return logger


def function_metrics(
    default_service: str | None = None, environ: Mapping[str, str] = os.environ
) -> Metrics:
    """The handler's Metrics, in the stack's namespace."""
    return Metrics(
        namespace=environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE,
        service=environ.get(SERVICE_VARIABLE) or default_service,
    )


def route_package_logs(source: Logger, package: str) -> None:
    """Let the ``package.*`` module loggers write through the Powertools handler (JSON lines
    with the correlation id and their ``extra`` fields), as Powertools does for its own child
    loggers: propagation stays on, and the root logger's handlers (Lambda's own) drop these
    records so nothing is written twice. pytest's capture handler is left alone, as Powertools
    leaves it, so ``caplog`` keeps working."""
    package_logger = logging.getLogger(package)
    if source.registered_handler not in package_logger.handlers:
        package_logger.addHandler(source.registered_handler)
    package_logger.setLevel(source.log_level)
    for handler in logging.root.handlers:
        if type(handler).__module__ == "_pytest.logging":
            continue
        if not any(isinstance(f, SuppressFilter) and f.logger == package for f in handler.filters):
            handler.addFilter(SuppressFilter(package))
