"""The Lambda Python runtime's side of a container that runs a built artifact.

Started by :mod:`local.lambda_artifact` with the runtime's interpreter (Python 3.12) in
isolated mode (``-I -S``: no site-packages, no ``PYTHON*`` variables, not even this file's
directory on ``sys.path``), so nothing of the development environment reaches the function.
It puts on ``sys.path``, ahead of the standard library, what Lambda puts there and in Lambda's
order: the function's code (``/var/task``), then its layers (``/opt/python``), then the
runtime's own packages (boto3 and botocore). AWS documents that order ("Dependency search path
and runtime-included libraries",
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html): the deployment package
first, layers before the runtime-included libraries.

Standard library only, and as little of it as possible before the function's import (what this
module imports is not counted in an import's time). Two modes:

* ``--import MODULE``: import it, print ``{"seconds": ..., "cpu_seconds": ...}`` as one JSON
  line, exit: a cold start's import, timed alone (the benchmark);
* ``--handler module.function``: the init (the handler's module imported, timed), then one
  invocation per JSON line on stdin, each answered with one JSON line on the original stdout.
  The function's own output (Powertools' log lines, EMF) goes to stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time

#: Top-level packages whose exception messages name resources, never values (the rest are
#: reported by type alone).
OWN_PACKAGES = ("token_proxy", "rotator", "function_setup")


class LambdaContext:
    """The context object a Python handler receives (what Powertools reads of it)."""

    def __init__(
        self,
        *,
        function_name: str,
        memory_mb: int,
        invoked_function_arn: str,
        request_id: str,
        timeout_seconds: float,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + request_id.replace("-", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def safe_message(error: BaseException) -> str | None:
    """The error's text only when our own packages raised it (their messages never carry a
    value); anything else is reported by type alone."""
    module = type(error).__module__ or ""
    return str(error) if module.split(".", 1)[0] in OWN_PACKAGES else None


def lambda_sys_path(task_root: str, layers: list[str], runtime: list[str]) -> None:
    """``sys.path`` as Lambda orders it, ahead of the standard library."""
    sys.path[:0] = [task_root, *layers, *runtime]


def _origin(path: str | None, places: list[tuple[str, str]]) -> str:
    if not path:
        return "built-in"
    for place, root in places:
        if path.startswith(root + os.sep):
            return place
    return "standard library"


def module_origins(places: list[tuple[str, str]]) -> dict[str, str]:
    """Where each loaded top-level package came from: ``task``, ``layer``, ``runtime``, the
    standard library or built into the interpreter."""
    origins: dict[str, str] = {}
    for name, module in sorted(sys.modules.items()):
        if "." in name or name.startswith("_frozen"):
            continue
        origins[name] = _origin(getattr(module, "__file__", None), places)
    return origins


def _send(channel: io.TextIOBase, message: dict[str, object]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def serve(handler_path: str, places: list[tuple[str, str]]) -> int:
    """The init, then invocations until stdin closes."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the function's prints and log lines go to stderr, the answers to channel
    module_name, _, function_name = handler_path.rpartition(".")
    started = time.perf_counter()
    try:
        module = __import__(module_name, fromlist=[function_name])
        handler = getattr(module, function_name)
    except Exception as exc:
        _send(channel, {"ready": False, "error_type": type(exc).__name__})
        return 1
    _send(
        channel,
        {
            "ready": True,
            "init_seconds": time.perf_counter() - started,
            "python": sys.version.split()[0],
            "task_root_writable": os.access(places[0][1], os.W_OK),
        },
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("report"):
            _send(channel, {"modules": module_origins(places)})
            continue
        context = LambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            memory_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
            invoked_function_arn=request["function_arn"],
            request_id=request["request_id"],
            timeout_seconds=request["timeout_seconds"],
        )
        try:
            answer: dict[str, object] = {"ok": True, "payload": handler(request["event"], context)}
        except Exception as exc:
            answer = {"ok": False, "error_type": type(exc).__name__, "message": safe_message(exc)}
        sys.stdout.flush()
        _send(channel, answer)
    return 0


def time_import(module_name: str) -> int:
    """Import one module; print its wall-clock time and the CPU time this process spent."""
    started, cpu_started = time.perf_counter(), time.process_time()
    __import__(module_name)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    _send(sys.stdout, {"seconds": seconds, "cpu_seconds": cpu_seconds})
    return 0


def main(argv: list[str]) -> int:
    options: dict[str, list[str]] = {"--task-root": [], "--layer": [], "--runtime": []}
    mode: tuple[str, str] | None = None
    args = iter(argv)
    for flag in args:
        value = next(args)
        if flag in ("--import", "--handler"):
            mode = (flag, value)
        else:
            options[flag].append(value)
    (task_root,) = options["--task-root"] or [""]
    if mode is None or not task_root:
        print(
            "usage: lambda_bootstrap.py --task-root DIR [--layer DIR] [--runtime DIR] "
            "(--import MODULE | --handler module.function)",
            file=sys.stderr,
        )
        return 2
    lambda_sys_path(task_root, options["--layer"], options["--runtime"])
    places = [("task", task_root)]
    places += [("layer", layer) for layer in options["--layer"]]
    places += [("runtime", runtime) for runtime in options["--runtime"]]
    if mode[0] == "--import":
        return time_import(mode[1])
    return serve(mode[1], places)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
