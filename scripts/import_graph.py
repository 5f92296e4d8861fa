#!/usr/bin/env python3
"""The import graph between the modules of src/app and src/cli, and any circle in it.

Usage: python3 scripts/import_graph.py [--edges]

An edge A -> B means a file of module A names module B in a `use` or a path
(`super::x`, `self::x`, `crate::app::x`, `crate::cli::x`). Declaring a child module
(`mod x;`) is not an import. Exits with 1 when a circle is found.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
TREES = ["app", "cli"]


def module_of(path: Path) -> tuple[str, ...]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return tuple(parts)


def modules() -> dict[tuple[str, ...], Path]:
    found = {}
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.rs")):
            found[module_of(path)] = path
    return found


def without_comments_and_tests(text: str) -> str:
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}", re.S)


def targets(module: tuple[str, ...], text: str, known: dict) -> set[tuple[str, ...]]:
    paths = []
    for root, prefix, inner in GROUP.findall(text):
        for item in re.split(r"[,\s]+", re.sub(r"\{[^}]*\}", "", inner)):
            if item:
                paths.append((root, prefix + "::" + item.split("::")[0]))
    paths += PATH.findall(text)
    # `use child::...` names a child module relative to this one.
    for first in re.findall(r"\buse\s+([a-z_][a-z0-9_]*)::", text):
        if module + (first,) in known:
            paths.append(("self", "::" + first))
    out = set()
    for root, rest in paths:
        names = [n for n in rest.split("::") if n]
        if root == "crate":
            base = []
        elif root == "super":
            base = list(module[:-1])
            while names and names[0] == "super":
                base, names = base[:-1], names[1:]
        else:
            base = list(module)
        full = tuple(base + names)
        # The longest prefix that is a module of ours.
        while full and full not in known:
            full = full[:-1]
        if full and full != module and full[0] in TREES:
            out.add(full)
    return out


def circles(graph: dict) -> list[list]:
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    known = modules()
    graph = {m: targets(m, without_comments_and_tests(p.read_text()), known) for m, p in known.items()}
    name = "::".join
    if "--edges" in sys.argv:
        for m in sorted(graph):
            for t in sorted(graph[m]):
                print(f"{name(m)} -> {name(t)}")
    found = circles(graph)
    edges = sum(len(t) for t in graph.values())
    print(f"{len(graph)} modules, {edges} import edges in src/{{{','.join(TREES)}}}; circles: {len(found)}")
    for circle in found:
        print("  circle: " + " -> ".join(name(m) for m in circle))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
