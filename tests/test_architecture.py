"""The package's shape (docs/architecture.md): stages import only earlier
stages, no import circle, short modules and functions, at most 10 modules at
the top, no sys.path manipulation, no benchmark figures in library code.

Every import counts, including the ones inside functions."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "leadmix_jax"

# A module may import modules of its own rank or lower. The top modules every
# stage uses rank 0; config_check, workflows and launching sit above all.
RANKS = {
    "errors": 0,
    "mesh": 0,
    "metrics": 0,
    "host_memory": 0,
    "checkpointing": 0,
    "data": 1,
    "synthetic": 2,
    "input": 3,
    "model": 4,
    "train": 5,
    "evaluate": 6,
    "deploy": 7,
    "config_check": 8,
    "workflows": 9,
    "launching": 10,
}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def library_files() -> list[pathlib.Path]:
    return sorted(PKG.rglob("*.py"))


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path) -> set[str]:
    """``leadmix_jax...`` modules ``path`` imports (``from a import b`` gives
    ``a.b`` when that is a module, else ``a``), anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("leadmix_jax"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("leadmix_jax"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                is_module = (ROOT / full.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT / full.replace(".", "/") / "__init__.py"
                ).exists()
                names.add(full if is_module else node.module)
    return names


def rank(module: str) -> int | None:
    parts = module.split(".")
    return RANKS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_rank():
    unranked = [
        module_name(p)
        for p in library_files()
        if module_name(p) != "leadmix_jax" and rank(module_name(p)) is None
    ]
    assert not unranked, f"add these to RANKS and docs/architecture.md: {unranked}"


def test_no_import_from_a_later_stage():
    bad = []
    for path in library_files():
        me = module_name(path)
        for other in imported_modules(path):
            if other != "leadmix_jax" and rank(me) is not None and rank(other) > rank(me):
                bad.append(f"{me} -> {other}")
    assert not bad, "imports that climb up a stage:\n" + "\n".join(bad)


def test_no_import_circle():
    graph = {module_name(p): {m for m in imported_modules(p) if m != "leadmix_jax"} for p in library_files()}
    # packages' __init__ files import nothing; a module's package is not an edge
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in graph:
        if not state.get(node):
            visit(node, [node])


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from leadmix_jax.train import trainer\n    import leadmix_jax.errors\n")
    assert imported_modules(f) == {"leadmix_jax.train.trainer", "leadmix_jax.errors"}


def test_at_most_ten_modules_at_the_top():
    top = [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 10, top


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_are_short(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path} has {len(source.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path}: {long}"


def test_no_sys_path_manipulation_in_the_library():
    bad = [
        str(p)
        for p in library_files()
        if re.search(r"sys\.path\.(insert|append)|sys\.path\s*=", p.read_text())
    ]
    assert not bad, bad


# Measurement figures: a speed ratio ("1.09x faster"), a rate, a time per step,
# bytes per sample or a GFLOP rate. They belong in bench/results/ and docs/.
FIGURE = re.compile(
    r"\d+(\.\d+)?x\s+(faster|slower)|\d[\d,.]*\s*(samples/s|GFLOP/s|ms per|MB per|page faults)"
    r"|\d+(\.\d+)?\s*->\s*\d+(\.\d+)?\s*(MB|ms)",
    re.IGNORECASE,
)


def test_no_benchmark_figures_in_library_code():
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in library_files()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if FIGURE.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_the_figure_pattern_catches_figures():
    for text in ("inference 1.09x faster", "72-113 samples/s", "52.9 -> 49.8 MB per sample", "~100 GFLOP/s"):
        assert FIGURE.search(text), text
    assert not FIGURE.search("the last 10 s of a record")


def test_readme_code_map_names_every_stage():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    packages = [p.name for p in PKG.iterdir() if (p / "__init__.py").exists()]
    for name in packages:
        assert f"`leadmix_jax/{name}/`" in readme, name
    for path in PKG.glob("*.py"):
        if path.name != "__init__.py":
            assert f"`{path.stem}`" in readme, path.stem


def _defined_names(path: pathlib.Path) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _resolves(dotted: str) -> bool:
    """Whether ``leadmix_jax.a.b.name`` names a module of the package, or a
    name defined at the top of one (checked from the source, nothing imported)."""
    parts = dotted.split(".")[1:]
    for i in range(len(parts), -1, -1):
        base = PKG.joinpath(*parts[:i])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            return i == len(parts) or parts[i] in _defined_names(module) or (base / parts[i]).exists()
    return False


def test_docs_name_modules_and_files_that_exist():
    docs = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("datasets/*/README.md")]
    stale = []
    for doc in docs:
        text = doc.read_text()
        stale += [
            (doc.name, m) for m in set(re.findall(r"\bleadmix_jax(?:\.\w+)+", text)) if not _resolves(m)
        ]
        stale += [
            (doc.name, m)
            for m in set(re.findall(r"\bleadmix_jax/[\w/]+\.py", text))
            if not (ROOT / m).exists()
        ]
    assert not stale, stale


def test_the_docs_check_catches_a_stale_name():
    assert _resolves("leadmix_jax.data.preprocessing.preprocess_record")
    assert _resolves("leadmix_jax.data.build")
    assert not _resolves("leadmix_jax.preprocessing.preprocess_record")  # the layout before the stages
    assert not _resolves("leadmix_jax.data.preprocessing.no_such_function")
