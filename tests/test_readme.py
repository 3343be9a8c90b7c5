"""Every Python code block of the README runs as written, in order, in one namespace (in a
temporary directory: the blocks write files).

The blocks are split into independent chains (a block joins the chain of every earlier block that
defines a name it uses; imports are run first in every chain and link nothing), one test each, so
that the test workers share them."""

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


BLOCK = re.compile(r"(<!-- test: slow[^\n]*-->\n)?```python\n(.*?)```", flags=re.S)


def python_blocks() -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(README.read_text())]


def slow_blocks() -> set[int]:
    return {i for i, m in enumerate(BLOCK.finditer(README.read_text())) if m.group(1)}


def _names(tree: ast.AST) -> tuple[set[str], set[str], list[ast.stmt]]:
    """(names the block defines, names it uses but does not define, its import statements)."""
    stored, loaded, imports = set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else stored).add(node.id)
        elif isinstance(node, ast.arg):
            stored.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stored.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)  # run first in every chain: defines nothing to link
    imported = {(a.asname or a.name).split(".")[0] for i in imports for a in i.names}
    return stored, loaded - stored - imported, imports


def chains() -> tuple[str, dict[int, list[int]]]:
    """(the README's import statements as one source, chain id -> its block numbers in order)."""
    blocks = [ast.parse(b) for b in python_blocks()]
    parent = list(range(len(blocks)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    definer: dict[str, int] = {}
    imports: list[ast.stmt] = []
    for i, tree in enumerate(blocks):
        defined, free, imps = _names(tree)
        imports += imps
        for name in free & definer.keys():
            parent[root(definer[name])] = root(i)
        definer.update(dict.fromkeys(defined, i))
    groups: dict[int, list[int]] = {}
    for i in range(len(blocks)):
        groups.setdefault(root(i), []).append(i)
    prelude = "\n".join(ast.unparse(s) for s in imports)
    return prelude, {g[0]: g for g in groups.values()}


PRELUDE, CHAINS = chains()


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 6
    assert len(CHAINS) >= 2  # the split found independent chains


SLOW = slow_blocks()


def _run_chain(blocks_to_run, tmp_path):
    blocks = python_blocks()
    namespace: dict = {"__name__": "readme"}
    exec(compile(PRELUDE, "README.md imports", "exec"), namespace)
    for i in blocks_to_run:
        try:
            exec(compile(blocks[i], f"README.md python block {i}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README python block {i} failed: {type(err).__name__}: {err}\n{blocks[i]}")
        for written in re.findall(r"\"([\w.]+\.vtu)\"", blocks[i]):
            assert (tmp_path / written).exists(), written


def _fast_part(chain: list[int]) -> list[int]:
    return chain[: next((k for k, i in enumerate(chain) if i in SLOW), len(chain))]


@pytest.mark.parametrize(
    "first", [f for f in sorted(CHAINS) if _fast_part(CHAINS[f])], ids=lambda i: f"chain{i}"
)
def test_readme_blocks_run(first, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_chain(_fast_part(CHAINS[first]), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "first", [f for f in sorted(CHAINS) if set(CHAINS[f]) & SLOW], ids=lambda i: f"chain{i}"
)
def test_readme_slow_blocks_run(first, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_chain(CHAINS[first], tmp_path)


def test_slow_markers_are_found():
    assert SLOW, "the README marks its compile-bound blocks <!-- test: slow ... -->"
    assert len(SLOW) < len(python_blocks()) / 2
