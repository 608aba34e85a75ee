"""Options several commands share (a params model's fields as flags among them), apart from `main`
so that command modules can import them."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import click
from pydantic import BaseModel

from modelyard.contract import kebab
from modelyard.core.settings import ENV_TRACKING_URI

tracking_option = click.option(
    "--tracking-uri",
    envvar=ENV_TRACKING_URI,
    help="MLflow tracking server or store [default: embedded SQLite under .modelyard/]",
)


def _click_type(annotation: Any) -> tuple[Any, str | None]:
    """(click type, metavar) for a pydantic field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1
    base = args[0] if optional else annotation
    choices = [str(a) for a in typing.get_args(base)] if typing.get_origin(base) is Literal else []
    metavar = f"[{'|'.join(choices)}]" if choices else getattr(base, "__name__", "TEXT").upper()
    if optional:  # Argo passes "" for an unset optional value: take text, the params model converts it
        return click.STRING, metavar
    return (click.Choice(choices) if choices else base), None


def options_from(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """click options for every field of a params model: --kebab-name, type, default and help."""

    def decorate(command: Callable) -> Callable:
        for name, info in reversed(list(model.model_fields.items())):
            if name in skip:
                continue
            kind, metavar = _click_type(info.annotation)
            required = info.is_required()
            default = None if required else info.default
            command = click.option(
                f"--{kebab(name)}",
                name,
                type=kind,
                metavar=metavar,
                required=required,
                default=default,
                show_default=default not in (None, ""),
                help=info.description,
            )(command)
        return command

    return decorate
