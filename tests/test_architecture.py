"""The library's modules keep to their own insides.

No module of syncws reads or writes another's underscore names: it imports no
underscore name from another module and uses no underscore attribute of an object
other than ``self`` or ``cls``. A connection's insides are reached by syncws's own
tools (broadcast, notify, the server, syncws.testing) through the documented methods
of its internal interface only (see ``WebSocketConnection`` in ``syncws/connection.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import syncws

PACKAGE = Path(syncws.__file__).parent

#: Underscore names of the standard library that syncws may use.
ALLOWED = {("sys", "_getframe")}
#: Underscore names syncws may import: the types of zlib's objects, for annotations.
ALLOWED_IMPORTS = {("zlib", "_Compress"), ("zlib", "_Decompress")}


def _module_private_uses(path: Path) -> list[str]:
    """Return the underscore names of other modules or objects that ``path`` uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # Names bound by classes defined in this module: their private attributes are the
    # module's own, and the module may use them on any instance (``other._code``).
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                    own.add(inner.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Tuple):
                    own.update(
                        elt.value
                        for elt in item.value.elts
                        if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
                    )
                elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    own.add(item.name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (node.module, alias.name) in ALLOWED_IMPORTS:
                    continue
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Name) and (base.id, name) in ALLOWED:
                continue
            if name in own:
                continue
            found.append(f"{path.name}:{node.lineno}: uses {ast.unparse(node)}")
    return found


def test_no_module_uses_another_modules_underscore_names() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += _module_private_uses(path)
    assert not found, "\n".join(found)


def test_the_check_sees_a_use_of_another_modules_insides(tmp_path: Path) -> None:
    module = tmp_path / "tool.py"
    module.write_text(
        "from .request import _receive\n"
        "def send(connection):\n"
        "    connection._transport.progress(0)\n"
        "    return connection.abort('x')\n"
    )
    assert _module_private_uses(module) == [
        "tool.py:1: imports _receive",
        "tool.py:3: uses connection._transport",
    ]


def test_a_module_may_use_its_own_classes_insides(tmp_path: Path) -> None:
    module = tmp_path / "own.py"
    module.write_text(
        "class Request:\n"
        "    __slots__ = ('_answered',)\n"
        "    def __init__(self):\n"
        "        self._answered = False\n"
        "def hook(request):\n"
        "    return request._answered\n"
    )
    assert _module_private_uses(module) == []


#: The longest a module of the library may grow: small enough to read at once (about
#: 500 lines; the public face of the connection, with its documentation, is the longest).
MAX_MODULE_LINES = 550


def test_every_module_is_small_enough_to_read_at_once() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
