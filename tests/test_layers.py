"""The package's static import graph against the layer list in docs/architecture.md.

The graph is built with ``ast`` from every module under ``gravbench/``, imports
inside function bodies included. Three rules, all read from the fenced blocks of
docs/architecture.md (the single place to edit when a module is added):

* every module belongs to exactly one layer (```` ```layers ```` block);
* no import goes to a higher layer, unless listed in ```` ```layer-exceptions ````
  with its reason, and the graph has no cycle;
* an import of a gravbench module inside a function body has a stated reason
  (```` ```lazy-imports ```` rules), or is one of the known leftovers listed in
  ``KNOWN_LAZY`` below (this list may only shrink).

Dynamic loading by name (``importlib.import_module`` in the registries and the
lazy package facades) is not an ``import`` statement and is not seen here.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gravbench"
ARCH = ROOT / "docs" / "architecture.md"

#: In-function imports between gravbench modules that have no reason beyond history
#: (dodging cycles that no longer exist, or habit): importer -> the targets it imports
#: inside functions, module names relative to ``gravbench`` (``gravbench`` is the package
#: root). Delete a target when its import moves to module level; never add one.
KNOWN_LAZY = {
}


# --- the graph ---------------------------------------------------------------------
def _rel(name):
    """``gravbench.a.b`` -> ``a.b``; the package root itself is ``gravbench``."""
    return name[len("gravbench."):] if name.startswith("gravbench.") else name


def _modules():
    mods = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(ROOT).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return mods


def _resolve_root_name(name):
    """``from gravbench import Name``: the module that defines ``Name`` (the root re-exports lazily)."""
    import gravbench

    obj = getattr(gravbench, name, None)
    mod = getattr(obj, "__module__", None) if not isinstance(obj, str) else None
    return mod if isinstance(mod, str) and mod.startswith("gravbench") else "gravbench"


def import_edges():
    """All imports between gravbench's modules: ``(importer, target, in_function, line)``."""
    mods = _modules()
    edges = []

    def owner(t):
        while t not in mods and "." in t:
            t = t.rpartition(".")[0]
        return t if t in mods else None

    for name, (path, is_pkg) in mods.items():
        pkg = name if is_pkg else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))

        def visit(node, in_fn):
            for ch in ast.iter_child_nodes(node):
                fn = in_fn or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                targets = []
                if isinstance(ch, ast.Import):
                    targets = [a.name for a in ch.names]
                elif isinstance(ch, ast.ImportFrom):
                    if ch.level:
                        base = pkg.split(".")[: len(pkg.split(".")) - ch.level + 1]
                        base = ".".join(base + ([ch.module] if ch.module else []))
                    else:
                        base = ch.module or ""
                    for a in ch.names:
                        sub = f"{base}.{a.name}"
                        if sub in mods:
                            targets.append(sub)
                        elif base == "gravbench":
                            targets.append(_resolve_root_name(a.name))
                        else:
                            targets.append(base)
                for t in targets:
                    t = owner(t) if t.split(".")[0] == "gravbench" else None
                    if t is not None and t != name:
                        edges.append((_rel(name), _rel(t), fn, ch.lineno))
                visit(ch, fn)

        visit(tree, False)
    return edges


# --- the docs' blocks ----------------------------------------------------------------
def _block(tag):
    m = re.search(rf"```{re.escape(tag)}\n(.*?)```", ARCH.read_text(), flags=re.S)
    assert m, f"docs/architecture.md has no ```{tag} block"
    lines = [ln.split("#", 1)[0].strip() for ln in m.group(1).splitlines()]
    return [ln for ln in lines if ln]


def layers():
    """``[(layer name, [patterns])]``, lowest first."""
    out = []
    for ln in _block("layers"):
        name, _, pats = ln.partition(":")
        assert pats.split(), f"layer line without modules: {ln!r}"
        out.append((name.strip(), pats.split()))
    return out


def _rules(tag):
    out = []
    for ln in _block(tag):
        m = re.fullmatch(r"(\S+)\s*->\s*(\S+)\s*:\s*(.+)", ln)
        assert m, f"```{tag} line must read 'importer -> target : reason', got {ln!r}"
        out.append(m.groups())
    return out


def layer_of(mod, table):
    """Index of the layer whose most specific pattern matches ``mod`` (exact name beats glob, longer beats shorter)."""
    best = None
    for i, (_, pats) in enumerate(table):
        for p in pats:
            if fnmatch.fnmatchcase(mod, p):
                score = (p == mod, len(p))
                if best is None or score > best[0]:
                    best = (score, i)
    return None if best is None else best[1]


def _match(rules, a, b):
    return [r for r in rules if fnmatch.fnmatchcase(a, r[0]) and fnmatch.fnmatchcase(b, r[1])]


# --- tests -----------------------------------------------------------------------------
def test_graph_sees_the_core_imports():
    """The parser finds imports we know are there (both kinds), so a silent empty graph cannot pass."""
    edges = import_edges()
    e = {(a, b, fn) for a, b, fn, _ in edges}
    assert ("forward.operators", "forward._sensitivity", False) in e
    assert ("problem", "geometry", False) in e
    assert any(fn and a.startswith("cli.") for a, _, fn, _ in edges)  # commands import the library lazily
    # ``from gravbench import Name`` goes to the module that defines Name
    assert _resolve_root_name("Problem") == "gravbench.problem"
    assert _resolve_root_name("Grid") == "gravbench.geometry"
    assert _resolve_root_name("__version__") == "gravbench"


def test_every_module_has_a_layer():
    table = layers()
    missing = [_rel(m) for m in _modules() if layer_of(_rel(m), table) is None]
    assert not missing, (f"modules in no layer: {missing}; add each to the right line of the ```layers block "
                         "in docs/architecture.md")


def test_no_import_goes_up_a_layer():
    table = layers()
    allowed = _rules("layer-exceptions")
    bad = []
    for a, b, fn, line in import_edges():
        la, lb = layer_of(a, table), layer_of(b, table)
        if la is None or lb is None or lb <= la or _match(allowed, a, b):
            continue
        kind = "inside a function" if fn else "at module level"
        bad.append(f"{a} (layer {table[la][0]}) imports {b} (layer {table[lb][0]}) {kind}, line {line}")
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = {}
    for a, b, _, _ in import_edges():
        graph.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components, iteratively
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
    assert not comps, f"import cycles (imports inside functions included): {comps}"


def test_in_function_imports_have_a_reason():
    rules = _rules("lazy-imports")
    known = {(a, b) for a, targets in KNOWN_LAZY.items() for b in targets.split()}
    seen, bad = set(), []
    for a, b, fn, line in import_edges():
        if not fn or _match(rules, a, b):
            continue
        seen.add((a, b))
        if (a, b) not in known:
            bad.append(f"{a} -> {b} (line {line})")
    assert not bad, ("imports of gravbench modules inside functions without a stated reason: import them at "
                     "module level, or add a rule with its reason to the ```lazy-imports block of "
                     "docs/architecture.md:\n" + "\n".join(bad))
    stale = sorted(known - seen)
    assert not stale, f"KNOWN_LAZY lists imports that are gone (delete them from tests/test_layers.py): {stale}"


@pytest.mark.parametrize("tag", ["layer-exceptions", "lazy-imports"])
def test_exception_rules_are_used(tag):
    """A rule that matches no import is dead text: remove it."""
    edges = import_edges()
    if tag == "lazy-imports":
        edges = [e for e in edges if e[2]]
    unused = [r for r in _rules(tag) if not any(_match([r], a, b) for a, b, _, _ in edges)]
    assert not unused, f"```{tag} rules that match no import: {unused}"


def test_geometry_imports_nothing_from_forward():
    """The old geometry <-> forward cycle stays gone (also implied by the layers, stated here on its own)."""
    assert not [e for e in import_edges() if e[0] == "geometry"]
    importlib.import_module("gravbench.geometry")


# --- one home per idea -----------------------------------------------------------------
def _code_text(path, keep_strings):
    """The module's source with comments removed (and string literals too unless ``keep_strings``).

    Strings are kept for names that can only be code (a script run in a subprocess is a string);
    they are dropped for formula patterns, which report prose quotes on purpose.
    """
    import io
    import tokenize

    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING and not keep_strings:
            out.append('""')
            continue
        if sys.version_info >= (3, 12) and tok.type in (tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE,
                                                         tokenize.FSTRING_END) and not keep_strings:
            continue
        out.append(tok.string)
    return " ".join(out)


#: idea -> (its one home, relative to gravbench/; a regex of a bypass; whether strings are searched)
HOMES = {
    "load average": ("_load.py", r"getloadavg|/proc/loadavg", True),
    "peak RSS": ("bench/memory.py", r"ru_maxrss|getrusage|VmHWM|clear_refs", True),
    "BLAS thread limiter": ("_linalg/blas.py", r"threadpool_limits|ThreadpoolController|(from|import) threadpoolctl", True),
    # chi2 = mean((r / sigma)^2) recomputed by hand instead of metrics.chi2 / chi2s
    "chi2": ("metrics.py", r"mean \( .*/ (\w+ \. )*\w*sig\w*( \[ \w+ \])? \) \*\* 2", False),
    # the band 1 +- 2 sqrt(2/N) rebuilt instead of metrics.success_band / chi2_threshold / is_success
    "success band": ("metrics.py", r"sqrt \( 2(\.0)? / (n_data|N|n|nd|len \( \w+ \))\b", False),
    # the paper problem's data count (3n stations x 2 components) hard-coded instead of read from the survey
    "data count N = 6n": ("geometry.py", r"\b6 \* [\w\[\]\"'( ]*\bn\b", False),
}


@pytest.mark.parametrize("idea", sorted(HOMES))
def test_one_home_per_idea(idea):
    home, pattern, keep = HOMES[idea]
    assert (PKG / home).is_file(), f"the home of {idea} ({home}) is gone: update HOMES"
    rx = re.compile(pattern)
    bad = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).as_posix()
        if rel == home:
            continue
        for ln in _code_text(p, keep).split("\n"):
            if rx.search(ln):
                bad.append(f"{rel}: {ln.strip()[:120]}")
    assert not bad, f"{idea} has one home, gravbench/{home}; these bypass it:\n" + "\n".join(bad)


def test_one_home_patterns_catch_the_bypasses_they_name():
    """Each pattern finds the hand-written form it forbids (so a pattern that matches nothing cannot pass)."""
    samples = {
        "load average": "la = os.getloadavg()[0]",
        "peak RSS": "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0",
        "BLAS thread limiter": "from threadpoolctl import threadpool_limits",
        "chi2": "chi2 = float(np.mean(((pred - g) / sig) ** 2))",
        "success band": "hi = 1.0 + 2.0 * math.sqrt(2.0 / n_data)",
        "data count N = 6n": "nd = 6 * n",
    }
    import io
    import tokenize

    for idea, code in samples.items():
        toks = " ".join(t.string for t in tokenize.generate_tokens(io.StringIO(code + "\n").readline))
        assert re.search(HOMES[idea][1], toks), (idea, toks)
