"""Entry point: ``timetok``. Bad input becomes one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading

import click

from timetok import __version__
from timetok.core import console
from timetok.core.cli_options import OrderedGroup, hidden_alias
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
hidden_alias(cli, forecast, "lm")
for _name in ("pretrain", "finetune", "evaluate", "calibrate"):
    hidden_alias(cli, forecast.commands[_name])


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


# The signals that stop a command: each becomes a KeyboardInterrupt, so that every command
# ends through the same clean-up (a run rolls back its folder), and the exit code is 128 +
# the signal's number, as a shell reports a process the signal ended.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
received: list[int] = []  # the signals this command received


def _stop(signum: int, frame) -> None:
    received.append(signum)
    raise KeyboardInterrupt


def interrupted(err: BaseException) -> int:
    """Say that the command was interrupted and whether a run can be resumed; returns the
    exit code."""
    folder = getattr(err, "resume_from", None)  # a training run's RunInterrupted
    resume = (f"; --resume {folder} continues from the last checkpoint"
              if folder is not None else "")
    click.echo(f"interrupted: nothing was exported{resume}", err=True)
    return 128 + (received[0] if received else signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Set TIMETOK_DEBUG=1 for tracebacks."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    received.clear()
    handlers = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS}
    try:
        return _main(argv)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _main(argv: list[str] | None) -> int:
    console.quiet()
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        # Not cli.main(): it answers an interrupt with a blank line and an Abort, hiding
        # whether a run can be resumed.
        with cli.make_context("timetok", args) as ctx:
            result = cli.invoke(ctx)
    except click.exceptions.Exit as err:  # --help, --version
        return err.exit_code
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
    except (click.Abort, KeyboardInterrupt) as err:
        return interrupted(err)
    except SystemExit:
        if not received:
            raise
        return interrupted(KeyboardInterrupt())  # Lightning exits on an interrupt it caught
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
