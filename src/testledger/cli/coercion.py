"""Command-line values converted without pydantic, when they are plain.

Typer 0.29 converts every parameter's value through a pydantic ``TypeAdapter``, built when the
parameter is first processed: even a ``--db`` left out pays for importing pydantic and building
its adapters, about a quarter of a command's start on a small ledger. Nearly every value a
command gets is plain (a string, a decimal integer, a path, a flag, nothing at all), and its
conversion is the obvious one. :func:`install_plain_coercion` gives each parameter a converter
that does exactly that, and hands anything else (a malformed number, a value out of range, an
unreadable path, any type or option not listed here) to Typer's own converter, built then: the
result, and every error message, stay Typer's own. ``tests/cli/test_startup.py`` holds both
converters to the same answers.

The converter goes where Typer keeps its own (``_runtime_param``, filled on first use); a Typer
without it (older ones convert through Click, without pydantic) is left as it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["install_plain_coercion"]

#: What a converter returns for a value it leaves to Typer's.
_TYPERS = object()

#: Decimal integers as Python and pydantic both read them; the length keeps clear of pydantic's
#: limit on digits.
_INTEGER = re.compile(r"-?[1-9][0-9]{0,17}|0")
_DECIMAL = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,18})?")


def _text(value: Any) -> Any:
    """A str that pydantic takes as it is: one that UTF-8 can encode (argv's undecodable bytes
    arrive as lone surrogates, which pydantic refuses)."""
    if type(value) is not str:
        return _TYPERS
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _TYPERS
    return value


def _in_range(number: float, info: Any) -> bool:
    return (info.min is None or number >= info.min) and (info.max is None or number <= info.max)


def _integer(value: Any, info: Any) -> Any:
    if type(value) is str and _INTEGER.fullmatch(value):
        value = int(value)
    if type(value) is not int or info.clamp or not _in_range(value, info):
        return _TYPERS
    return value


def _float(value: Any, info: Any) -> Any:
    if type(value) is int or (type(value) is str and _DECIMAL.fullmatch(value)):
        value = float(value)
    if type(value) is not float or info.clamp or not _in_range(value, info):
        return _TYPERS
    return value


def _plain_path_options(info: Any) -> bool:
    """Whether the path takes Typer's defaults: need not exist, file or folder, not resolved,
    no ``-`` for stdin, not checked for writing."""
    return (
        not info.exists
        and info.file_okay
        and info.dir_okay
        and not info.writable
        and not info.resolve_path
        and not info.allow_dash
        and info.path_type is None
    )


def _path(value: Any, info: Any) -> Any:
    if type(value) is str:
        if not value or "\x00" in value or _text(value) is _TYPERS:
            return _TYPERS
        value = Path(value)
    if not isinstance(value, Path) or not _plain_path_options(info):
        return _TYPERS
    try:
        os.stat(value)
    except OSError:
        return value  # need not exist
    # An existing path Typer checks for reading: its refusal is worded by Typer.
    if info.readable and not os.access(value, os.R_OK):
        return _TYPERS
    return value


def _one(annotation: Any, value: Any, info: Any) -> Any:
    if annotation is bool:  # a flag's own value (Typer converts only the others)
        return value if type(value) is bool else _TYPERS
    if annotation is str:
        return _text(value)
    if annotation is int:
        return _integer(value, info)
    if annotation is float:
        return _float(value, info)
    if annotation is Path:
        return _path(value, info)
    return _TYPERS


class _PlainCoercion:
    """A parameter's converter: plain values here, the rest by Typer's own converter."""

    def __init__(self, annotation: Any, item: Any, info: Any) -> None:
        self.annotation = annotation
        self.item = item  # list[X]: X; otherwise None
        self.info = info

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        converted = self._convert(value, param)
        if converted is _TYPERS:
            param._runtime_param = None  # Typer builds its own, and keeps it
            return param.get_runtime_param().coerce(value, param=param, ctx=ctx)
        return converted

    def _convert(self, value: Any, param: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        if self.item is None:
            return _TYPERS if multiple else _one(self.annotation, value, self.info)
        if not multiple or type(value) not in (list, tuple):
            return _TYPERS
        items = [_one(self.item, item, self.info) for item in value]
        return _TYPERS if any(item is _TYPERS for item in items) else items


def _coercion_for(param: Any) -> _PlainCoercion | None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or not hasattr(param, "_runtime_param"):
        return None  # a Typer that converts otherwise
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or descriptor.file_annotation is not None:
        return None
    annotation = descriptor.annotation
    if annotation in (bool, str, int, float, Path):
        return _PlainCoercion(annotation, None, info)
    if getattr(annotation, "__origin__", None) is list:
        (item,) = annotation.__args__
        if item in (str, Path):
            return _PlainCoercion(annotation, item, info)
    return None


def _install(param: Any) -> None:
    if getattr(param, "_runtime_param", True) is None:
        coercion = _coercion_for(param)
        if coercion is not None:
            param._runtime_param = coercion


def install_plain_coercion(command: Any) -> None:
    """Give the parameters of ``command`` (and of its subcommands) the plain converter, the
    ``--help`` option included (which Click makes on first use, for the context's names)."""
    for sub in getattr(command, "commands", {}).values():
        install_plain_coercion(sub)
    for param in getattr(command, "params", []):
        _install(param)
    make_help_option = getattr(command, "get_help_option", None)
    if make_help_option is None or getattr(make_help_option, "plain_coercion", False):
        return

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            _install(option)
        return option

    get_help_option.plain_coercion = True  # type: ignore[attr-defined]
    command.get_help_option = get_help_option
