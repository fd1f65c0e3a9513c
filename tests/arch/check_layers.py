#!/usr/bin/env python3
"""The layering of src/ (docs/design.md, "Layers"): run by `make test`.

1. Includes go downward only: a file of layer L includes headers of L or of a layer below it (and
   the public vitq.h), never of a layer above.
2. No circular dependency between files. A module is x.c with its x.h. Module A depends on module B
   when A's files include B's header, and, measured on the built objects (nm), when A's object uses
   a symbol defined in B's object. Neither graph may have a cycle.

usage: check_layers.py [--objects BUILD_DIR/src] [--self-test]
"""
import os
import re
import subprocess
import sys

# Lowest first. A folder not listed is an error: a new folder must be given its place.
LAYERS = ["core", "util", "io", "kernels", "model", "grad", "data", "quant", "train", "calib", "api"]
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def module(path):
    return path.rsplit(".", 1)[0]


def layer_of(path):
    return path.split("/", 1)[0]


def include_graph(src):
    """files -> included files (paths relative to src), and errors for includes that resolve nowhere."""
    files, errors = {}, []
    for d, _, names in os.walk(src):
        for name in names:
            if name.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(d, name), src)
                files[rel] = []
    for rel in files:
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            if inc == "vitq.h":
                continue
            if inc not in files:
                errors.append(f"src/{rel}: includes \"{inc}\", which is not a path under src/")
                continue
            files[rel].append(inc)
    return files, errors


def layer_errors(files):
    errors = []
    for rel, incs in sorted(files.items()):
        own = layer_of(rel)
        if own not in LAYERS:
            errors.append(f"src/{rel}: folder '{own}' has no place in LAYERS (tests/arch/check_layers.py)")
            continue
        for inc in incs:
            other = layer_of(inc)
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(own):
                errors.append(f"src/{rel}: includes \"{inc}\" from layer '{other}', above its own layer '{own}'")
    return errors


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def module_include_graph(files):
    g = {}
    for rel, incs in files.items():
        g.setdefault(module(rel), set())
        for inc in incs:
            if module(inc) != module(rel):
                g[module(rel)].add(module(inc))
    return g


def symbol_graph(objdir, src):
    """Objects of sources that still exist (a build folder keeps objects of removed files)."""
    defined, used = {}, {}
    for d, _, names in os.walk(objdir):
        for name in names:
            if not name.endswith(".o"):
                continue
            path = os.path.join(d, name)
            mod = module(os.path.relpath(path, objdir))
            if not os.path.exists(os.path.join(src, mod + ".c")):
                continue
            out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
            defs, uses = set(), set()
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in "TDBRCVW":
                    defs.add(parts[2])
                elif len(parts) == 2 and parts[0] == "U":
                    uses.add(parts[1])
            defined[mod], used[mod] = defs, uses
    owner = {s: m for m, defs in defined.items() for s in defs}
    return {m: {owner[s] for s in uses if s in owner and owner[s] != m} for m, uses in used.items()}


def describe(kind, comps):
    return [f"{kind} cycle between {', '.join('src/' + c for c in comp)}" for comp in comps]


def self_test():
    """The checks must catch what they are for: an upward include and a two-file cycle."""
    files = {"kernels/a.c": ["quant/b.h"], "quant/b.h": [], "model/x.c": ["model/y.h"], "model/y.c": ["model/x.h"],
             "model/x.h": [], "model/y.h": []}
    assert any("above its own layer" in e for e in layer_errors(files)), "upward include not caught"
    assert cycles(module_include_graph(files)) == [["model/x", "model/y"]], "cycle not caught"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == [], "false cycle"
    assert layer_errors({"newlayer/z.c": []}), "unlisted folder not caught"
    print("check_layers self-test: ok")


def main(argv):
    if "--self-test" in argv:
        self_test()
        return 0
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    src = os.path.join(root, "src")
    files, errors = include_graph(src)
    errors += layer_errors(files)
    errors += describe("include", cycles(module_include_graph(files)))
    if "--objects" in argv:
        objdir = argv[argv.index("--objects") + 1]
        errors += describe("symbol", cycles(symbol_graph(objdir, src)))
    for e in errors:
        print(e)
    print(f"check_layers: {len(files)} files, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
