"""Which merge fields a subject or a greeting prints bare, so empty ones can be warned about.

A member with no first name otherwise gets "Dear ," and a subject starting ", join ...".
A field written with a fallback (``first_name | default('member')``, ``first_name or
'member'``, or tested by ``if``) is guarded and not reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes

_GREETING = re.compile(
    r"^\s*(?:<[^>]+>\s*)*(?:dear|hello|hi|hey|greetings|bonjour|bonsoir|salut|allo|allô|"
    r"cher|chère|chers|chères)\b",
    re.IGNORECASE,
)
_OUTPUT = re.compile(r"{{.*?}}", re.S)
_PARSER = jinja2.Environment()  # parsing only: nothing is rendered with it


def default_filter(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default``, also for an empty or blank text: a mail-merge cell is never
    undefined, only empty, so ``{{ first_name | default('member') }}`` does what it says."""
    if isinstance(value, jinja2.Undefined) or (boolean and not value):
        return default_value
    if isinstance(value, str) and not value.strip():
        return default_value
    return value


def _guarded(node: nodes.Node, into: set[str]) -> None:
    """Names read under a fallback: a default filter, the left of ``or``, an ``if`` test."""
    for child in node.iter_child_nodes():
        _guarded(child, into)
    parts: list[nodes.Node] = []
    if isinstance(node, nodes.Filter) and node.name in ("default", "d") and node.node:
        parts.append(node.node)
    elif isinstance(node, nodes.Or):
        parts.append(node.left)
    elif isinstance(node, nodes.CondExpr | nodes.If):
        parts.append(node.test)
    for part in parts:
        into.update(n.name for n in part.find_all(nodes.Name) if n.ctx == "load")
        if isinstance(part, nodes.Name):
            into.add(part.name)


def bare_names(source: str) -> set[str]:
    """The names a template prints with no fallback (empty set if it does not parse)."""
    try:
        ast = _PARSER.parse(source)
    except jinja2.TemplateSyntaxError:
        return set()  # the renderer reports syntax errors with their line
    used = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "load"}
    guarded: set[str] = set()
    _guarded(ast, guarded)
    return used - guarded


def greeting_names(template: Path) -> set[str]:
    """Names the greeting line (``Dear {{ first_name }},``, ``Bonjour ...``) prints bare."""
    try:
        source = template.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    for line in source.splitlines():
        if "{{" in line and _GREETING.match(line):
            return bare_names(" ".join(_OUTPUT.findall(line)))
    return set()
