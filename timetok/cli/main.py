"""Entry point: ``timetok``. Bad input becomes one line on stderr and exit code 2."""

from __future__ import annotations

import logging
import os
import sys

import click

from timetok import __version__
from timetok.cli.data import data
from timetok.cli.forecast import evaluate, finetune, forecast_cmd, pretrain
from timetok.cli.tokenizer import tokenizer
from timetok.errors import TimetokError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="timetok")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Self-supervised tokenizers and encoders for time series: pretrain, then finetune."""
    if verbose:  # otherwise Python's last-resort handler shows warnings and errors only
        level = logging.DEBUG if verbose > 1 else logging.INFO
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(data)
cli.add_command(tokenizer)
for command in (pretrain, finetune, evaluate, forecast_cmd):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Set TIMETOK_DEBUG=1 for tracebacks."""
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
        click.echo(f"error: {err}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
