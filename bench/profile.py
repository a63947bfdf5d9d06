"""Reading a pyinstrument session of the service (bench/profiled_service.py): where its CPU goes.

Sample weights are CPU seconds of the service's main thread (the event loop). SQLAlchemy runs
its ORM work in greenlets, whose stacks start at the greenlet rather than under the request that
awaits them, so they appear as separate roots; self time is attributed correctly either way.
Self time left on asyncio's `Runner.run` is uvloop's own C work (polling, sockets, timers).

Four tables come out: self time by package (built-ins and most of the standard library count
for the code that called them), self time by function, who calls the hottest functions, and the
project's own functions by inclusive time (which step of a request pays; greenlets excluded).
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pyinstrument.frame import Frame
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

TOP = 30
CALLED = 12
MIN_SHARE = 0.002

# Packages grouped as a reader thinks of them.
_GROUPS = {
    "fastapi": "FastAPI + Starlette (routing, dependencies, middleware plumbing)",
    "starlette": "FastAPI + Starlette (routing, dependencies, middleware plumbing)",
    "anyio": "anyio (httpcore's socket backend; thread-pool hops for sync dependencies)",
    "sqlalchemy": "SQLAlchemy (ORM, Core, pool)",
    "greenlet": "SQLAlchemy (ORM, Core, pool)",
    "asyncpg": "asyncpg",
    "httpx": "httpx + httpcore (gateway client)",
    "httpcore": "httpx + httpcore (gateway client)",
    "h11": "httpx + httpcore (gateway client)",
    "uvicorn": "uvicorn + httptools",
    "structlog": "logging (structlog, stdlib logging, JSON)",
    "logging": "logging (structlog, stdlib logging, JSON)",
    "json": "logging (structlog, stdlib logging, JSON)",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "prometheus_client": "prometheus_client (metrics)",
    "asyncio": "asyncio / uvloop event loop",
}
_IMPORTS = "failed imports at request time (importlib path search)"
_OWN = "the service's own code (app/)"
# Standard-library modules that are a cost of their own; the rest (contextlib, enum, typing,
# weakref ...) count for the package that called them.
_STDLIB_OWN = {"asyncio", "logging", "json"}


def where(frame: Frame, root: Path) -> str:
    """`package/module.py:function`, shortened for site-packages, the project and stdlib."""
    path = frame.file_path or "?"
    marker = "site-packages/"
    if marker in path:
        path = path.split(marker, 1)[1]
    elif path.startswith(str(root)):
        path = path[len(str(root)) + 1 :]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return f"{path}:{frame.function}"


def _own_group(name: str) -> str | None:
    """The group a frame belongs to by itself, or None when it counts for its caller."""
    if name.startswith("<frozen importlib"):
        return _IMPORTS
    if name.startswith(("<built-in>", "<thread>", "<frozen", "<string>")):
        return None
    if name.startswith("app/"):
        return _OWN
    if name.startswith("<sqlalchemy"):
        return _GROUPS["sqlalchemy"]
    path = name.split(":", 1)[0]
    package = path.split("/", 1)[0]
    if package == "stdlib":
        module = path.split("/")[1].removesuffix(".py")
        return _GROUPS[module] if module in _STDLIB_OWN else None
    return _GROUPS.get(package, package)


def _module_key(name: str) -> str:
    """What counts as "another place" for the caller table: the module for the project's
    code, the package for libraries."""
    path = name.split(":", 1)[0]
    return path if name.startswith("app/") else path.split("/", 1)[0]


@dataclass
class _Tally:
    total: float
    self_time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    groups: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    inclusive: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    callers: dict[str, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )


def _tally(root_frame: Frame, project_root: Path) -> _Tally:
    """One depth-first pass, carrying what each frame needs to know about its ancestors."""
    tally = _Tally(total=max(root_frame.time, 1e-9))
    names: dict[str, str] = {}
    on_path: Counter[str] = Counter()  # app/ functions on the current path (recursion guard)
    path: list[tuple[str, str | None]] = []  # (name, group) of the ancestors, root first
    stack: list[tuple[Frame, bool]] = [(root_frame, False)]
    while stack:
        frame, leaving = stack.pop()
        if leaving:
            name, _ = path.pop()
            if name.startswith("app/"):
                on_path[name] -= 1
            continue
        name = names.get(frame.identifier) or names.setdefault(
            frame.identifier, where(frame, project_root)
        )
        if not frame.is_synthetic:
            seconds = frame.total_self_time
            tally.self_time[name] += seconds
            group = _own_group(name) or next(
                (group for _, group in reversed(path) if group), "(event loop, C)"
            )
            tally.groups[group] += seconds
            tally.callers[name][_caller(name, path)] += seconds
            if name.startswith("app/") and not on_path[name]:
                tally.inclusive[name] += frame.time
        if name.startswith("app/"):
            on_path[name] += 1
        path.append((name, _own_group(name)))
        stack.append((frame, True))
        stack.extend((child, False) for child in frame.children)
    return tally


def _caller(name: str, path: list[tuple[str, str | None]]) -> str:
    """The nearest ancestor in another package (another module for the project's own code)."""
    own = _module_key(name)
    for above, _ in reversed(path):
        if _module_key(above) != own and not above.startswith(("<frozen", "<built-in>")):
            return above
    return "(root)"


def render(path: Path, project_root: Path) -> tuple[str, str]:
    """(pyinstrument's text tree, a markdown summary of hot spots) for one saved session."""
    session = Session.load(path)
    text = ConsoleRenderer(unicode=True, color=False, show_all=False, short_mode=False).render(
        session
    )
    root_frame = session.root_frame(trim_stem=False)
    if root_frame is None:
        return text, "(no samples)\n"
    tally = _tally(root_frame, project_root)
    total = tally.total

    def share(seconds: float) -> str:
        return f"{seconds / total:.1%}"

    lines = [
        f"Sampled {total:.1f} s of the main thread's CPU time (CPU clock, 1 ms interval).",
        "",
        "Self time by package:",
        "",
        "| % CPU | s | package |",
        "|---:|---:|---|",
    ]
    for group, seconds in sorted(tally.groups.items(), key=lambda kv: -kv[1]):
        if seconds / total >= MIN_SHARE:
            lines.append(f"| {share(seconds)} | {seconds:.2f} | {group} |")
    lines += ["", "Self time by function:", "", "| % CPU | s | function |", "|---:|---:|---|"]
    ranked = sorted(tally.self_time.items(), key=lambda kv: -kv[1])[:TOP]
    for name, seconds in ranked:
        lines.append(f"| {share(seconds)} | {seconds:.2f} | `{name}` |")
    lines += [
        "",
        f"Who calls the top {CALLED} (nearest caller in another package or module):",
        "",
        "| % CPU | function | called from |",
        "|---:|---|---|",
    ]
    for name, _ in ranked[:CALLED]:
        for caller, seconds in sorted(tally.callers[name].items(), key=lambda kv: -kv[1])[:3]:
            lines.append(f"| {share(seconds)} | `{name}` | `{caller}` |")
    lines += [
        "",
        "Project functions, inclusive time (ORM greenlet work excluded):",
        "",
        "| % CPU | s | function |",
        "|---:|---:|---|",
    ]
    for name, seconds in sorted(tally.inclusive.items(), key=lambda kv: -kv[1])[:TOP]:
        lines.append(f"| {share(seconds)} | {seconds:.2f} | `{name}` |")
    return text, "\n".join(lines) + "\n"
