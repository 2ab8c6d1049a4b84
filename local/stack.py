"""The local stack: the whole product on loopback, without an AWS account or Docker.

``python -m local.stack`` (``make run``) starts, in this process:

* moto's server on 127.0.0.1:${MOTO_PORT:-5001}, holding the table, the KMS key, the
  origin-verify secret, the regex pattern set, the rule group, the web ACL associated with a
  (moto) user pool and the alarms, created from template.yaml's own definitions
  (:mod:`local.cloudformation_resources`);
* the local issuer (:mod:`local.cognito_token_endpoint`) on 127.0.0.1:${ISSUER_PORT:-9001},
  standing in for the user pool's token endpoint behind whichever web ACL is associated with
  that pool in moto (it records WAF's sampled requests, which moto serves);
* the token proxy at http://127.0.0.1:${PROXY_PORT:-3000}/oauth2/token: an HTTP API adapter
  (:mod:`local.http_api`), or with ``FRONTEND=FunctionUrl`` a function URL adapter
  (:mod:`local.function_url`), in front of the real handler, run in Lambda-like worker processes
  (:mod:`local.lambda_runtime`) with ``AWS_ENDPOINT_URL`` pointing at moto.

Clients come from ``LOCAL_CLIENTS_FILE`` or the shipped demo files. ``ORIGIN_RULE_ACTION``
(``Block``, the local default, or ``Count``), ``ORIGIN_RULE_COVERAGE`` (``ClientCredentials``
or ``AllTokenRequests``) and ``WEB_ACL`` (``Create`` or ``External``: the pool's own web ACL,
:mod:`local.existing_web_acl`) set those template parameters, ``FRONTEND`` (``HttpApi`` or
``FunctionUrl``) the template's ``Frontend``. The proxy's tunables
(``ORIGIN_SECRET_MAX_AGE_SECONDS``, ``REFRESH_RATIO``, ...) and the rotator's
(``PRUNE_GRACE_SECONDS``, ...) are taken from the environment when set. A port of 0 picks a free
one. When ready the stack writes ``.local/stack.json`` (endpoints, names, ARNs, the region and
the stack as CloudFormation would describe it; never a secret value) for ``make invoke``,
``make rotate``, ``make prune`` and ``make verify LOCAL=1``, prints the URLs, a
demo client and a curl line, and runs until Ctrl-C or SIGTERM.

:class:`LocalStack` is the same thing as a library, for the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from local.cloudformation_resources import (
    DEFAULT_REGION,
    PROXY_FUNCTION,
    ROTATOR_FUNCTION,
    LocalAwsResources,
    bootstrap,
)
from local.cloudformation_template import default_template
from local.cognito_token_endpoint import (
    DEMO_CLIENTS_PATH,
    DISCOVERY_PATH,
    JWKS_PATH,
    TOKEN_PATH,
    ClientRegistration,
    LocalIssuer,
    RunningIssuer,
    WebAclSource,
    load_clients,
)
from local.cognito_token_endpoint import serve_in_thread as serve_issuer
from local.function_url import FunctionUrlAdapter, FunctionUrlIdentity
from local.function_url import serve_in_thread as serve_function_url
from local.http_api import ApiIdentity, HttpApiAdapter, RunningAdapter, template_routes
from local.http_api import serve_in_thread as serve_adapter
from local.lambda_runtime import (
    REPO_ROOT,
    SRC_DIR,
    FunctionContainers,
    FunctionSpec,
    InProcessFunction,
)
from local.moto_server import LOOPBACK, RunningMotoServer, local_aws_environment, start_moto_server
from local.waf_sampled_requests import SAMPLED_REQUESTS
from local.waf_web_acl import WebAclEvaluator

logger = logging.getLogger("local.stack")
_T = TypeVar("_T")

LOCAL_STACK_NAME = "token-proxy-local"
#: The example app client the files in events/ use (a fake, documented in that file).
EVENTS_CLIENTS_PATH = Path(__file__).resolve().parent / "clients.events.json"
DEFAULT_STATE_FILE = REPO_ROOT / ".local" / "stack.json"
STATE_FILE_VARIABLE = "LOCAL_STACK_STATE"
STATE_VERSION = 1
#: Variables never written to the state file (moto's fake credentials are rebuilt on use).
_CREDENTIAL_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
)
#: Variables passed from the environment to both functions when set.
_COMMON_OVERRIDES = ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_DEV")


def _optional_setting_names(settings_class: Any) -> tuple[str, ...]:
    return tuple(f.name.upper() for f in fields(settings_class) if f.default is not MISSING)


def _ensure_src_on_path() -> None:
    if str(SRC_DIR) not in sys.path:  # the handlers' packages, as in the Lambda artifact
        sys.path.insert(0, str(SRC_DIR))


def proxy_tunables() -> tuple[str, ...]:
    """The proxy's tunables: the Settings fields with a default (bootstrap sets the others)."""
    _ensure_src_on_path()
    from token_proxy.settings import Settings

    return _optional_setting_names(Settings) + _COMMON_OVERRIDES


def rotator_tunables() -> tuple[str, ...]:
    """The rotator's tunables (``PRUNE_GRACE_SECONDS`` ...)."""
    _ensure_src_on_path()
    from rotator.settings import RotatorSettings

    fixed = ("PATTERN_SET_SCOPE", "COGNITO_TOKEN_URL")
    names = _optional_setting_names(RotatorSettings)
    return tuple(n for n in names if n not in fixed) + _COMMON_OVERRIDES


def state_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the running stack describes itself (``LOCAL_STACK_STATE`` overrides)."""
    env = os.environ if environ is None else environ
    return Path(env.get(STATE_FILE_VARIABLE) or DEFAULT_STATE_FILE)


def overrides_from(environ: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The variables among ``names`` that are set (non-empty) in ``environ``."""
    return {name: environ[name] for name in names if environ.get(name)}


#: Environment variables that set template parameters of the local stack.
PARAMETER_VARIABLES = {
    "ORIGIN_RULE_ACTION": "OriginRuleAction",
    "ORIGIN_RULE_COVERAGE": "OriginRuleCoverage",
    "FRONTEND": "Frontend",
    "WEB_ACL": "WebAcl",
}
#: The template's Frontend values the local stack serves.
HTTP_API = "HttpApi"
FUNCTION_URL = "FunctionUrl"


def parameters_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The template parameters set in ``environ``, each checked against its AllowedValues."""
    declared = default_template()["Parameters"]
    parameters: dict[str, str] = {}
    for variable, parameter in PARAMETER_VARIABLES.items():
        value = environ.get(variable)
        if not value:
            continue
        allowed = [str(v) for v in declared[parameter]["AllowedValues"]]
        if value not in allowed:
            raise SystemExit(f"{variable}={value!r} must be one of {', '.join(allowed)}")
        parameters[parameter] = value
    return parameters


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SystemExit(f"{name}={raw!r} is not a port number")
    return port


def _ensure_free(host: str, port: int, variable: str) -> None:
    """Fail clearly when a fixed port is taken (moto's threaded server would wait forever)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise PortInUseError(
                f"{host}:{port} is already in use; stop what holds it or set {variable}"
            ) from None


class PortInUseError(RuntimeError):
    """A port the stack was told to use is taken."""


class StackNotStartedError(RuntimeError):
    """A part of the stack was asked for before start() (or after stop())."""


def _need(value: _T | None, what: str) -> _T:
    if value is None:
        raise StackNotStartedError(f"{what} is not available: start() the stack first")
    return value


def function_spec(
    logical_id: str,
    environment: Mapping[str, str],
    *,
    resources: LocalAwsResources,
    template: Mapping[str, Any] | None = None,
) -> FunctionSpec:
    """A function's handler, memory, timeout and environment as template.yaml sets them."""
    tpl = template or default_template()
    globals_ = (tpl.get("Globals") or {}).get("Function") or {}
    props = tpl["Resources"][logical_id]["Properties"]
    return FunctionSpec(
        name=f"{resources.stack_name}-{logical_id}",
        handler=str(props.get("Handler") or globals_["Handler"]),
        environment=dict(environment),
        memory_mb=int(props.get("MemorySize") or globals_.get("MemorySize") or 128),
        timeout_seconds=_timeout_seconds(tpl, props, globals_, environment),
        region=resources.region,
        account_id=resources.account_id,
    )


def _timeout_seconds(
    template: Mapping[str, Any],
    props: Mapping[str, Any],
    globals_: Mapping[str, Any],
    environment: Mapping[str, str],
) -> float:
    """The function's Timeout: a number, or a parameter (``!Ref``) whose value is the one the
    function's environment got from the same parameter (local overrides included), or else
    the parameter's default."""
    timeout = props.get("Timeout") or globals_.get("Timeout") or 3
    if not isinstance(timeout, Mapping):
        return float(timeout)
    variables = (props.get("Environment") or {}).get("Variables") or {}
    for name, value in variables.items():
        if value == timeout and name in environment:
            return float(environment[name])
    return float(template["Parameters"][timeout["Ref"]]["Default"])


@dataclass
class StackConfig:
    """What to start; :meth:`from_env` reads it as ``make run`` passes it."""

    host: str = LOOPBACK
    moto_port: int = 5001
    issuer_port: int = 9001
    proxy_port: int = 3000
    region: str = DEFAULT_REGION
    stack_name: str = LOCAL_STACK_NAME
    #: A clients file; None loads the shipped demo clients and the events/ example client.
    clients_file: Path | None = None
    #: Variables added to (or overriding) the proxy function's environment.
    proxy_overrides: dict[str, str] = field(default_factory=dict)
    #: Variables added to the rotator's environment (as recorded in the state file).
    rotator_overrides: dict[str, str] = field(default_factory=dict)
    #: Template parameters (e.g. {"PruneGraceSeconds": 0}).
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Proxy containers at most (Lambda's concurrency); 0 runs the handler in this process.
    containers: int = 4
    #: Containers started and initialised before the stack reports ready.
    prewarm: int = 1
    #: How long the issuer keeps the web ACL it read from moto (0 re-reads every request).
    waf_max_age_seconds: float = 1.0
    #: Where the state file goes; None writes none.
    state_file: Path | None = None
    #: Where the function containers write their logs (Powertools JSON, EMF); None inherits.
    function_log: Path | None = None
    #: Serve the proxy over HTTP (``make invoke``'s temporary stack does not).
    serve_proxy: bool = True

    @property
    def frontend(self) -> str:
        """What serves the proxy: the template's ``Frontend`` parameter (``HttpApi`` unless set)."""
        declared = default_template()["Parameters"]["Frontend"]["Default"]
        return str(self.parameters.get("Frontend", declared))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if environ is None else environ
        clients = env.get("LOCAL_CLIENTS_FILE")
        log_target = env.get("LOCAL_FUNCTION_LOGS", "")
        state = state_file_path(env)
        function_log: Path | None
        if log_target in ("-", "stdout"):
            function_log = None
        elif log_target:
            function_log = Path(log_target)
        else:
            function_log = state.parent / "functions.log"
        return cls(
            moto_port=_port(env, "MOTO_PORT", 5001),
            issuer_port=_port(env, "ISSUER_PORT", 9001),
            proxy_port=_port(env, "PROXY_PORT", 3000),
            region=env.get("AWS_LOCAL_REGION") or DEFAULT_REGION,
            clients_file=Path(clients) if clients else None,
            proxy_overrides=overrides_from(env, proxy_tunables()),
            rotator_overrides=overrides_from(env, rotator_tunables()),
            containers=int(env.get("PROXY_CONTAINERS") or 4),
            parameters=parameters_from(env),
            state_file=state,
            function_log=function_log,
        )


class _LateWebAcl:
    """The issuer's web ACL provider, connected once bootstrap has created the web ACL (the
    issuer must listen first: its URL goes into the functions' environment). Until then every
    request fails closed."""

    def __init__(self) -> None:
        self.source: WebAclSource | None = None

    def __call__(self) -> WebAclEvaluator:
        if self.source is None:
            raise RuntimeError("the web ACL is not created yet")
        return self.source()


class LocalStack:
    """moto + the local issuer + the token proxy behind the HTTP API adapter, on loopback.

    ``start()`` brings everything up (and writes the state file when configured); ``stop()``
    takes it down in reverse order. Usable as a context manager. After ``start()``:
    ``aws`` (names and ARNs), ``moto_url``, ``issuer_url``, ``issuer_token_url``, ``issuer``
    (the :class:`LocalIssuer`, for its counters), ``proxy_url``, ``proxy_token_url``,
    ``clients``, ``proxy_spec`` and ``rotator_spec``.
    """

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.clients: list[ClientRegistration] = []
        self.aws: LocalAwsResources | None = None
        self.issuer: LocalIssuer | None = None
        self.proxy_spec: FunctionSpec | None = None
        self.rotator_spec: FunctionSpec | None = None
        self.proxy_function: FunctionContainers | InProcessFunction | None = None
        self._moto: RunningMotoServer | None = None
        self._issuer_server: RunningIssuer | None = None
        self._issuer_port = 0
        self._adapter: RunningAdapter | None = None
        self._web_acl = _LateWebAcl()
        self._stoppers: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        cfg = self.config
        try:
            for port, variable in (
                (cfg.moto_port, "MOTO_PORT"),
                (cfg.issuer_port, "ISSUER_PORT"),
                (cfg.proxy_port if cfg.serve_proxy else 0, "PROXY_PORT"),
            ):
                _ensure_free(cfg.host, port, variable)
            self.clients = self._load_clients()

            self._moto = start_moto_server(cfg.moto_port, cfg.host)
            self._stoppers.append(self._moto.stop)

            self.issuer = LocalIssuer(
                self.clients, web_acl=self._web_acl, sampled_requests=SAMPLED_REQUESTS
            )
            self._issuer_server = serve_issuer(self.issuer, cfg.host, cfg.issuer_port)
            self._issuer_port = self._issuer_server.port
            self._stoppers.append(self.stop_issuer)

            self.aws = bootstrap(
                self._moto.endpoint_url,
                cognito_token_url=self._issuer_server.token_url,
                region=cfg.region,
                stack_name=cfg.stack_name,
                parameters=cfg.parameters or None,
            )
            # WAF protects the pool with whichever web ACL is associated with it.
            self._web_acl.source = WebAclSource(
                self.aws.endpoint_url,
                self.aws.region,
                resource_arn=self.aws.user_pool_arn,
                scope=self.aws.web_acl_scope,
                max_age_seconds=cfg.waf_max_age_seconds,
            )
            self.proxy_spec = function_spec(
                PROXY_FUNCTION,
                {**self.aws.proxy_environment, **cfg.proxy_overrides},
                resources=self.aws,
            )
            self.rotator_spec = function_spec(
                ROTATOR_FUNCTION,
                {**self.aws.rotator_environment, **cfg.rotator_overrides},
                resources=self.aws,
            )
            if cfg.serve_proxy:
                self._start_proxy()
            if cfg.state_file is not None:
                self.write_state(cfg.state_file)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_proxy(self) -> None:
        cfg = self.config
        spec, aws = _need(self.proxy_spec, "the proxy function"), _need(self.aws, "AWS")
        function: FunctionContainers | InProcessFunction
        if cfg.containers > 0:
            if cfg.function_log is not None:
                cfg.function_log.parent.mkdir(parents=True, exist_ok=True)
            containers = FunctionContainers(
                spec,
                max_containers=cfg.containers,
                prewarm=cfg.prewarm,
                log_path=cfg.function_log,
            )
            self._stoppers.append(containers.close)
            containers.start()
            function = containers
        else:
            function = InProcessFunction(spec)
            self._stoppers.append(function.close)
        self.proxy_function = function
        if cfg.frontend == FUNCTION_URL:
            url = FunctionUrlIdentity.for_function(spec.name, aws.region)
            self._adapter = serve_function_url(
                FunctionUrlAdapter(function, url=url), cfg.host, cfg.proxy_port
            )
        else:
            app = HttpApiAdapter(
                function,
                routes=template_routes(PROXY_FUNCTION),
                identity=ApiIdentity(api_id="local", account_id=aws.account_id),
            )
            self._adapter = serve_adapter(app, cfg.host, cfg.proxy_port)
        self._stoppers.append(self._adapter.stop)

    def stop(self) -> None:
        """Stop everything started so far (the proxy first, moto last); safe to call twice."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                logger.exception("stopping a part of the local stack failed")
        cfg = self.config
        if cfg.state_file is not None and self._owns_state_file(cfg.state_file):
            with contextlib.suppress(OSError):
                cfg.state_file.unlink()

    def stop_issuer(self) -> None:
        """Take the issuer off the network (the end-to-end tests' outage); idempotent."""
        if self._issuer_server is not None:
            server, self._issuer_server = self._issuer_server, None
            server.stop()

    def start_issuer(self) -> None:
        """Serve the same issuer (same keys, clients, counters) again on its port."""
        if self._issuer_server is None and self.issuer is not None:
            self._issuer_server = serve_issuer(self.issuer, self.config.host, self._issuer_port)

    # ------------------------------------------------------------------ what it offers
    @property
    def moto_url(self) -> str:
        return _need(self._moto, "moto").endpoint_url

    @property
    def issuer_url(self) -> str:
        return f"http://{self.config.host}:{self._issuer_port}"

    @property
    def issuer_token_url(self) -> str:
        return self.issuer_url + TOKEN_PATH

    @property
    def proxy_url(self) -> str:
        return _need(self._adapter, "the proxy").url

    @property
    def proxy_token_url(self) -> str:
        return self.proxy_url + TOKEN_PATH

    def aws_environment(self) -> dict[str, str]:
        """Variables that point an SDK at this stack's moto."""
        aws = _need(self.aws, "AWS")
        return local_aws_environment(aws.endpoint_url, aws.region)

    def _load_clients(self) -> list[ClientRegistration]:
        if self.config.clients_file is not None:
            return load_clients(self.config.clients_file)
        return [*load_clients(DEMO_CLIENTS_PATH), *load_clients(EVENTS_CLIENTS_PATH)]

    @property
    def uses_shipped_clients(self) -> bool:
        """Whether the clients are the shipped fake ones (whose secrets may be printed)."""
        return self.config.clients_file is None

    # ------------------------------------------------------------------ the state file
    def state(self) -> dict[str, Any]:
        """The stack's description for the other commands: no secret value in it."""
        aws = _need(self.aws, "AWS")
        proxy_spec = _need(self.proxy_spec, "the proxy function")
        rotator_spec = _need(self.rotator_spec, "the rotator function")
        return {
            "version": STATE_VERSION,
            "pid": os.getpid(),
            "region": aws.region,
            "account_id": aws.account_id,
            "stack_name": aws.stack_name,
            "endpoints": {
                "aws": aws.endpoint_url,
                "issuer": self.issuer_url,
                "issuer_token_url": self.issuer_token_url,
                "proxy_token_url": self.proxy_token_url if self._adapter is not None else None,
                "proxy_frontend": self.config.frontend,
            },
            "resources": {
                "table_name": aws.table_name,
                "table_arn": aws.table_arn,
                "kms_key_arn": aws.kms_key_arn,
                "secret_name": aws.secret_name,
                "secret_arn": aws.secret_arn,
                "pattern_set_name": aws.pattern_set_name,
                "pattern_set_id": aws.pattern_set_id,
                "pattern_set_arn": aws.pattern_set_arn,
                "pattern_set_scope": aws.pattern_set_scope,
                "web_acl_name": aws.web_acl_name,
                "web_acl_id": aws.web_acl_id,
                "web_acl_arn": aws.web_acl_arn,
            },
            "functions": {
                "token_proxy": _spec_state(proxy_spec),
                "rotator": _spec_state(rotator_spec),
            },
            "stack": self.stack_description(),
            "shipped_clients": self.uses_shipped_clients,
        }

    def stack_description(self) -> dict[str, Any]:
        """The stack as CloudFormation's DescribeStacks and ListStackResources describe a
        deployed one (``make verify`` reads either), its TokenEndpoint the local proxy's."""
        aws = _need(self.aws, "AWS")
        outputs = dict(aws.outputs)
        if self._adapter is not None:
            outputs["TokenEndpoint"] = self.proxy_token_url
        return {
            "StackName": aws.stack_name,
            "StackStatus": "CREATE_COMPLETE",
            "Parameters": [
                {"ParameterKey": key, "ParameterValue": value}
                for key, value in aws.parameters.items()
            ],
            "Outputs": [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()],
            "StackResourceSummaries": list(aws.stack_resources),
        }

    def write_state(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state(), indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)

    def _owns_state_file(self, path: Path) -> bool:
        try:
            return int(json.loads(path.read_text(encoding="utf-8"))["pid"]) == os.getpid()
        except (OSError, ValueError, KeyError, TypeError):
            return False


def read_running_state(path: Path | None = None) -> dict[str, Any] | None:
    """The state of a running local stack, or None when none is running (no file, a file
    left by a stack that died, or a stack whose AWS endpoint does not answer)."""
    path = path or state_file_path()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        pid = int(state["pid"])
        endpoint = urlsplit(str(state["endpoints"]["aws"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.get("version") != STATE_VERSION:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    # A stopped stack's port refuses at once; the timeout only bounds a hung one, and is long
    # enough for a busy machine (a 1 s bound once sent a command to a temporary stack).
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 80), timeout=5):
            pass
    except OSError:
        return None
    return dict(state)


def spec_from_state(
    state: Mapping[str, Any], function: str, overrides: Mapping[str, str] | None = None
) -> FunctionSpec:
    """A function of a running stack (``token_proxy`` or ``rotator``), its environment pointed
    at the stack's AWS endpoint, with ``overrides`` applied."""
    described = state["functions"][function]
    environment = {
        **described["environment"],
        **local_aws_environment(state["endpoints"]["aws"], state["region"]),
        **(overrides or {}),
    }
    return FunctionSpec(
        name=str(described["name"]),
        handler=str(described["handler"]),
        environment=environment,
        memory_mb=int(described["memory_mb"]),
        timeout_seconds=float(described["timeout_seconds"]),
        region=str(state["region"]),
        account_id=str(state["account_id"]),
    )


def _spec_state(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "handler": spec.handler,
        "memory_mb": spec.memory_mb,
        "timeout_seconds": spec.timeout_seconds,
        "environment": {
            k: v for k, v in spec.environment.items() if k not in _CREDENTIAL_VARIABLES
        },
    }


# ---------------------------------------------------------------------- the command
def ready_message(stack: LocalStack) -> str:
    """What ``make run`` prints once everything listens."""
    aws = _need(stack.aws, "AWS")
    cfg = stack.config
    lines = [
        f"Local stack ready (stack {aws.stack_name}, region {aws.region}).",
        f"  token proxy   {stack.proxy_token_url}  ({_FRONTEND_NAMES[cfg.frontend]})",
        f"  local issuer  {stack.issuer_token_url}  (counters {stack.issuer_url}/stats)",
        f"  issuer URL    {stack.issuer_url}  (OIDC discovery"
        f" {stack.issuer_url}{DISCOVERY_PATH}, JWKS {stack.issuer_url}{JWKS_PATH})",
        f"  AWS (moto)    {stack.moto_url}",
    ]
    if cfg.state_file is not None:
        lines.append(f"  state file    {_display_path(cfg.state_file)}")
    if cfg.containers > 0:
        where = _display_path(cfg.function_log) if cfg.function_log else "this terminal"
        lines.append(f"  function logs {where}")
    if stack.clients:
        client = stack.clients[0]
        scope = client.scopes[0] if client.scopes else ""
        scope_arg = f" -d scope={scope}" if scope else ""
        lines.append("")
        if stack.uses_shipped_clients:
            # The shipped demo clients' secrets are fake values published in the repository.
            lines.append(
                f"Demo client: {client.client_id} (scopes: {' '.join(client.scopes) or '-'}; "
                f"token lifetime {client.token_lifetime} s)"
            )
            credentials = f"'{client.client_id}:{client.client_secret}'"
        else:
            lines.append(
                f"Client: {client.client_id} (secret: see {cfg.clients_file}; "
                f"scopes: {' '.join(client.scopes) or '-'})"
            )
            credentials = f'"{client.client_id}:$CLIENT_SECRET"'  # the shell fills it in
        lines.append("Try:")
        lines.append(
            f"  curl -s -u {credentials} -d grant_type=client_credentials{scope_arg} "
            f"{stack.proxy_token_url}"
        )
    lines.append("")
    grace = (stack.rotator_spec.environment if stack.rotator_spec else {}).get(
        "PRUNE_GRACE_SECONDS", "?"
    )
    lines.append(f"Also: make rotate, then make prune (prune grace {grace} s; set")
    lines.append("      PRUNE_GRACE_SECONDS=0 to prune at once),")
    lines.append("      make invoke EVENT=events/token_basic.json,")
    lines.append("      make verify LOCAL=1 (checks the stack end to end). Ctrl-C stops.")
    return "\n".join(lines)


_FRONTEND_NAMES = {HTTP_API: "HTTP API", FUNCTION_URL: "function URL"}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``python -m local.stack``: run the local stack in the foreground until Ctrl-C/SIGTERM."""
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("local.cognito_token_endpoint").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    stack = LocalStack(StackConfig.from_env())
    try:
        stack.start()
        print(ready_message(stack), flush=True)
        threading.Event().wait()
    except PortInUseError as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        # Ctrl-C or SIGTERM while stopping must not leave moto's or the issuer's threads behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print("Local stack stopped.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
