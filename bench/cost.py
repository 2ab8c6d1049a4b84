"""6. Cost per million token requests, from published us-east-1 prices and measured figures.

Every price is a named constant with where it was read and when. The official pricing pages
were not in the material available offline; each source below is a page that quotes the price
(third-party pages are named as such). Free tiers are left out (they do not scale), and so is
Cognito's monthly fee per M2M app client: every approach pays it for the same clients.

The model, for a month of ``requests_per_month`` token requests of which a share ``hit_ratio``
is answered without calling Cognito:

- Cognito direct: every request is a billed token request.
- API Gateway cache recipe: REST API requests, the 0.5 GB cache cluster for every hour of the
  month (fixed, spread over the month's requests), and Cognito for the misses.
- This proxy (``Frontend=HttpApi``, the template's default): HTTP API requests; Lambda arm64
  requests and GB-seconds at 512 MB, each
  invocation billed in whole milliseconds from the measured handler time plus named estimates
  of the network waits Lambda would see (DynamoDB, Cognito) that loopback cannot show;
  DynamoDB on-demand read and write request units for the operations the simulated day
  counted (per request, and per Cognito call), sized from the item it stored; CloudWatch Logs
  ingestion for the bytes the function writes per request (measured) plus the HTTP API access
  log and Lambda's own lines (estimated); WAF requests for the Cognito calls (the web ACL
  inspects them); fixed monthly costs of the web ACL and its rule, the KMS key and the
  secret, spread over the month's requests; and Cognito for the misses.
- This proxy behind a function URL (``Frontend=FunctionUrl``): the same, without the HTTP API's
  requests and its access log lines; a function URL adds nothing to Lambda's own prices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

READ_ON = "2026-11-21"
REGION = "us-east-1"
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True, slots=True)
class Price:
    usd: float
    unit: str
    source: str
    note: str = ""


COGNITO_M2M_TOKEN_REQUEST = Price(
    2.25 / 1000,
    "per successful M2M token request (first tier: $2.25 per 1,000)",
    "https://cur.vantage-api.com/aws/amazoncognito/user-pools-m2m/cupm2mtokenrequestsfull "
    "(third party, billing code USE1-CUPM2MTokenRequestsFull, updated 2025-04-27); "
    "cross-checked against https://www.rhythmictech.com/blog/the-aws-cognito-m2m-bill-has-come-due-what-you-need-to-know/",
    "tiered: lower above the first tier; the official page https://aws.amazon.com/cognito/pricing/ "
    "was not available offline",
)
APIGW_REST_REQUEST = Price(
    3.50 / 1e6,
    "per REST API request (first 333 million a month)",
    "https://docs.aws.amazon.com/pt_br/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html",
)
APIGW_CACHE_0_5_GB_HOUR = Price(
    0.020,
    "per hour of a 0.5 GB API Gateway cache",
    "https://awsforengineers.com/blog/aws-api-gateway-pricing-explained (third party, 2025-05-19); "
    "https://go-cloud.io/aws-api-gateway-pricing ($14.60 a month for the smallest cache)",
)
HTTP_API_REQUEST = Price(
    1.00 / 1e6,
    "per HTTP API request (first 300 million a month, 512 KB increments)",
    "https://docs.aws.amazon.com/pt_br/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html",
)
FUNCTION_URL_REQUEST = Price(
    0.0,
    "per function URL request: nothing beyond the function's Lambda requests and duration",
    "https://aws.amazon.com/blogs/aws/announcing-aws-lambda-function-urls-built-in-https-endpoints-for-single-function-microservices/"
    " (AWS News Blog, 2022-04-06: \"Function URLs are included in Lambda's request and duration"
    ' pricing")',
)
LAMBDA_REQUEST = Price(
    0.20 / 1e6,
    "per Lambda invocation",
    "https://git.mcrn.ar/mariano/lambda_local_runner "
    "(docs/lambdas-md/lambda-13-cost.md, third party)",
)
LAMBDA_ARM_GB_SECOND = Price(
    0.0000133334,
    "per GB-second, arm64 (first 7.5 billion GB-seconds a month), billed per 1 ms",
    "https://cloudchipr.com/blog/aws-lambda-pricing (third party); "
    "https://git.mcrn.ar/mariano/lambda_local_runner (third party)",
)
DYNAMODB_READ_REQUEST_UNIT = Price(
    0.125 / 1e6,
    "per on-demand read request unit (strongly consistent 4 KB read = 1, eventual = 0.5)",
    "https://airbyte.com/data-engineering-resources/dynamodb-pricing (third party, after the "
    "November 2024 on-demand price cut, confirmed by https://www.jusdb.com/blog/dynamodb-cost-optimization-a-comprehensive-guide-by-jusdb)",
)
DYNAMODB_WRITE_REQUEST_UNIT = Price(
    0.625 / 1e6,
    "per on-demand write request unit (1 KB)",
    "https://airbyte.com/data-engineering-resources/dynamodb-pricing (third party)",
)
WAF_WEB_ACL_MONTH = Price(
    5.00,
    "per web ACL per month",
    "https://c3x.dev/blog/aws-waf-cost-explained/ (third party)",
)
WAF_RULE_MONTH = Price(
    1.00,
    "per rule per month",
    "https://c3x.dev/blog/aws-waf-cost-explained/ (third party)",
)
WAF_REQUEST = Price(
    0.60 / 1e6,
    "per request the web ACL inspects",
    "https://c3x.dev/blog/aws-waf-cost-explained/ (third party)",
)
KMS_KEY_MONTH = Price(
    1.00,
    "per customer managed key per month (DynamoDB caches its table key: few KMS requests)",
    "https://www.wring.co/blog/aws-kms-pricing-guide (third party)",
)
SECRET_MONTH = Price(
    0.40,
    "per secret per month (reads: one per container per max age, negligible)",
    "https://hivebook.wiki/wiki/aws-secrets-manager-rotated-secrets-dynamic-db-credentials-kms "
    "(third party)",
)
CLOUDWATCH_LOGS_INGESTION_GB = Price(
    0.50,
    "per GB of CloudWatch Logs ingested (standard class)",
    "unverified: not found in the material available offline; the value is the long-standing "
    "us-east-1 list price",
)

PRICES = {
    "cognito_m2m_token_request": COGNITO_M2M_TOKEN_REQUEST,
    "apigw_rest_request": APIGW_REST_REQUEST,
    "apigw_cache_0_5_gb_hour": APIGW_CACHE_0_5_GB_HOUR,
    "http_api_request": HTTP_API_REQUEST,
    "function_url_request": FUNCTION_URL_REQUEST,
    "lambda_request": LAMBDA_REQUEST,
    "lambda_arm_gb_second": LAMBDA_ARM_GB_SECOND,
    "dynamodb_read_request_unit": DYNAMODB_READ_REQUEST_UNIT,
    "dynamodb_write_request_unit": DYNAMODB_WRITE_REQUEST_UNIT,
    "waf_web_acl_month": WAF_WEB_ACL_MONTH,
    "waf_rule_month": WAF_RULE_MONTH,
    "waf_request": WAF_REQUEST,
    "kms_key_month": KMS_KEY_MONTH,
    "secret_month": SECRET_MONTH,
    "cloudwatch_logs_ingestion_gb": CLOUDWATCH_LOGS_INGESTION_GB,
}

# Estimates of what loopback cannot show (named so the README can state them).
LAMBDA_MEMORY_GB = 0.5
#: Median in-region DynamoDB GetItem and conditional write latency seen from Lambda.
DYNAMODB_READ_MS = 4.0
DYNAMODB_WRITE_MS = 6.0
#: Median Cognito token endpoint latency seen from Lambda in the same region.
COGNITO_TOKEN_MS = 80.0
#: Bytes per request of the HTTP API access log line (template.yaml's format) and of Lambda's
#: own START/END/REPORT lines.
ACCESS_LOG_BYTES = 330
LAMBDA_PLATFORM_LOG_BYTES = 260
WAF_RULES = 1
#: The template's front ends (its Frontend parameter).
HTTP_API = "HttpApi"
FUNCTION_URL = "FunctionUrl"


@dataclass(frozen=True, slots=True)
class ProxyInputs:
    """Measured figures the proxy's cost depends on."""

    handler_ms: float  # the in-process handler time of an L1 hit (lambda_handler, p50)
    dynamodb_reads_eventual_per_request: float
    dynamodb_reads_strong_per_call: float
    dynamodb_writes_per_call: float
    item_bytes: int
    log_bytes_per_request: float


def _billed_ms(ms: float) -> int:
    return max(1, math.ceil(ms))


def proxy_fixed_monthly() -> float:
    """The proxy's own monthly costs that do not depend on traffic (USD)."""
    return (
        WAF_WEB_ACL_MONTH.usd
        + WAF_RULES * WAF_RULE_MONTH.usd
        + KMS_KEY_MONTH.usd
        + SECRET_MONTH.usd
    )


def proxy_per_million(
    inputs: ProxyInputs,
    hit_ratio: float,
    requests_per_month: float,
    frontend: str = HTTP_API,
) -> dict[str, float]:
    """The proxy's cost of one million requests behind ``frontend``, by line item (USD)."""
    if frontend not in (HTTP_API, FUNCTION_URL):
        raise ValueError(f"unknown front end {frontend!r}")
    million = 1e6
    calls = (1 - hit_ratio) * million
    read_units = math.ceil(inputs.item_bytes / 4096)
    write_units = math.ceil(inputs.item_bytes / 1024)
    eventual_reads = inputs.dynamodb_reads_eventual_per_request * million
    strong_reads = inputs.dynamodb_reads_strong_per_call * calls
    writes = inputs.dynamodb_writes_per_call * calls
    # Lambda time: every request pays the handler; store reads and, on a call, Cognito and the
    # lease's reads and writes are network waits.
    base = inputs.handler_ms
    hit_store_ms = base + DYNAMODB_READ_MS
    call_ms = (
        base
        + COGNITO_TOKEN_MS
        + DYNAMODB_READ_MS * (1 + inputs.dynamodb_reads_strong_per_call)
        + DYNAMODB_WRITE_MS * inputs.dynamodb_writes_per_call
    )
    store_share = min(1.0, inputs.dynamodb_reads_eventual_per_request)
    hits = million - calls
    hits_store = min(hits, store_share * million)
    billed_ms = (
        (hits - hits_store) * _billed_ms(base)
        + hits_store * _billed_ms(hit_store_ms)
        + calls * _billed_ms(call_ms)
    )
    fixed_month = (
        WAF_WEB_ACL_MONTH.usd
        + WAF_RULES * WAF_RULE_MONTH.usd
        + KMS_KEY_MONTH.usd
        + SECRET_MONTH.usd
    )
    access_log_bytes = ACCESS_LOG_BYTES if frontend == HTTP_API else 0
    log_bytes = inputs.log_bytes_per_request + access_log_bytes + LAMBDA_PLATFORM_LOG_BYTES
    front_end = (
        {"http_api": million * HTTP_API_REQUEST.usd}
        if frontend == HTTP_API
        else {"function_url": million * FUNCTION_URL_REQUEST.usd}
    )
    return {
        **front_end,
        "lambda_requests": million * LAMBDA_REQUEST.usd,
        "lambda_duration": billed_ms / 1000 * LAMBDA_MEMORY_GB * LAMBDA_ARM_GB_SECOND.usd,
        "dynamodb_reads": (eventual_reads * 0.5 + strong_reads)
        * read_units
        * DYNAMODB_READ_REQUEST_UNIT.usd,
        "dynamodb_writes": writes * write_units * DYNAMODB_WRITE_REQUEST_UNIT.usd,
        "cloudwatch_logs": million * log_bytes / 1e9 * CLOUDWATCH_LOGS_INGESTION_GB.usd,
        "waf_requests": calls * WAF_REQUEST.usd,
        "fixed_monthly_share": fixed_month * million / requests_per_month,
        "cognito": calls * COGNITO_M2M_TOKEN_REQUEST.usd,
    }


def apigw_per_million(hit_ratio: float, requests_per_month: float) -> dict[str, float]:
    million = 1e6
    return {
        "rest_api": million * APIGW_REST_REQUEST.usd,
        "cache_cluster_share": APIGW_CACHE_0_5_GB_HOUR.usd
        * HOURS_PER_MONTH
        * million
        / requests_per_month,
        "cognito": (1 - hit_ratio) * million * COGNITO_M2M_TOKEN_REQUEST.usd,
    }


def cognito_per_million() -> dict[str, float]:
    return {"cognito": 1e6 * COGNITO_M2M_TOKEN_REQUEST.usd}


def _priced(items: dict[str, float]) -> dict[str, Any]:
    return {
        "total_usd": round(sum(items.values()), 2),
        "items_usd": {name: round(value, 4) for name, value in items.items()},
    }


def run(
    inputs: ProxyInputs,
    *,
    hit_ratio: float,
    requests_per_month: float,
    day_hit_ratios: dict[str, float],
) -> dict[str, Any]:
    """Cost per million requests at ``hit_ratio`` for each approach (the proxy behind either
    front end), and at each cached approach's own hit ratio from the simulated day."""
    at_ratio = {
        "cognito_direct": _priced(cognito_per_million()),
        "apigw_recipe": _priced(apigw_per_million(hit_ratio, requests_per_month)),
        "proxy": _priced(proxy_per_million(inputs, hit_ratio, requests_per_month)),
        "proxy_function_url": _priced(
            proxy_per_million(inputs, hit_ratio, requests_per_month, FUNCTION_URL)
        ),
    }
    day_proxy = day_hit_ratios["proxy"]
    at_day = {
        "cognito_direct": _priced(cognito_per_million()),
        "apigw_recipe": _priced(
            apigw_per_million(day_hit_ratios["apigw_recipe"], requests_per_month)
        ),
        "proxy": _priced(proxy_per_million(inputs, day_proxy, requests_per_month)),
        "proxy_function_url": _priced(
            proxy_per_million(inputs, day_proxy, requests_per_month, FUNCTION_URL)
        ),
    }
    return {
        "region": REGION,
        "prices_read_on": READ_ON,
        "hit_ratio": hit_ratio,
        "requests_per_month": requests_per_month,
        "per_million_at_hit_ratio": at_ratio,
        "per_million_at_day_hit_ratios": {"hit_ratios": day_hit_ratios, **at_day},
        "proxy_inputs": asdict(inputs),
        "estimates": {
            "lambda_memory_gb": LAMBDA_MEMORY_GB,
            "dynamodb_read_ms": DYNAMODB_READ_MS,
            "dynamodb_write_ms": DYNAMODB_WRITE_MS,
            "cognito_token_ms": COGNITO_TOKEN_MS,
            "access_log_bytes": ACCESS_LOG_BYTES,
            "lambda_platform_log_bytes": LAMBDA_PLATFORM_LOG_BYTES,
            "waf_rules": WAF_RULES,
        },
        "prices": {name: asdict(price) for name, price in PRICES.items()},
    }
