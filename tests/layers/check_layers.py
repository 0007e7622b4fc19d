#!/usr/bin/python3
"""check_layers.py — the layer rule of engine/ and ext/, and no file-level cycle (make layers).

The layer table below is the one place the layers are written down (engine/README.md describes
them). Two checks, each a non-zero exit with one line per finding that names the files:

  includes  Every #include "..." of engine/**.{c,h} and ext/*.{c,h}, resolved like the compiler
            does (the including file's folder, then -Iengine, then -Iext). An engine file may
            include its own layer, a layer below it and the public headers; ext/ may include only
            the public headers and ext/'s own headers; nothing in engine/ includes SQLite.
  symbols   The built objects (<build>/engine/**/*.o and <build>/ext/*.o, one per source file):
            file A depends on file B if A has an undefined symbol that B defines (nm). Every
            strongly connected component of more than one file is a cycle and is reported with
            the symbols that close it; an engine dependency on a higher layer (or on ext/) is
            reported like an upward include.

usage: check_layers.py [--root DIR] [--build DIR] [--nm NM]
  --root   the source tree (default: the current directory)
  --build  the object tree of the sources, <build>/<source>.o (default: ROOT/build/rel)
"""
import argparse
import glob
import os
import re
import subprocess
import sys

# ---- the layer table: (layer, folder under engine/, layers it may use) ---------------------------
# Low to high: base < index, json < storage (the seam registry) < storage/log < store. A layer uses
# only the layers listed for it (and itself); index and json are peers and do not use each other.
LAYERS = [
    ("base", "base", []),
    ("index", "index", ["base"]),
    ("json", "json", ["base"]),
    ("storage", "storage", ["base", "index", "json"]),
    ("storage/log", "storage/log", ["base", "index", "json", "storage"]),
    ("store", "store", ["base", "index", "json", "storage", "storage/log"]),
]
# The public headers: usable by every layer and by ext/; they include only each other.
PUBLIC_HEADERS = ["engine/feox.h", "engine/feox_storage.h"]
# Headers nothing under engine/ may include (the engine knows nothing of SQLite).
SQLITE_HEADERS = ["sqlite3.h", "sqlite3ext.h"]
EXT = "ext"
PUBLIC = "public"

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
# nm -P types: U undefined; w/v weak undefined; upper-case letters other than U define a global.
UNDEFINED_TYPES = {"U", "w", "v"}


def layer_of(path):
    """The layer of a source path relative to the root ("engine/store/x.c" -> "store"), PUBLIC
    for a public header, EXT for ext/, None for a file outside the layer table."""
    if path in PUBLIC_HEADERS:
        return PUBLIC
    parts = path.split("/")
    if parts[0] == "ext" and len(parts) == 2:
        return EXT
    if parts[0] != "engine" or len(parts) < 3:
        return None
    folder = "/".join(parts[1:-1])
    best = None
    for name, layer_folder, _ in LAYERS:  # the deepest folder that holds the file
        if folder == layer_folder or folder.startswith(layer_folder + "/"):
            if best is None or len(layer_folder) > len(best[1]):
                best = (name, layer_folder)
    return best[0] if best else None


def may_use(user, used):
    """True if a file of layer user may depend on a file of layer used."""
    if used == PUBLIC or used == user:
        return True
    if user == PUBLIC:
        return False
    if user == EXT:
        return False  # ext/ reaches the engine only through the public headers
    if used == EXT:
        return False
    return used in dict((n, u) for n, _, u in LAYERS)[user]


def source_files(root, exts):
    """engine/**/* and ext/* files ending in one of exts, relative to root, sorted."""
    found = set()
    for ext in exts:
        found.update(glob.glob(os.path.join(root, "engine", "**", "*" + ext), recursive=True))
        found.update(glob.glob(os.path.join(root, "ext", "*" + ext)))
    return sorted(os.path.relpath(p, root).replace(os.sep, "/") for p in found)


def resolve_include(root, includer, name):
    """The path (relative to root) the compiler finds for #include "name" in includer, or None."""
    for base in (os.path.dirname(includer), "engine", "ext"):
        candidate = os.path.normpath(os.path.join(base, name)).replace(os.sep, "/")
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate
    return None


def check_includes(root, errors):
    files = source_files(root, [".c", ".h"])
    for path in files:
        user = layer_of(path)
        if user is None:
            errors.append("%s: not in the layer table (engine/<layer>/ with a layer of "
                          "tests/layers/check_layers.py, or ext/)" % path)
            continue
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if m is None:
                    continue
                quote, name = m.groups()
                where = "%s:%d" % (path, lineno)
                if user not in (EXT,) and os.path.basename(name) in SQLITE_HEADERS:
                    errors.append("%s: includes %s: the engine knows nothing of SQLite"
                                  % (where, name))
                    continue
                if quote == "<":
                    continue
                target = resolve_include(root, path, name)
                if target is None:
                    errors.append('%s: #include "%s" names no file of the tree' % (where, name))
                    continue
                used = layer_of(target)
                if used is None or not may_use(user, used):
                    errors.append("%s: upward include: %s (%s) includes %s (%s)"
                                  % (where, path, describe(user), target, describe(used)))


def describe(layer):
    if layer == PUBLIC:
        return "public header"
    if layer == EXT:
        return "ext"
    if layer is None:
        return "no layer"
    return "layer " + layer


def read_symbols(root, build, nm, errors):
    """{source: (defined set, undefined set)} for every engine/ and ext/ .c file's object."""
    sources = source_files(root, [".c"])
    objects = {}
    for src in sources:
        obj = os.path.join(build, src[:-2] + ".o")
        if not os.path.isfile(obj):
            errors.append("%s: no object %s (build first: make all)" % (src, obj))
            continue
        objects[obj] = src
    table = {src: (set(), set()) for src in objects.values()}
    if not objects:
        return table
    out = subprocess.run([nm, "-A", "-P"] + sorted(objects), check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    for line in out.splitlines():
        # "<object>: <symbol> <type> [<value> <size>]"
        obj, _, rest = line.partition(": ")
        fields = rest.split()
        if obj not in objects or len(fields) < 2:
            continue
        symbol, kind = fields[0], fields[1]
        defined, undefined = table[objects[obj]]
        if kind in UNDEFINED_TYPES:
            undefined.add(symbol)
        elif kind.isupper():
            defined.add(symbol)
    return table


def dependencies(table):
    """{a: {b: sorted symbols}}: a has an undefined symbol that b defines."""
    definer = {}
    for src, (defined, _) in table.items():
        for symbol in defined:
            definer.setdefault(symbol, []).append(src)
    deps = {src: {} for src in table}
    for src, (_, undefined) in table.items():
        for symbol in undefined:
            for other in definer.get(symbol, []):
                if other != src:
                    deps[src].setdefault(other, []).append(symbol)
    for edges in deps.values():
        for other in edges:
            edges[other].sort()
    return deps


def strongly_connected(deps):
    """Tarjan's algorithm, iterative; the components in a stable order, each sorted."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in sorted(deps):
        if start in index:
            continue
        work = [(start, iter(sorted(deps[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(deps[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def symbol_list(symbols, limit=6):
    shown = ", ".join(symbols[:limit])
    if len(symbols) > limit:
        shown += ", ... (%d more)" % (len(symbols) - limit)
    return shown


def may_call(user, used):
    """True if a file of layer user may use a symbol defined in a file of layer used. ext/ calls
    the engine's public functions, which are defined in any layer (the include check keeps it to
    the public headers)."""
    if user == EXT:
        return True
    return may_use(user, used)


def check_symbols(root, build, nm, errors):
    deps = dependencies(read_symbols(root, build, nm, errors))
    for src in sorted(deps):
        user = layer_of(src)
        for other in sorted(deps[src]):
            used = layer_of(other)
            if user is not None and used is not None and not may_call(user, used):
                errors.append("%s: upward call: %s (%s) uses %s (%s): %s"
                              % (src, src, describe(user), other, describe(used),
                                 symbol_list(deps[src][other])))
    for component in strongly_connected(deps):
        if len(component) < 2:
            continue
        members = set(component)
        lines = ["cycle of %d files: %s" % (len(component), " ".join(component))]
        for src in component:
            for other in sorted(deps[src]):
                if other in members:
                    lines.append("    %s -> %s: %s"
                                 % (src, other, symbol_list(deps[src][other])))
        errors.append("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--build", default=None)
    parser.add_argument("--nm", default=os.environ.get("NM", "nm"))
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    build = os.path.abspath(args.build or os.path.join(root, "build", "rel"))

    include_errors, symbol_errors = [], []
    check_includes(root, include_errors)
    check_symbols(root, build, args.nm, symbol_errors)
    for e in include_errors + symbol_errors:
        print("layers: " + e, file=sys.stderr)
    if include_errors or symbol_errors:
        print("layers: FAILED: %d include finding(s), %d symbol finding(s) (the rule: "
              "engine/README.md)" % (len(include_errors), len(symbol_errors)), file=sys.stderr)
        return 1
    print("layers: ok (includes follow the layers; no cycle between files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
