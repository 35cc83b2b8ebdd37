"""The campaign YAML as plain Python, with the line of every key for one-line errors.

The file is untrusted input (a careless edit or a hostile copy), so reading and parsing are
bounded: a regular file of at most ``MAX_BYTES``, at most ``MAX_DEPTH`` levels and ``MAX_NODES``
values, no alias to a list or map (the "billion laughs" bomb is built from those, and a
campaign never needs one), and only the plain YAML types.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .guidance import explain, missing, plain_syntax
from .headers import mailbox

LANG_RE = re.compile(r"^[a-z]{2}$")
MAX_BYTES = 1_000_000
MAX_DEPTH = 50
MAX_NODES = 100_000
_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_COLLECTION_TAGS = {f"{_STD}map", f"{_STD}seq"}
# YAML 1.1 resolves a plain "=" or "<<" to these; as values they can only mean the text.
_TEXT_TAGS = {f"{_STD}value", f"{_STD}merge"}
_KINDS = {f"{_STD}timestamp": "date", f"{_STD}int": "whole number", f"{_STD}float": "number"}


def _where(path: Path, line: int, at: tuple[str, ...], message: str) -> ConfigError:
    """The one-line error: file, line, key path (shortened when deep), message."""
    shown = at if len(at) <= 4 else (*at[:4], "…")
    return ConfigError(f"{path}:{line}: {'.'.join(shown) if shown else '(top)'}: {message}")


def read_document(source: Path) -> str:
    """The campaign file's text; refuses what is not a regular UTF-8 file of sane size."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below then refuses it.
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such campaign file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the campaign file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kinds = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a pipe", stat.S_IFCHR: "a device"}
            kind = kinds.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise ConfigError(f"{source}: {kind}, not a campaign file; give the path of a .yaml")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{source}: {info.st_size:,} bytes; a campaign file is at most 1 MB")
        data = os.read(fd, MAX_BYTES + 1)  # never more, even if the file grows meanwhile
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the campaign file ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{source}: more than 1 MB; a campaign file is at most 1 MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text; save the file as UTF-8") from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting, too many values and collection aliases.

    The checks sit in ``compose_node`` because PyYAML's composer recurses (5,000 ``[`` is a
    RecursionError) and aliases share nodes, so only here is an alias still visible as one.
    """

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path
        self.at: list[str] = []  # the key path being composed, for messages
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        label = None
        if isinstance(index, yaml.ScalarNode):  # a mapping value: index is its key
            label = str(index.value)
        elif isinstance(index, int):  # a list item
            label = str(index)
        at = (*self.at, label) if label is not None else tuple(self.at)
        event = self.peek_event()  # type: ignore[no-untyped-call]  # the stub lacks types
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None and not isinstance(target, yaml.ScalarNode):
                raise _where(
                    self.path,
                    line,
                    at,
                    f"*{event.anchor} repeats a list or map; aliases to lists and maps are "
                    "refused (a few lines of them can expand to gigabytes): write it out",
                )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _where(self.path, line, at, f"more than {MAX_NODES:,} values in one file")
        if self.depth >= MAX_DEPTH:
            raise _where(self.path, line, at, f"nested more than {MAX_DEPTH} levels deep")
        self.depth += 1
        if label is not None:
            self.at.append(label)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if label is not None:
                self.at.pop()


def _short(tag: str) -> str:
    return "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag


class Doc:
    """A YAML document as plain Python plus the line of every key path, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        try:
            self._loader = _BoundedLoader(text, path)  # its reader rejects control characters
            try:
                node = self._loader.get_single_node()
            finally:
                self._loader.dispose()
        except yaml.YAMLError as exc:
            raise ConfigError(_syntax_error(path, exc, text)) from None
        if node is None:
            raise ConfigError(f"{path}: the file is empty; a campaign needs at least 'name'")
        self.data = self._build(node, ())

    def _fail(self, node: yaml.Node, at: tuple[str, ...], message: str) -> ConfigError:
        return _where(self.path, node.start_mark.line + 1, at, message)

    def _scalar(self, node: yaml.Node, at: tuple[str, ...]) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self._fail(node, at, "a key must be plain text, not a list or map")
        tag = node.tag
        if tag in _TEXT_TAGS and node.style is None:
            return str(node.value)
        if tag not in _SCALAR_TAGS:
            raise self._fail(
                node,
                at,
                f"the tag {_short(tag)} is not allowed; use plain text, numbers, "
                "true/false, lists and maps",
            )
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            # e.g. a date such as 2018-13-45, or an integer of more than 4,300 digits
            reason = _problem(exc) if isinstance(exc, yaml.YAMLError) else str(exc)
            kind = _KINDS.get(tag, _short(tag))
            raise self._fail(node, at, f"not a valid {kind} ({reason.split(';')[0]})") from None

    def _build(self, node: yaml.Node, at: tuple[str, ...]) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, at)
        if node.tag not in _COLLECTION_TAGS:
            raise self._fail(
                node, at, f"the tag {_short(node.tag)} is not allowed; use plain lists and maps"
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == f"{_STD}merge":
                    raise self._fail(
                        key_node, at, "'<<' merge keys are not supported; write the keys out"
                    )
                key = str(self._scalar(key_node, at))
                where = (*at, key)
                if key in out:
                    raise self._fail(key_node, where, "the key appears twice")
                self.lines[where] = key_node.start_mark.line + 1
                out[key] = self._build(value_node, where)
            return out
        return [self._build(item, (*at, str(i))) for i, item in enumerate(node.value)]

    def error(self, at: tuple[str, ...], message: str) -> ConfigError:
        line = self.lines.get(at) or self.lines.get(at[:-1]) or 1
        key = ".".join(at) if at else "(top)"
        return ConfigError(f"{self.path}:{line}: {key}: {explain(at, message)}")

    def missing(self, at: tuple[str, ...]) -> ConfigError:
        """A required key is absent: what it is for and what to write. It has no line of its
        own; a nested key gets its map's line."""
        where = f":{self.lines[at[:-1]]}" if len(at) > 1 and at[:-1] in self.lines else ""
        return ConfigError(f"{self.path}{where}: {'.'.join(at)}: {missing(at)}")


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or str(exc).splitlines()[0]


def _syntax_error(path: Path, exc: yaml.YAMLError, text: str) -> str:
    """``x.yaml line 7: <plain words> (the line as written)``: where and what to fix."""
    mark = getattr(exc, "problem_mark", None)
    position = getattr(exc, "position", None)  # a ReaderError (e.g. a control character)
    if mark is not None:
        number = mark.line + 1
    elif isinstance(position, int):
        number = text.count("\n", 0, position) + 1
    else:
        return f"{path}: not valid YAML: {plain_syntax(_problem(exc))}"
    lines = text.splitlines()
    shown = lines[number - 1] if 0 < number <= len(lines) else ""
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    quoted = f" (line {number} reads {shown!r})" if shown.strip() else ""
    return f"{path} line {number}: not valid YAML: {plain_syntax(_problem(exc))}{quoted}"


def _kind(value: object) -> str:
    if value is None:  # a key written with nothing after the colon
        return "nothing"
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

    def address(self, value: object, at: tuple[str, ...], bare: bool = False) -> str:
        """One mailbox, normalised to ``Name <addr>`` (``addr`` alone when ``bare``)."""
        try:
            return mailbox(self.text(value, at), bare=bare)
        except ValueError as exc:
            raise self.doc.error(at, str(exc)) from None

    def choice(self, value: object, at: tuple[str, ...], options: tuple[str, ...]) -> str:
        """One of ``options``; the message lists them and says what was found instead."""
        if value in options:
            return str(value)
        wanted = ", ".join(options[:-1]) + f" or {options[-1]}"
        got = _kind(value) if value is None or isinstance(value, dict | list) else repr(value)
        raise self.doc.error(at, f"expected {wanted}, got {got}")

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
