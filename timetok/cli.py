"""Entry point: ``timetok``. Bad input becomes one line on stderr and exit code 2."""

from __future__ import annotations

import copy
import logging
import os
import re
import sys

import click

from timetok import __version__
from timetok.core import console
from timetok.core.cli_options import OrderedGroup
from timetok.core.data.cli import data
from timetok.core.errors import TimetokError
from timetok.doppler.cli import doppler
from timetok.forecast.cli import forecast
from timetok.mae.cli import mae
from timetok.setvae.cli import setvae
from timetok.tokenizer.cli import tokenizer


@click.group(cls=OrderedGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="timetok")
@click.option("-v", "--verbose", count=True,
              help="More log output: library messages and warnings (-vv for debug).")
def cli(verbose: int) -> None:
    """Self-supervised tokenizers and encoders for time series and spectrograms: pretrain,
    then finetune."""
    if verbose:
        console.verbose(logging.DEBUG if verbose > 1 else logging.INFO)


cli.add_command(data)
cli.add_command(tokenizer)
cli.add_command(forecast)
cli.add_command(mae)
cli.add_command(setvae)
cli.add_command(doppler)
# The forecaster's names before: its group 'lm', and its commands at the top level (but
# 'forecast', now the group's name); kept hidden so no user's script breaks.
_lm = copy.copy(forecast)
_lm.hidden = True
cli.add_command(_lm, "lm")
for _name in ("pretrain", "finetune", "evaluate", "calibrate"):
    _alias = copy.copy(forecast.commands[_name])
    _alias.hidden = True
    cli.add_command(_alias)


def flag_names(group: click.Group) -> dict[str, str]:
    """Every option's parameter name -> its first long flag, over the whole command tree."""
    names: dict[str, str] = {}
    for command in group.commands.values():
        if isinstance(command, click.Group):
            names |= flag_names(command)
            continue
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            if isinstance(param, click.Option) and longs and param.name:
                names.setdefault(param.name, longs[0])
    return names


def as_flags(message: str) -> str:
    """A library message speaks of parameters (``context_points``, ``quantizer='vq'``,
    ``linear_skip=True``); show the flags (``--context-points``, ``--quantizer vq``,
    ``--linear-skip``)."""
    names = flag_names(cli)

    def swap(match: re.Match) -> str:
        word = match.group(0)
        return names.get(word, word)

    def options(group: click.Group):
        for command in group.commands.values():
            if isinstance(command, click.Group):
                yield from options(command)
            else:
                yield from (p for p in command.params if isinstance(p, click.Option))

    params: dict[str, click.Option] = {}
    for param in options(cli):
        params.setdefault(param.name, param)

    def assign(match: re.Match) -> str:
        """``name=value`` -> ``--flag value``; a boolean flag -> ``--flag`` / ``--no-flag``."""
        name, value = match.group(1), match.group(2).strip("'\"")
        param = params.get(name)
        if param is None or name not in names:
            return match.group(0)
        if value in ("True", "False"):
            if param.is_flag:
                off = param.secondary_opts[0] if param.secondary_opts else match.group(0)
                return names[name] if value == "True" else off
            value = "1" if value == "True" else "0"
        return f"{names[name]} {value}"

    # name=value where the value is quoted, a bool, or a placeholder such as H.
    message = re.sub(r"(?<![\w.'\"/-])([a-z]+(?:_[a-z0-9]+)*)="
                     r"('[^']*'|\"[^\"]*\"|True\b|False\b|[A-Z][A-Z_]*\b)", assign, message)
    message = re.sub(r"(?<![\w.'\"/-])[a-z]+(?:_[a-z0-9]+)+(?![\w'\"/])", swap, message)
    # A one-word parameter where a sentence starts with it: "seed must lie in ...".
    return re.sub(r"(?:^|(?<=; ))[a-z]+(?= (?:must|takes) )", swap, message)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Set TIMETOK_DEBUG=1 for tracebacks."""
    console.quiet()
    try:
        result = cli.main(args=argv, prog_name="timetok", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as err:
        click.echo(err.ctx.get_help())
        return 2
    except click.UsageError as err:
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
        click.echo(f"error: {err.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        return 2
    except TimetokError as err:
        if os.environ.get("TIMETOK_DEBUG"):
            raise
        if err.details:
            click.echo(err.details)
        click.echo(f"error: {as_flags(str(err))}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
