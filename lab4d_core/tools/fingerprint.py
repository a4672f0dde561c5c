"""Code fingerprints of ``lab4d <command>``: a hash of exactly the lab4d_core code a subcommand runs.

Snakemake reruns a job when its params change, and its code trigger sees only the rule's own text, not the
package the rule calls. So each rule passes ``fingerprint(<the subcommand it runs>)`` as a param: editing the
renderer reruns the renders, not the training, and editing a comment or docstring reruns nothing.

What a command runs, found statically from the syntax trees:

- in ``cli.py``, the command's handler, its argument function (flag defaults shape the outputs) and the
  top-level definitions and imports of cli.py that these use by name, transitively. Not the whole of cli.py:
  every command shares it, so an edit to one command would rerun every stage. ``main`` and ``build_parser``
  are left out: they only dispatch to the handler.
- every lab4d_core module that those import, then every module those import, anywhere in the module (the
  handlers import lazily, inside functions; absolute and relative imports, and ``from package import name``
  where name is a submodule), plus the packages above each module, whose ``__init__`` runs on import (so
  ``__version__`` still reruns everything).

Each piece counts by its syntax tree without bare string statements (docstrings, and the field docs under
dataclass fields, which feed only help texts and the schema): comments, formatting and documentation change
no output. Not seen: third-party packages, and a module reached only through ``importlib`` or by name in a
subprocess (lab4d_core has none but ``torchrun -m lab4d_core.cli train``, which re-enters the same command).

Snakemake computes this on every parse, and parsing all of lab4d_core costs up to a second inside it, so each
module's digest and imports are kept in ``~/.cache/lab4d_core/fingerprint.json`` (``$XDG_CACHE_HOME``), keyed by
the module's source: after an edit only the edited modules are parsed again.

``python -m lab4d_core.tools.fingerprint <command>`` prints what a command depends on, piece by piece.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from lab4d_core.utils.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT.name  # not from __name__, which is __main__ under python -m
CLI = f"{PACKAGE}.cli"
CACHE_ENTRIES = 1000
"""Modules kept in the disk cache, the most recently used: a few checkouts' worth."""


@functools.cache
def fingerprint(command: str) -> str:
    """A short hash of everything ``lab4d <command>`` runs in lab4d_core; it changes only when that code does."""
    pieces = "\n".join(f"{name} {digest}" for name, digest in sorted(dependencies(command).items()))
    return hashlib.sha256(pieces.encode()).hexdigest()[:16]


@functools.cache
def dependencies(command: str) -> dict[str, str]:
    """{piece: hash of its code} for ``lab4d <command>``: ``lab4d_core.cli:<name>`` for each definition of
    cli.py that the command uses, and the module name for each lab4d_core module it imports."""
    definitions, imported = _cli_names()
    selected = [_handler(command)]
    entries = {PACKAGE}
    for node in selected:  # grows while it is walked: what the selected definitions use
        entries |= _modules(_import_names(CLI, node))
        for name in _names(node):
            if name in definitions and definitions[name] not in selected:
                selected.append(definitions[name])
            entries |= imported.get(name, set())
    pieces = {f"{CLI}:{_defined(node)[0]}": _digest(node) for node in selected}
    pieces |= {module: _summary(module)[0] for module in _closure(entries)}
    _save_cache()
    return pieces


def commands() -> list[str]:
    """The subcommands of ``lab4d``, as cli.py registers them."""
    return sorted(_handlers())


@functools.cache
def _source_file(module: str) -> Path | None:
    """The file of lab4d_core module or package ``module``, or None when it names no module (e.g. a function)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    path = ROOT.parent.joinpath(*module.split("."))
    return next((file for file in (path / "__init__.py", path.with_suffix(".py")) if file.is_file()), None)


def _modules(names: set[str]) -> set[str]:
    return {name for name in names if _source_file(name) is not None}


@functools.cache
def _cli_tree() -> ast.Module:
    path = _source_file(CLI)
    return ast.parse(path.read_text(), str(path))


@functools.cache
def _handlers() -> dict[str, ast.FunctionDef]:
    """{command: the function of cli.py registered with ``@command("<command>", ...)``}."""
    return {
        decorator.args[0].value: node
        for node in _cli_tree().body
        if isinstance(node, ast.FunctionDef)
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id == "command"
    }


def _handler(command: str) -> ast.FunctionDef:
    if command not in _handlers():
        raise ValueError(f"lab4d has no subcommand {command!r}; it has {', '.join(commands())}")
    return _handlers()[command]


@functools.cache
def _cli_names() -> tuple[dict[str, ast.stmt], dict[str, set[str]]]:
    """cli.py's top level: {name: the statement defining it}, {name bound by an import: lab4d_core modules}."""
    definitions: dict[str, ast.stmt] = {}
    imported: dict[str, set[str]] = {}
    for node in _cli_tree().body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                one = (
                    ast.Import([alias])
                    if isinstance(node, ast.Import)
                    else ast.ImportFrom(node.module, [alias], node.level)
                )
                imported[alias.asname or alias.name.partition(".")[0]] = _modules(_import_names(CLI, one))
        else:
            definitions.update(dict.fromkeys(_defined(node), node))
    return definitions, imported


def _defined(node: ast.stmt) -> list[str]:
    """Names a top-level statement binds (an `if __name__ == "__main__":` binds none)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return [
        name.id for target in targets if target is not None for name in ast.walk(target) if isinstance(name, ast.Name)
    ]


def _names(node: ast.AST) -> set[str]:
    return {name.id for name in ast.walk(node) if isinstance(name, ast.Name)}


def _closure(entries: set[str]) -> set[str]:
    """``entries`` and every lab4d_core module they import, transitively, with the packages above each."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            parts = module.split(".")
            todo += [".".join(parts[:end]) for end in range(1, len(parts))]
            todo += _modules(set(_summary(module)[1]))
    return seen


def _import_names(module: str, node: ast.AST) -> set[str]:
    """What the import statements anywhere in ``node``, a part of ``module``, import, as absolute dotted names:
    modules, and for ``from x import y`` also ``x.y``, a module only when y is a submodule."""
    found = set()
    for statement in ast.walk(node):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            base = _absolute(module, statement)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in statement.names)
    return found


def _absolute(module: str, statement: ast.ImportFrom) -> str:
    """The module a (possibly relative) ``from ... import`` statement inside ``module`` imports from."""
    if not statement.level:
        return statement.module
    package = module.split(".")
    if _source_file(module).name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - statement.level + 1]
    return ".".join(package + ([statement.module] if statement.module else []))


@functools.cache
def _summary(module: str) -> tuple[str, list[str]]:
    """(digest of the module's code, the names it imports, as _import_names), from the disk cache while the
    module's source is unchanged."""
    path = _source_file(module)
    source = path.read_bytes()
    key = hashlib.sha256(
        f"{module}\0{path.name}\0".encode() + source
    ).hexdigest()  # relative imports differ in a package
    cache = _cache()
    if key in cache["modules"]:
        cache["modules"][key] = cache["modules"].pop(key)  # most recently used last: trimming keeps it
    else:
        tree = ast.parse(source, str(path))
        cache["modules"][key] = [_digest(tree), sorted(_import_names(module, tree))]
        cache["changed"] = True
    digest, imports = cache["modules"][key]
    return digest, imports


def _cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / PACKAGE / "fingerprint.json"


@functools.cache
def _cache() -> dict:
    """The disk cache, or an empty one when it is missing, unreadable, or written by another version of this
    code or of Python (either may digest the same source differently)."""
    version = hashlib.sha256(Path(__file__).read_bytes() + sys.version.encode()).hexdigest()
    try:
        cache = json.loads(_cache_path().read_text())
        if cache.get("version") == version and isinstance(cache.get("modules"), dict):
            return {**cache, "changed": False}
    except (OSError, ValueError):
        pass
    return {"version": version, "modules": {}, "changed": False}


def _save_cache() -> None:
    cache = _cache()
    if not cache["changed"]:
        return
    modules = dict(list(cache["modules"].items())[-CACHE_ENTRIES:])
    try:
        atomic_write_text(_cache_path(), json.dumps({"version": cache["version"], "modules": modules}))
    except OSError:  # a read-only home only costs the parsing next time
        return
    cache["changed"] = False


def _digest(node: ast.AST) -> str:
    return hashlib.sha256(_canonical(node).encode()).hexdigest()[:16]


def _canonical(value: object) -> str:
    """A syntax tree as text that changes with what the code does: no comments or formatting (the tree has
    none), no bare strings, and no empty fields, which newer Pythons add to old nodes (FunctionDef.type_params)."""
    if isinstance(value, list):
        return "[" + ",".join(_canonical(item) for item in value if not _bare_string(item)) + "]"
    if isinstance(value, ast.AST):
        fields = ((name, getattr(value, name, None)) for name in value._fields)
        shown = ",".join(f"{name}={_canonical(field)}" for name, field in fields if field is not None and field != [])
        return f"{type(value).__name__}({shown})"
    return repr(value)


def _bare_string(node: object) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PACKAGE}.tools.fingerprint",
        description="What `lab4d <command>` depends on: each piece and its hash.",
    )
    parser.add_argument("command", choices=commands(), help="a lab4d subcommand")
    command = parser.parse_args(argv).command
    for name, digest in sorted(dependencies(command).items()):
        print(f"{digest}  {name}")
    print(f"{fingerprint(command)}  lab4d {command}")


if __name__ == "__main__":
    main()
