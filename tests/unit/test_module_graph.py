"""The shape of src/: the import graph between our modules has no cycle, data flows one way
(each package's modules in one order, top to bottom: app -> request -> service -> token_cache ->
store, and the Cognito client; a module imports only modules below it), the service knows
nothing about sealing or storage formats, and no module grows past :data:`MAX_MODULE_LINES`.

Imports are read with ``ast`` from the source files, so the test sees every import, including
those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGES = ("token_proxy", "rotator", "function_setup")
#: Each package's modules, top to bottom: a module imports only modules below it. A request
#: enters at the top (the handler) and its data flows down; a new module takes its place here.
TOP_TO_BOTTOM = {
    "token_proxy": (
        "app",
        "admin",
        "wiring",
        "request",
        "client_auth",
        "http_event",
        "service",
        "accounting",
        "backoff",
        "budget",
        "single_flight",
        "key_locks",
        "turn",
        "token_cache",
        "token_record",
        "seal",
        "l1",
        "store",
        "store.tokens",
        "store.leases",
        "store.counters",
        "store.invalidation",
        "store.attributes",
        "cognito_client",
        "upstream_retries",
        "origin_verify",
        "secrets_manager",
        "upstream_trace",
        "cache_key",
        "freshness",
        "replies",
        "ports",
        "deadline",
        "settings",
        "errors",
        "telemetry",
        "model",
    ),
    "rotator": (
        "app",
        "steps",
        "prune",
        "pattern_set_update",
        "canary",
        "pattern_set",
        "secret_store",
        "settings",
        "model",
        "errors",
    ),
    "function_setup": ("powertools", "metrics", "environment"),
}
#: No module of src/ or verify/ is longer than this: a module that grows past it holds more
#: than one job (split it along its seams, as the modules above are).
MAX_MODULE_LINES = 330
SIZED = (SRC, ROOT / "verify")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {module_name(p): p for package in PACKAGES for p in (SRC / package).rglob("*.py")}
    assert set(PACKAGES) <= set(found), f"missing packages under {SRC}"
    return found


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in ``path`` names (``from a import b`` names
    ``a`` and ``a.b``: b may be a module)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Our modules and the modules of ours each one imports."""
    ours = modules()
    return {
        name: frozenset(n for n in imported_names(path) if n in ours and n != name)
        for name, path in ours.items()
    }


def find_cycle(edges: dict[str, frozenset[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges[node]):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    # GIVEN a graph a -> b -> c -> a beside an acyclic d -> a
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": {"a"}}

    # WHEN/THEN the cycle is reported, and a graph without it has none
    assert find_cycle(edges) == ["a", "b", "c", "a"]  # type: ignore[arg-type]
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset()}) is None


def test_the_import_graph_of_src_has_no_cycle() -> None:
    # GIVEN every module under src/ and the modules of ours it imports
    edges = graph()

    # WHEN the graph is walked THEN no import leads back to where it started
    assert len(edges) > 20
    assert find_cycle(edges) is None


def test_nothing_imports_a_handler_module() -> None:
    # GIVEN the two handler modules (the top of each function)
    handlers = {"token_proxy.app", "rotator.app"}

    # WHEN/THEN no module imports them
    importers = {name: sorted(deps & handlers) for name, deps in graph().items() if deps & handlers}
    assert importers == {}


def test_the_functions_share_only_function_setup() -> None:
    # GIVEN each package's imports of our modules
    for name, deps in graph().items():
        package = name.split(".", 1)[0]
        others = {d.split(".", 1)[0] for d in deps} - {package}

        # THEN the proxy and the rotator never import each other; function_setup imports neither
        allowed = set() if package == "function_setup" else {"function_setup"}
        assert others <= allowed, f"{name} imports {sorted(others - allowed)}"


def test_only_app_assembles_the_token_service() -> None:
    # GIVEN the module that wires the token service's parts together
    importers = sorted(name for name, deps in graph().items() if "token_proxy.wiring" in deps)

    # THEN only the handler uses it (the benchmark and the tests do too, outside src/)
    assert importers == ["token_proxy.app"]


def test_each_package_lists_its_modules_top_to_bottom() -> None:
    # GIVEN every module of each package (its __init__ counts only in a subpackage)
    for package, order in TOP_TO_BOTTOM.items():
        found = {
            name.removeprefix(package + ".") for name in modules() if name.startswith(package + ".")
        }

        # THEN each has exactly one place in the package's order
        assert sorted(order) == sorted(found), f"{package}: place each module in TOP_TO_BOTTOM"
        assert len(set(order)) == len(order)


@pytest.mark.parametrize("package", sorted(TOP_TO_BOTTOM))
def test_data_flows_down_each_package(package: str) -> None:
    # GIVEN the package's modules, top to bottom
    rank = {f"{package}.{name}": index for index, name in enumerate(TOP_TO_BOTTOM[package])}

    # WHEN each module's imports of the package's own modules are read
    upward = [
        f"{name} imports {target}"
        for name, deps in sorted(graph().items())
        if name in rank
        for target in sorted(deps)
        if target in rank and rank[target] <= rank[name]
    ]

    # THEN every import points down the order: nothing below imports what lies above it
    assert upward == []


def _matches(name: str, forbidden: set[str]) -> bool:
    """Whether ``name`` is one of ``forbidden`` or a module inside one of them."""
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        # the flow: no items, no sealing, no encodings, no adapters, no wiring above it
        (
            "token_proxy.service",
            {
                "token_proxy.seal",
                "token_proxy.token_record",
                "token_proxy.store",
                "token_proxy.l1",
                "token_proxy.cognito_client",
                "token_proxy.upstream_retries",
                "token_proxy.origin_verify",
                "token_proxy.request",
                "token_proxy.wiring",
                "json",
                "base64",
                "binascii",
                "boto3",
                "botocore",
                "requests",
            },
        ),
        # parsing knows nothing of the cache; each of its parts only what lies below it
        ("token_proxy.request", {"token_proxy.service", "token_proxy.token_cache"}),
        ("token_proxy.client_auth", {"token_proxy.request", "token_proxy.service"}),
        ("token_proxy.http_event", {"token_proxy.request", "token_proxy.client_auth"}),
        # beside each other below the service: the cache, the lease, the budget, Cognito
        ("token_proxy.token_cache", {"token_proxy.single_flight", "token_proxy.store"}),
        ("token_proxy.single_flight", {"token_proxy.store", "token_proxy.budget"}),
        ("token_proxy.budget", {"token_proxy.single_flight", "token_proxy.store"}),
        ("token_proxy.cognito_client", {"token_proxy.token_cache", "token_proxy.store"}),
        # the adapters of the table: boto3 only, nothing of tokens or of the flow
        ("token_proxy.store", {"token_proxy.token_cache", "token_proxy.token_record"}),
        ("token_proxy.freshness", {"token_proxy.token_cache", "token_proxy.store"}),
    ],
)
def test_siblings_stay_apart(module: str, forbidden: set[str]) -> None:
    # GIVEN what the module imports (standard library included; a package: all its modules)
    imported = {
        name
        for found, path in modules().items()
        if found == module or found.startswith(module + ".")
        for name in imported_names(path)
    }

    # THEN none of what lies above it, or beside it on the other side of a port
    crossing = sorted(name for name in imported if _matches(name, forbidden))
    assert crossing == [], f"{module} imports {crossing}"


def test_no_module_outgrows_one_job() -> None:
    # GIVEN every Python module of src/ and verify/
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for root in SIZED
        for path in root.rglob("*.py")
    }
    assert len(sizes) > 40

    # THEN none is longer than the bound
    too_long = {name: lines for name, lines in sorted(sizes.items()) if lines > MAX_MODULE_LINES}
    assert too_long == {}, f"split these along their seams: {too_long}"


def test_the_service_never_names_a_stored_item() -> None:
    # GIVEN the service's source
    tree = ast.parse(modules()["token_proxy.service"].read_text(encoding="utf-8"))

    # THEN it never refers to the store's item type or to sealing
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not names & {"StoredItem", "seal", "unseal", "DynamoTokenStore", "TokenL1"}


def test_the_ports_are_for_the_type_checker_only() -> None:
    # GIVEN a fresh interpreter importing the handler, as a cold start does
    script = "import sys, token_proxy.app; print(sorted(m for m in sys.modules if 'ports' in m))"

    # WHEN it has imported it
    loaded = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", script],
        cwd=SRC,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    # THEN the protocols were never loaded (every module imports them under TYPE_CHECKING)
    assert loaded == "[]"
