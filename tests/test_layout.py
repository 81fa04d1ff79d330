"""The layout's rules, checked on the source (docs/architecture.md): seams between modules are public,
imports go one way (services never import tasks; only the web layer imports the web layer)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"core", "accounts", "annotation", "sampling", "rewardmodel", "quizzes", "frontend", "config", "tests"}
SKIPPED = {".venv", "var", "media", "migrations", "__pycache__", "node_modules"}


def project_modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if SKIPPED.intersection(parts):
            continue
        yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_private(name: str) -> bool:
    # Django's Model._meta is public API despite its underscore.
    return name.startswith("_") and not name.startswith("__") and name != "_meta"


def is_project_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def first_party(node: ast.ImportFrom) -> bool:
    return node.level > 0 or (node.module or "").split(".")[0] in FIRST_PARTY


def private_imports(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """`from x import _name`, and `module._name` on a project module imported by name."""
    found, modules = [], set()
    package = path.with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and first_party(node):
            base = (node.module or "").split(".") if node.module else []
            if node.level:
                base = [*package[: len(package) - node.level + 1], *base]
            for alias in node.names:
                if is_private(alias.name):
                    found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
                elif is_project_module(".".join([*base, alias.name])):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FIRST_PARTY:
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def imported_modules(path: Path, tree: ast.AST) -> set[str]:
    package = ".".join(path.with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_another_modules_private_names():
    offences = [
        f"{path}:{line}: {what}" for path, tree in project_modules() for line, what in private_imports(path, tree)
    ]
    assert offences == [], "give these a public name in the module that owns them:\n" + "\n".join(offences)


def test_no_app_imports_the_web_layer():
    offences = [
        str(path)
        for path, tree in project_modules()
        if path.parts[0] not in {"frontend", "config", "tests", "benchmarks"}
        and any(name == "frontend" or name.startswith("frontend.") for name in imported_modules(path, tree))
    ]
    assert offences == []


def test_services_and_selectors_never_import_tasks():
    """Services send work through core.jobs by task name; tasks import services, not the reverse."""
    offences = [
        str(path)
        for path, tree in project_modules()
        if ("services" in path.parts or path.stem in {"services", "selectors"})
        and any(name.endswith(".tasks") or ".tasks." in name for name in imported_modules(path, tree))
    ]
    assert offences == []
