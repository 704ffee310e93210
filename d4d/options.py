"""Command-line options generated from a config dataclass, so ``--help`` is the field docs.

Every d4d command takes its settings from one config dataclass whose fields each carry a
docstring (the string literal right after the field, as in PEP 257's attribute docstrings).
``add_options`` turns the fields into flags (``frames`` -> ``--frames``; a nested dataclass
field ``densify`` with field ``prune_opa`` -> ``--densify-prune-opa``), with the field's
docstring and default as help; ``overrides_from_args`` collects what the user gave, and
``apply_overrides`` makes the config (validated by the dataclass itself).

Types: ``bool`` (``--x`` / ``--no-x``), ``int``, ``float``, ``str``, ``Literal[...]``
(choices), ``X | None`` (the word ``none`` gives None), ``tuple[X, ...]`` (one or more values)
and fixed-length ``tuple[X, X]``; other types (and names in ``exclude``) are left to config
files.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from functools import cache

#: What a user types for None in an optional numeric option.
NONE_WORD = "none"
_SEP = "__"


class _ExplicitNone:
    """Stands for a None the user typed (argparse's own None means "not given")."""

    def __repr__(self) -> str:
        return NONE_WORD


EXPLICIT_NONE = _ExplicitNone()


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its docstring (whitespace collapsed), for ``cls`` and its dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _unwrap_optional(kind) -> tuple[object, bool]:
    """(inner type, True) for ``X | None``; (kind, False) otherwise."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0], True
    return kind, False


def _scalar_parser(kind, optional: bool, flag: str):
    """A function str -> value for one scalar of ``kind``; None when ``kind`` is not a CLI scalar."""
    if kind not in (int, float, str):
        return None

    def parse(text: str):
        if optional and text.lower() == NONE_WORD:
            return EXPLICIT_NONE
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: expected {kind.__name__}{' or none' if optional else ''}, got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def _flag(path: str) -> str:
    return "--" + path.replace(_SEP, "-").replace("_", "-")


def _help(doc: str, default) -> str:
    def show(value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    shown = "none" if default is None else (" ".join(map(show, default)) if isinstance(default, tuple) else show(default))
    return (doc + f" (default: {shown})").replace("%", "%%")


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_options(parser, cls: type, *, prefix: str = "", exclude: tuple[str, ...] = (), aliases: dict[str, list[str]] | None = None,
                defaults=None, flatten: bool = False) -> None:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (a parser or argument group).

    Args:
        prefix: dest prefix for nested dataclasses (internal; leave empty).
        flatten: name a nested dataclass's flags after its fields alone (``--frames`` rather than
            ``--decision-render-frames``); argparse refuses a name two fields would share.
        exclude: field names (dotted for nested fields, e.g. ``"curation.ssim_pairs"``) to skip.
        aliases: field name (dotted) -> extra flags that set it too (kept for old command lines).
        defaults: an instance whose values are shown as defaults (e.g. a preset); by default
            the dataclass defaults.
    """
    aliases = aliases or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        dotted = prefix.replace(_SEP, ".") + f.name
        if dotted in exclude or f.name.startswith("_"):
            continue
        dest = prefix + f.name
        flag = _flag(f.name if flatten else dest)
        flags = [flag] + list(aliases.get(dotted, []))
        default = getattr(defaults, f.name) if defaults is not None else _default_of(f)
        kind, optional = _unwrap_optional(hints[f.name])
        doc = docs.get(f.name, "")
        if dataclasses.is_dataclass(kind):
            nested_excludes = tuple(e for e in exclude if e.startswith(dotted + "."))
            add_options(parser, kind, prefix=dest + _SEP, exclude=nested_excludes, aliases=aliases,
                        defaults=default if dataclasses.is_dataclass(default) else None, flatten=flatten)
            continue
        common = dict(dest=dest, default=None, help=_help(doc, default))
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is typing.Literal:
            choices = typing.get_args(kind)
            parser.add_argument(*flags, choices=choices, type=type(choices[0]), **common)
        elif typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            item = args[0]
            nargs = "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
            if typing.get_origin(item) is typing.Literal:
                choices = typing.get_args(item)
                parser.add_argument(*flags, nargs=nargs, choices=choices, type=type(choices[0]), **common)
            elif (parse := _scalar_parser(item, False, flag)) is not None and (nargs == "+" or len(set(args)) == 1):
                parser.add_argument(*flags, nargs=nargs, type=parse, metavar=item.__name__.upper(), **common)
        elif (parse := _scalar_parser(kind, optional, flag)) is not None:
            parser.add_argument(*flags, type=parse, metavar=kind.__name__.upper(), **common)


def overrides_from_args(args: argparse.Namespace, cls: type, prefix: str = "") -> dict:
    """The fields of ``cls`` the user set on the command line: name -> value (a dict for a nested dataclass)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        dest = prefix + f.name
        kind, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(kind):
            nested = overrides_from_args(args, kind, dest + _SEP)
            if nested:
                values[f.name] = nested
        elif getattr(args, dest, None) is not None:
            value = getattr(args, dest)
            values[f.name] = None if value is EXPLICIT_NONE else tuple(value) if isinstance(value, list) else value
    return values


def apply_overrides(config, overrides: dict):
    """A copy of the dataclass instance ``config`` with ``overrides`` (nested dicts for nested
    dataclasses) applied; the dataclass validates the result (ValueError names the field)."""
    changes = {}
    for name, value in overrides.items():
        current = getattr(config, name)
        changes[name] = apply_overrides(current, value) if isinstance(value, dict) and dataclasses.is_dataclass(current) else value
    return dataclasses.replace(config, **changes)
