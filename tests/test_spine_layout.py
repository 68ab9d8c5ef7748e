"""The layout as documented: the README's package list and `make` targets against the tree and the
Makefile, each stage notebook against its package's face, and every import against the faces."""
from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "slmlib"
README = (ROOT / "README.md").read_text(encoding="utf-8")
STAGES = {"01_detect": "detect", "02_evaluate": "evaluate", "03_aggregate": "aggregate", "04_publish": "publish"}


def code_block_after(heading: str, text: str = README) -> str:
    """The first fenced block after `heading` (a line of the README)."""
    rest = text[text.index(heading):]
    return re.search(r"```\n(.*?)```", rest, re.S).group(1)


def packages() -> dict[str, set[str]]:
    """Package folder (relative, with a trailing slash) -> its modules, from the tree."""
    out = {}
    for init in sorted(PKG.rglob("__init__.py")):
        folder = init.parent
        out[f"{folder.relative_to(ROOT).as_posix()}/"] = {
            p.stem for p in folder.glob("*.py") if not p.stem.startswith("__")}
    return out


def documented_packages(text: str = README) -> dict[str, set[str]]:
    """The README's `slmlib/...` lines: package folder -> the modules it names before the colon."""
    out = {}
    for line in code_block_after("`slmlib/` is a small spine", text).splitlines():
        folder, modules = re.match(r"(slmlib/\S*)\s+([^:]*):", line).groups()
        out[folder] = set(modules.split())
    return out


def test_readme_lists_every_package_and_module_of_the_tree():
    assert documented_packages() == packages()


def test_the_layout_check_fails_on_a_missing_module():
    """The check above compares, not just parses: a README naming a module that is gone fails it."""
    stale = README.replace("slmlib/detect/            card estimate", "slmlib/detect/            card gone estimate")
    assert stale != README and documented_packages(stale) != packages()


def make_help(makefile: str) -> list[str]:
    """What `make help` prints, computed as its awk rule does (targets with a `## comment`)."""
    rows = re.findall(r"^([a-z][a-z -]*):.*## (.*)$", makefile, re.M)
    return [f"  make {target:<13} {comment}" for target, comment in rows]


def test_readme_shows_the_make_targets_make_prints():
    documented = code_block_after("`make` alone lists the targets:").rstrip("\n").splitlines()
    assert documented == make_help((ROOT / "Makefile").read_text(encoding="utf-8"))


def notebook_code(stem: str) -> ast.Module:
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            lines += [ln for ln in "".join(cell["source"]).splitlines() if not ln.startswith("%")]
    return ast.parse("\n".join(lines))


@pytest.mark.parametrize("stem, stage", STAGES.items())
def test_a_notebook_imports_only_its_stage_and_calls_only_its_face(stem, stage):
    tree = notebook_code(stem)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, [a.name for a in n.names]) for n in imports] == [("slmlib", [stage])]
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == stage}
    face = importlib.import_module(f"slmlib.{stage}")
    assert used <= set(face.__all__), f"{stem} calls {used - set(face.__all__)}, not in slmlib.{stage}.__all__"
    assert used, stem


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, str]]:
    """(module imported from, name) for every `from X import name` in a slmlib module, X absolute."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("slmlib")):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            out += [(source, a.name) for a in node.names]
    return out


def is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def owner(dotted: str) -> str:
    """The package whose face guards `dotted`: `slmlib.<package>` (a root module has none)."""
    parts = dotted.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PKG / parts[1] / "__init__.py").is_file() else ""


def test_packages_reach_each_other_only_through_their_faces():
    breaches = []
    for path in sorted(PKG.rglob("*.py")):
        here = module_name(path)
        for source, name in imports_of(path):
            target = f"{source}.{name}" if is_module(f"{source}.{name}") else source
            guard = owner(target)
            if not guard or here == guard or here.startswith(guard + "."):
                continue  # the spine, or inside the package itself
            face = importlib.import_module(guard)
            through_face = target == guard or (source == guard and name in getattr(face, "__all__", ()))
            if not through_face:
                breaches.append(f"{here} imports {source}.{name} (not in {guard}.__all__)")
    assert breaches == []


def test_every_face_name_is_used():
    """A face lists only what its notebook, another part, a plugin or a test calls: no dead names."""
    users = {module_name(path): path.read_text(encoding="utf-8") for path in sorted(PKG.rglob("*.py"))}
    users |= {str(path): path.read_text(encoding="utf-8")  # plugin authors and tests use the plugin API
              for path in [*(ROOT / "docs").glob("*.md"), *(ROOT / "tests").glob("*.py")] if path.name != Path(__file__).name}
    notebooks = {stage: ast.dump(notebook_code(stem)) for stem, stage in STAGES.items()}
    unused = []
    for init in sorted(PKG.glob("*/__init__.py")):
        pkg = module_name(init)
        face = importlib.import_module(pkg)
        for name in getattr(face, "__all__", ()):
            outside = [m for m, text in users.items() if not m.startswith(pkg) and re.search(rf"\b{name}\b", text)]
            in_notebook = f"attr='{name}'" in notebooks.get(pkg.split(".")[1], "")
            if not outside and not in_notebook:
                unused.append(f"{pkg}.{name}")
    assert unused == []
