"""The layout's rules, checked on the source (docs/architecture.md): seams between modules are public,
imports go one way (services never import tasks; only the web layer imports the web layer)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {
    "core",
    "accounts",
    "annotation",
    "agreement",
    "sampling",
    "preference_data",
    "rewardmodel",
    "quizzes",
    "leaderboard",
    "frontend",
    "config",
    "tests",
}
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


# Page views read through selectors and write through services, as the API views do.
PAGE_VIEWS = sorted((ROOT / "frontend").glob("views*.py"))
QUERYSET_METHODS = {
    "filter",
    "exclude",
    "annotate",
    "aggregate",
    "order_by",
    "select_related",
    "prefetch_related",
    "values_list",
    "distinct",
    "raw",
    "extra",
}


def model_names(tree: ast.AST) -> set[str]:
    """Names imported from a models module (`from annotation.models import Batch`)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "models"
        for alias in node.names
    }


def orm_queries(tree: ast.AST) -> list[tuple[int, str]]:
    """`Model.objects`, a queryset built with .filter() and the like, and get_object_or_404(Model, ...)."""
    models, found = model_names(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "objects":
            found.append((node.lineno, ".objects"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in QUERYSET_METHODS:
                found.append((node.lineno, f".{node.func.attr}()"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"get_object_or_404", "get_list_or_404"}
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in models
        ):
            found.append((node.lineno, f"{node.func.id}({node.args[0].id}, ...)"))
    return sorted(found)


def test_page_views_hold_no_orm_queries():
    offences = [
        f"frontend/{path.name}:{line}: {what}"
        for path in PAGE_VIEWS
        for line, what in orm_queries(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offences == [], "read through a selector of the app that owns the data:\n" + "\n".join(offences)


def is_request_method(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "method"
        and isinstance(node.value, ast.Name)
        and node.value.id == "request"
    )


def only_on_post(test: ast.expr) -> bool:
    """`request.method == "POST"`, alone or and-ed with more conditions."""
    tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    return any(
        isinstance(t, ast.Compare)
        and is_request_method(t.left)
        and isinstance(t.ops[0], ast.Eq)
        and isinstance(t.comparators[0], ast.Constant)
        and t.comparators[0].value == "POST"
        for t in tests
    )


def ends_in_return(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return)


def get_statements(body: list[ast.stmt]):
    """The statements a GET request may run: a branch on `request.method` contributes its GET side,
    and what follows a GET side that returns is for POST only."""
    for statement in body:
        if isinstance(statement, ast.If) and any(is_request_method(n) for n in ast.walk(statement.test)):
            get_side = statement.orelse if only_on_post(statement.test) else statement.body
            yield from get_statements(get_side)
            if get_side is statement.body and ends_in_return(get_side):
                return
        else:
            yield statement


def get_service_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of `services.<name>` that a GET request to a page view reaches."""
    found = []
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef) or not function.args.args:
            continue
        if function.args.args[0].arg != "request" or any(
            isinstance(d, ast.Name) and d.id == "require_POST" for d in function.decorator_list
        ):
            continue
        for statement in get_statements(function.body):
            for node in ast.walk(statement):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "services"
                ):
                    found.append((node.lineno, f"{function.name}: services.{node.func.attr}()"))
    return found


def test_get_pages_write_nothing():
    """A GET of a page calls no service (services write); background fixes belong to the reconciler."""
    offences = [
        f"frontend/{path.name}:{line}: {what}"
        for path in PAGE_VIEWS
        for line, what in get_service_calls(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offences == [], "a GET must only read:\n" + "\n".join(offences)
