"""Sphinx configuration for the syncws documentation.

Build with ``sphinx-build -W --keep-going -n -b html docs docs/_build/html``.
The build is offline: there is no intersphinx, so references to the standard
library and to wsproto are listed in ``nitpick_ignore_regex`` below.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docutils.nodes import Element, Node
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

# Import syncws from this checkout even when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

import syncws
from syncws._options import OPTIONS

project = "syncws"
author = "the syncws contributors"
copyright = "2026, the syncws contributors"
release = syncws.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- autodoc -------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
python_use_unqualified_type_names = True

# -- nitpicky mode -------------------------------------------------------------------------
# Every cross-reference must resolve, except those to projects whose inventories are not
# available offline (the standard library and wsproto).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(ssl|socket|threading|collections\.abc|typing|types|contextlib|os)\..*"),
    (r"py:mod", r"socketserver|ssl|socket|threading|queue|logging"),
    (r"py:.*", r"(Sequence|Mapping|Iterable|Iterator|Callable|Generator|Self|Any)"),
    (r"py:.*", r"(SSLContext|SSLSocket|TracebackType|AbstractContextManager)"),
    (r"py:.*", r"wsproto(\..*)?"),
    (r"py:.*", r"(concurrent\.futures\..*|Executor|random(\..*)?|selectors)"),
    (r"py:.*", r"WSConnection"),  # wsproto's engine, imported for type checking only
    (r"py:.*", r"(TimeoutError|OSError|ValueError|TypeError|RuntimeError|Exception)"),
    (r"py:.*", r"(str|bytes|bytearray|memoryview|int|float|bool|object|tuple|list|dict)"),
]

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"syncws {release}"


# -- references to re-exported names ---------------------------------------------------------
# The public classes live in submodules (syncws.types.CloseReason, ...) but are documented
# under the package name (syncws.CloseReason). Type hints in signatures name the defining
# module, so map those targets to the documented, re-exported name.
_SUBMODULE_TARGET = re.compile(r"syncws\.[A-Za-z_][A-Za-z0-9_]*\.([A-Za-z_][A-Za-z0-9_]*)")


def _resolve_reexported(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element
) -> Element | None:
    if node.get("refdomain") != "py":
        return None
    match = _SUBMODULE_TARGET.fullmatch(node.get("reftarget", ""))
    if match is None or not hasattr(syncws, match.group(1)):
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env,
        node.get("refdoc", ""),
        app.builder,
        node["reftype"],
        f"syncws.{match.group(1)}",
        node,
        contnode,
    )


# -- option tables -----------------------------------------------------------------------------
# ``.. syncws-options:: connection client`` renders the options of those scopes from their one
# definition (syncws/_options.py): names, defaults and meanings cannot drift from the code.


class _OptionsTable(Directive):
    required_arguments = 1
    optional_arguments = 2

    def run(self) -> list[Node]:
        scopes = set(self.arguments)
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 24 12 64",
            "",
            "   * - option",
            "     - default",
            "     - meaning",
        ]
        for option in OPTIONS.values():
            if option.scope in scopes:
                lines += [
                    f"   * - ``{option.name}``",
                    f"     - {option.shown}",
                    f"     - {option.meaning}",
                ]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="syncws._options"), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, bool]:
    app.add_directive("syncws-options", _OptionsTable)
    app.connect("missing-reference", _resolve_reexported)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
