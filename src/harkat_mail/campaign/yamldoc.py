"""The campaign YAML as plain Python, with the line of every key for one-line errors."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

LANG_RE = re.compile(r"^[a-z]{2}$")


class Doc:
    """A YAML document as plain Python plus the line of every key path, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
        if node is None:
            raise ConfigError(f"{path}: the file is empty; a campaign needs at least 'name'")
        self.data = self._build(node, ())

    def _build(self, node: yaml.Node, at: tuple[str, ...]) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(yaml.SafeLoader("").construct_object(key_node))
                where = (*at, key)
                if key in out:
                    raise ConfigError(
                        f"{self.path}:{key_node.start_mark.line + 1}: "
                        f"{'.'.join(where)}: the key appears twice"
                    )
                self.lines[where] = key_node.start_mark.line + 1
                out[key] = self._build(value_node, where)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*at, str(i))) for i, item in enumerate(node.value)]
        return yaml.SafeLoader("").construct_object(node)

    def error(self, at: tuple[str, ...], message: str) -> ConfigError:
        line = self.lines.get(at) or self.lines.get(at[:-1]) or 1
        key = ".".join(at) if at else "(top)"
        return ConfigError(f"{self.path}:{line}: {key}: {message}")


def _kind(value: object) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


class Reader:
    """Typed accessors over a ``Doc`` that raise ``ConfigError`` with the key's line."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.base = doc.path.parent

    def map(self, value: object, at: tuple[str, ...], allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.doc.error(at, f"expected a map, got {_kind(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    known = ", ".join(sorted(allowed))
                    raise self.doc.error((*at, key), f"unknown key (known keys: {known})")
        return value

    def text(self, value: object, at: tuple[str, ...]) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.doc.error(at, f"expected a non-empty string, got {_kind(value)}")
        if any(c in value for c in "\r\n\0"):
            raise self.doc.error(at, "must be one line (no line breaks)")
        return value.strip()

    def integer(self, value: object, at: tuple[str, ...], low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.doc.error(at, f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    def number(self, value: object, at: tuple[str, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.doc.error(at, f"expected a positive number, got {value!r}")
        return float(value)

    def path(self, value: object, at: tuple[str, ...]) -> Path:
        return (self.base / self.text(value, at)).resolve()

    def paths(self, value: object, at: tuple[str, ...]) -> tuple[Path, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.doc.error(at, "expected at least one path")
        if isinstance(value, list):
            return tuple(self.path(v, (*at, str(i))) for i, v in enumerate(items))
        return (self.path(value, at),)

    def address(self, value: object, at: tuple[str, ...]) -> str:
        text = self.text(value, at)
        _, addr = parseaddr(text)
        if "@" not in addr or not addr.split("@")[-1]:
            raise self.doc.error(at, f"not an email address: {text!r}")
        return text

    def per_language(self, value: object, at: tuple[str, ...], kind: str) -> dict[str, str]:
        if isinstance(value, dict):
            out: dict[str, str] = {}
            for lang, item in value.items():
                if not LANG_RE.match(lang):
                    raise self.doc.error((*at, lang), "expected a two-letter language code")
                check = self.address if kind == "address" else self.text
                out[lang] = check(item, (*at, lang))
            if not out:
                raise self.doc.error(at, "the map is empty")
            return out
        check = self.address if kind == "address" else self.text
        return {"*": check(value, at)}
