"""Runs a Lambda handler the way the Lambda service does, without Docker.

Two ways to invoke a function described by a :class:`FunctionSpec` (its handler path, its
environment, memory and timeout as template.yaml sets them):

* :class:`FunctionContainers` - a pool of worker processes, each one "container": it imports
  the handler once (the cold start), then serves one invocation at a time and stays warm.
  Containers are started on demand up to a bound, as Lambda scales out, so concurrent requests
  run in separate containers with their own in-memory state and meet only in the shared AWS
  resources (the token table's lease), as they would in AWS. A container that times out or
  dies is replaced.
* :class:`InProcessFunction` - the handler in the calling process, one invocation at a time
  (``make invoke``, ``make rotate``). It puts the function's environment into ``os.environ``
  (the handlers read it on first use) and clears the handlers' cached factories.

Neither logs an event or a result: both may carry credentials and tokens.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from local.lambda_bootstrap import safe_message

logger = logging.getLogger("local.lambda_runtime")

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"
#: How long a new container may take to import its handler (Lambda allows 10 s; a loaded
#: development machine starting several containers at once may need more).
INIT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function as template.yaml defines it, resolved for the local stack."""

    name: str
    handler: str  # "package.module.function"
    environment: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = 128
    timeout_seconds: float = 3.0
    region: str = "eu-west-1"
    account_id: str = "123456789012"
    sys_path: tuple[str, ...] = (str(SRC_DIR), str(REPO_ROOT))

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    def runtime_environment(self) -> dict[str, str]:
        """The function's variables plus those the Lambda runtime sets itself."""
        return {
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            # No X-Ray daemon locally (sam local does the same).
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self.environment,
        }


class Function(Protocol):
    """A function that can be invoked with an event (in this process or in containers)."""

    @property
    def spec(self) -> FunctionSpec: ...

    def invoke(self, event: Any) -> Invocation: ...

    def close(self) -> None: ...


class LambdaContext:
    """The context object a Python handler receives (the attributes Powertools reads)."""

    def __init__(self, spec: FunctionSpec, request_id: str | None = None) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + spec.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True, slots=True)
class Invocation:
    """The outcome of one invocation: the handler's return value, or its error."""

    ok: bool
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    request_id: str = ""

    def as_lambda_output(self) -> Any:
        """What ``sam local invoke`` prints: the result, or Lambda's error document."""
        if self.ok:
            return self.payload
        error: dict[str, str] = {"errorType": self.error_type or "Error"}
        if self.error_message:
            error["errorMessage"] = self.error_message
        return error


class FunctionError(Exception):
    """The function could not be run at all (not an error of the handler)."""


def _load_handler(path: str) -> tuple[ModuleType, Callable[[Any, Any], Any]]:
    module_name, _, function_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    return module, getattr(module, function_name)


def reset_handler_module(module: ModuleType) -> None:
    """Forget what the handler module built from the environment (a new container): both
    handler modules clear their cached factories in ``reset()``."""
    reset = getattr(module, "reset", None)
    if callable(reset):
        reset()


# ---------------------------------------------------------------------- in-process
@contextlib.contextmanager
def environment_applied(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


class InProcessFunction:
    """The handler in this process, one invocation at a time, like a single warm container.

    Each invocation runs with the function's environment applied to ``os.environ`` (and
    restored after it); the handler module's cached factories are cleared when this object is
    created, so the handler builds its clients from this environment. Objects a handler module
    builds at import time (Powertools' Logger and Metrics read their service name and metric
    namespace then) keep the environment of the first import: in a process that imported the
    handler before (a test session), use :class:`FunctionContainers` for a fresh container.
    Handler output written to ``sys.stdout`` (Powertools logs, EMF metrics) goes to
    ``log_stream`` instead when given.
    """

    def __init__(self, spec: FunctionSpec, *, log_stream: Any = None) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._log_stream = log_stream
        for entry in reversed(spec.sys_path):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        with self._output(), environment_applied(spec.runtime_environment()):
            self._module, self._handler = _load_handler(spec.handler)
            reset_handler_module(self._module)

    def _output(self) -> contextlib.AbstractContextManager[Any]:
        if self._log_stream is None:
            return contextlib.nullcontext()
        return contextlib.redirect_stdout(self._log_stream)

    def invoke(self, event: Any) -> Invocation:
        context = LambdaContext(self.spec)
        with self._lock, self._output(), environment_applied(self.spec.runtime_environment()):
            try:
                result = self._handler(event, context)
            except Exception as exc:
                return Invocation(
                    ok=False,
                    error_type=type(exc).__name__,
                    error_message=safe_message(exc),
                    request_id=context.aws_request_id,
                )
        return Invocation(ok=True, payload=result, request_id=context.aws_request_id)

    def close(self) -> None:
        reset_handler_module(self._module)


# ---------------------------------------------------------------------- containers
def container_main(conn: Connection, spec: FunctionSpec, log_path: str | None) -> None:
    """A container process: init (import the handler), then invocations until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns shutdown (Ctrl-C)
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.environ.update(spec.runtime_environment())
    for entry in reversed(spec.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        _, handler = _load_handler(spec.handler)
    except Exception as exc:
        print(f"init failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        conn.send(("init_error", type(exc).__name__, safe_message(exc)))
        return
    conn.send(("ready", None, None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        event, request_id = message
        context = LambdaContext(spec, request_id)
        try:
            reply: tuple[str, Any, Any] = ("ok", handler(event, context), None)
        except Exception as exc:
            # Lambda logs the error; its text only when it cannot carry a value.
            print(
                f'{{"errorType": "{type(exc).__name__}", "requestId": "{request_id}"}}',
                file=sys.stderr,
            )
            reply = ("error", type(exc).__name__, safe_message(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            conn.send(reply)
        except (TypeError, ValueError, AttributeError) as exc:  # an unpicklable result
            conn.send(("error", "Runtime.MarshalError", type(exc).__name__))


class _Container:
    def __init__(self, context: Any, spec: FunctionSpec, index: int, log_path: str | None) -> None:
        parent_end, child_end = context.Pipe()
        self.process = context.Process(
            target=container_main,
            args=(child_end, spec, log_path),
            name=f"{spec.name}-container-{index}",
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.ready = False
        self.index = index

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            raise FunctionError("the function's init phase timed out")
        kind, error_type, message = self.conn.recv()
        if kind != "ready":
            raise FunctionError(f"the function failed to initialise ({error_type}: {message})")
        self.ready = True

    def invoke(self, event: Any, request_id: str, timeout: float) -> tuple[str, Any, Any]:
        self.conn.send((event, request_id))
        if not self.conn.poll(timeout):
            raise TimeoutError
        reply: tuple[str, Any, Any] = self.conn.recv()
        return reply

    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def stop(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


class FunctionContainers:
    """Worker processes ("containers") for one function, started on demand up to a bound.

    An invocation takes an idle warm container, or starts a new one (a cold start) while fewer
    than ``max_containers`` exist, or waits for one to become idle. ``prewarm`` containers are
    started (and their init awaited) by :meth:`start`.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        max_containers: int = 4,
        prewarm: int = 0,
        log_path: str | Path | None = None,
    ) -> None:
        if max_containers < 1:
            raise ValueError("max_containers must be >= 1")
        self.spec = spec
        self.max_containers = max_containers
        self._prewarm = min(prewarm, max_containers)
        self._log_path = str(log_path) if log_path is not None else None
        self._mp = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._idle: list[_Container] = []
        self._count = 0
        self._started = 0
        self._closed = False

    @property
    def container_count(self) -> int:
        with self._cond:
            return self._count

    def start(self) -> None:
        containers = [self._new_container() for _ in range(self._prewarm)]
        try:
            for container in containers:
                container.wait_ready(INIT_TIMEOUT_SECONDS)
        finally:
            with self._cond:
                self._idle.extend(containers)
                self._cond.notify_all()

    def _new_container(self) -> _Container:
        with self._cond:
            self._count += 1
            self._started += 1
            index = self._started
        return _Container(self._mp, self.spec, index, self._log_path)

    def _acquire(self) -> _Container:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("the function is stopped")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.max_containers:
                    break
                self._cond.wait()
        container = self._new_container()
        logger.debug("cold start", extra={"function": self.spec.name, "index": container.index})
        return container

    def _release(self, container: _Container, *, healthy: bool) -> None:
        if not healthy:
            container.stop(timeout=0.5)
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(container)
            else:
                self._count -= 1
            self._cond.notify()
        if healthy and self._closed:
            container.stop()

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        container = self._acquire()
        healthy = False
        try:
            container.wait_ready(INIT_TIMEOUT_SECONDS)
            kind, value, message = container.invoke(event, request_id, self.spec.timeout_seconds)
            healthy = True
        except TimeoutError:
            logger.warning("function timed out", extra={"function": self.spec.name})
            return Invocation(
                ok=False,
                error_type="Sandbox.Timedout",
                error_message=f"Task timed out after {self.spec.timeout_seconds:.2f} seconds",
                request_id=request_id,
            )
        except (FunctionError, EOFError, OSError) as exc:
            logger.warning(
                "function container failed",
                extra={"function": self.spec.name, "error": type(exc).__name__},
            )
            return Invocation(
                ok=False,
                error_type="Runtime.ExitError",
                error_message=str(exc) if isinstance(exc, FunctionError) else None,
                request_id=request_id,
            )
        finally:
            self._release(container, healthy=healthy and container.alive())
        if kind == "ok":
            return Invocation(ok=True, payload=value, request_id=request_id)
        return Invocation(ok=False, error_type=value, error_message=message, request_id=request_id)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for container in idle:
            container.stop()
