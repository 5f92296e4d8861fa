#!/usr/bin/env python3
"""The longest functions in the Rust sources: length in lines, file:line, name.

Approximate: finds `fn name` items and matches braces from the first `{` after them, skipping
comments, string and char literals (raw strings included) but not macros' token tricks.
Nested functions and closures count in their parent too; declarations without a body (`;`
first) are skipped.

    scripts/longest_fns.py [folder=src] [count=15]
"""
import pathlib
import re
import sys

FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def code_only(text):
    """`text` with comments and literals blanked out (same length, newlines kept)."""
    out, i, n = list(text), 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])):
            blank(i, i + m.end())
            i += m.end()
        else:
            i += 1
    return "".join(out)


def functions(path):
    code = code_only(path.read_text(errors="replace"))
    for m in FN.finditer(code):
        j = m.end()
        while j < len(code) and code[j] not in "{;":
            j += 1
        if j >= len(code) or code[j] == ";":
            continue
        depth, k = 0, j
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, k) + 1
        yield last - first + 1, first, m.group(1)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    found = [(length, f"{path}:{line}", name) for path in sorted(root.rglob("*.rs")) for length, line, name in functions(path)]
    for length, where, name in sorted(found, key=lambda f: -f[0])[:count]:
        print(f"{length:5d}  {where}  {name}")


if __name__ == "__main__":
    main()
