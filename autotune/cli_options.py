"""What the command line's commands share: option types and converters, and the errors of
the command line as one line each (usage errors from typer, autotune's own errors), so that
``cli.py`` holds only the commands."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from autotune import report
from autotune.errors import AutotuneError
from autotune.results.choose import PREFERENCES


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


Prefer = StrEnum("Prefer", PREFERENCES)  # type: ignore[misc]  # the choices live with the rules that apply them

# Typer's message for a value outside an Enum's choices, behind pydantic's "Value error, ".
_NOT_A_CHOICE = re.compile(r"^(?:Value error, )?(?P<value>'.*') is not one of (?P<choices>'.*')\.?$")


def usage_line(e: typer.TyperException) -> str:
    """A usage error (unknown option, missing argument, a value not among the choices) as
    one line, like every other error: ``--format must be one of table, json, csv, not 'xml'``."""
    param = getattr(e, "param", None)
    message = e.format_message()
    if param is not None and param.opts:
        choice = _NOT_A_CHOICE.match(getattr(e, "message", ""))
        if choice:
            choices = ", ".join(c.strip("'") for c in choice["choices"].split(", "))
            return f"{param.opts[0]} must be one of {choices}, not {choice['value']}"
    ctx = getattr(e, "ctx", None)
    return f"{message.rstrip('.')} (see `{ctx.command_path} --help`)" if ctx is not None else message


class OneLineErrors(TyperGroup):
    """The commands, with a usage error printed as one line and exit 2 instead of typer's
    panel: the same shape as autotune's own errors, which scripts and tests rely on."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            # Not standalone: click's errors come back to us instead of being printed; an
            # Exit (typer.Exit, --help) comes back as its code.
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as e:  # click's exceptions, usage errors among them
            if type(e).__name__ != "NoArgsIsHelpError":  # its help is already shown
                report.error(usage_line(e))
            sys.exit(e.exit_code)
        except typer.Abort:
            report.error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


F = TypeVar("F", bound=Callable[..., Any])

StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", help="Optuna RDB URL [default: $AUTOTUNE_STORAGE or sqlite:///studies/autotune.db]"),
]

AllowOpt = Annotated[
    bool,
    typer.Option("--allow-new-hardware", help="Add trials measured on this machine to a study measured on another"),
]

TrustOpt = Annotated[
    bool,
    typer.Option("--trust-model-code", help="Run the Python that loading the model needs (Lambda layers, the --custom-objects file); not stored"),
]

EnvOpt = Annotated[
    str | None,
    typer.Option("--env", help="Environment fingerprint whose trials to use when a study was measured on several, or 'all'"),
]


def guarded(fn: F) -> F:
    """One place that turns autotune's errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AutotuneError as e:
            if os.environ.get("AUTOTUNE_DEBUG"):
                raise
            report.error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            report.error("interrupted; finished trials are stored (continue with `autotune resume NAME`)")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def as_path(value: str | None) -> str | None:
    return None if value is None else str(Path(value).expanduser().resolve())


def as_data(value: str | None) -> str | None:
    """A data path becomes absolute, and so does a loader's ``file.py``; a ``module:function``
    loader stays as it is (same rule as a study file's, relative to the working directory)."""
    from autotune.inputs.config import resolve_data

    return None if value is None else resolve_data(Path.cwd(), value)


def as_plugin(value: str | None) -> str | None:
    """A name stays a name; a path becomes absolute so a resume from elsewhere finds it."""
    if value is None or not (value.endswith(".py") or "/" in value):
        return value
    return as_path(value)


PLUGIN_NOTE = "a .py file or a name found in ./{0}/ or the built-ins; the file is Python and autotune runs it"
