"""Options shared by the command groups, and settings from YAML files.

Every hyphenated long flag also answers to its underscored spelling, so the reference
scripts' flags (``--context_points``) work unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from pathlib import Path

import click
from click.core import ParameterSource

from timetok.core.errors import ConfigError


class OrderedGroup(click.Group):
    """Lists commands in the order they were added: the order a newcomer meets them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class FiniteFloat(click.FloatRange):
    """A number option that refuses NaN and infinity, optionally within a range (the
    arguments of ``click.FloatRange``): every float option of every command takes it, so no
    setting trains, samples or fails late on a value that is not a number."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:  # click's help text of the range: none when unbounded
        return "" if self.min is None and self.max is None else super()._describe_range()


def hidden_alias(group: click.Group, command: click.Command, name: str | None = None) -> None:
    """Keep a command's former name (or place) working for users' scripts, out of --help."""
    alias = copy.copy(command)
    alias.hidden = True
    group.add_command(alias, name)


def optimiser_options(batch_size: int | None, weight_decay: float = 0.01,
                      warmup_steps: int = 100, lr: float | None = 1e-3):
    """``--batch-size``, ``--lr``, ``--weight-decay`` and ``--warmup-steps`` with a command's
    defaults (AdamW with warm-up and cosine decay: see ``TaskModule``); a default of None
    is chosen from the training data's size."""
    sized = "chosen from the training split's size"
    return compose(
        option("--batch-size", type=click.IntRange(min=1), default=batch_size,
               show_default=sized if batch_size is None else True),
        option("--lr", "--learning-rate", "lr", type=FiniteFloat(min=0, min_open=True),
               default=lr, show_default=sized if lr is None else True),
        option("--weight-decay", type=FiniteFloat(min=0), default=weight_decay,
               show_default=True),
        option("--warmup-steps", type=click.IntRange(min=0), default=warmup_steps,
               show_default=True),
    )


def option(*names: str, **kwargs):
    """``click.option`` that also accepts ``--snake_case`` for every ``--kebab-case`` name."""
    flags = [n for n in names if n.startswith("--") and "/" not in n]
    aliases = [n.replace("-", "_") for n in flags if "-" in n[2:]]
    aliases = [a.replace("__", "--", 1) for a in aliases]
    return click.option(*names, *[a for a in aliases if a not in names], **kwargs)


def compose(*decorators):
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


data_options = compose(
    option(
        "--dataset",
        "--dset",
        "--dset-pretrain",
        "dataset",
        default="etth1",
        show_default=True,
        help="Registered dataset (timetok data list), or 'custom' with --data-path.",
    ),
    option(
        "--data-path",
        type=click.Path(dir_okay=False),
        default=None,
        help="A CSV file: for --dataset custom, or to override a dataset's file.",
    ),
    option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Folder with the official files [default: $TIMETOK_DATA_DIR, ~/.cache/timetok].",
    ),
)

def _apply_threads(ctx: click.Context, param: click.Parameter, value: int | None):
    """Set torch's threads as soon as the flag is read, before any data are loaded."""
    if not ctx.resilient_parsing:
        from timetok.core.threads import use_threads

        use_threads(value)
    return value


class LoggerNames(click.ParamType):
    """``--logger``: a comma list of loggers, each checked when it is read (from the command
    line or a settings file; see :func:`timetok.core.train.loggers.logger_names`)."""

    name = "names"

    def convert(self, value, param, ctx):
        from timetok.core.train.loggers import logger_names

        try:
            return ",".join(logger_names(value))
        except (ConfigError, ImportError) as err:
            self.fail(str(err), param, ctx)


def _join_loggers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    """The repeated ``--logger`` as one comma list (None: no logger), each name once."""
    return LoggerNames().convert(values, param, ctx) if values else None


threads_option = option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    callback=_apply_threads,
    help="CPU threads for torch [default: $TIMETOK_THREADS, else the cores not busy now].",
)

run_options = compose(
    option(
        "--n-epochs",
        "--n-epochs-pretrain",
        "n_epochs",
        type=int,
        default=None,
        help="Epochs to train [default: 10 unless --max-steps is given].",
    ),
    option("--max-steps", type=int, default=-1, help="Stop after this many optimiser steps."),
    option("--max-time", type=FiniteFloat(min=0, min_open=True), default=None,
           help="Stop training after this many minutes (the learning rate decays over them); "
                "loading the data, the last validation and the export come on top. Prefer "
                "--max-steps or --n-epochs: a budget in time trains less on a busy machine."),
    option("--devices", default="auto", show_default=True,
           help="Devices to train on: a count (CPU: processes), 'auto', and on GPUs -1 (all) "
                "or indices such as 0,1."),
    option("--num-nodes", type=click.IntRange(min=1), default=1, show_default=True),
    option("--strategy", default="auto", show_default=True, help="Lightning strategy, e.g. ddp."),
    option("--accelerator", default="auto", show_default=True,
           help="auto, cpu, or where this machine has them gpu (cuda) or mps."),
    option(
        "--amp",
        type=click.BOOL,
        default=False,
        show_default=True,
        help="Mixed precision (bf16; fp16 on GPUs without bf16); 1/0.",
    ),
    option(
        "--val-every",
        type=click.IntRange(min=1),
        default=None,
        help="Validate every N steps [default: epoch].",
    ),
    option(
        "--checkpoint-every",
        type=click.IntRange(min=1),
        default=100,
        show_default=True,
        help="Steps between last.ckpt saves (for --resume).",
    ),
    option(
        "--num-workers",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Data loader workers.",
    ),
    option("--seed", type=click.IntRange(0, 2**32 - 1), default=42, show_default=True),
    threads_option,
    option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML file of settings; flags given on the command line win.",
    ),
    option(
        "--resume",
        type=click.Path(),
        default=None,
        help="Run folder to continue from its last checkpoint, with its own settings.",
    ),
    option("--overwrite", is_flag=True, help="Replace an existing run in --save-path."),
    option("--progress/--no-progress", default=True, show_default=True),
    option("--logger", type=LoggerNames(), multiple=True, default=None, callback=_join_loggers,
           help="Live training curves under SAVE_PATH/logs: csv, tensorboard or mlflow; "
                "repeat or comma-separate for several [default: none]."),
)


def read_yaml(path: str | Path, what: str) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}; check the path")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML ({first}); fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; pass a YAML file of setting: value "
                          "lines") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of setting: value")
    return values


def apply_file_settings(ctx: click.Context, params: dict, values: dict, where: str) -> dict:
    """Fill every setting not given on the command line from ``values``."""
    known = {p.name: p for p in ctx.command.params}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known or name in {"config_file", "resume"}:
            raise ConfigError(
                f"unknown setting {key!r} in {where}; valid settings are the command's flags"
            )
        if ctx.get_parameter_source(name) == ParameterSource.DEFAULT:
            param = known[name]
            if param.multiple and isinstance(value, str | int | float):
                value = [value]  # one value of a repeatable flag
            try:  # the flag's own conversion and checks
                params[name] = param.process_value(ctx, value)
            except click.BadParameter as err:
                raise ConfigError(f"{where}: bad value for {key!r}: {err.message}") from None
    return params


def resolve_settings(ctx: click.Context, params: dict, run_file: str = "run.yaml") -> dict:
    """Defaults < ``--config`` file < a resumed run's own settings < explicit flags."""
    if params.get("config_file"):
        params = apply_file_settings(
            ctx, params, read_yaml(params["config_file"], "config file"), params["config_file"]
        )
    if params.get("resume"):
        folder = Path(params["resume"])
        if not folder.is_dir():
            raise ConfigError(
                f"--resume folder not found: {folder}; pass the run folder of an earlier run"
            )
        saved = read_yaml(folder / run_file, "run settings")
        saved.pop("save_path", None)
        params = apply_file_settings(ctx, params, saved, str(folder / run_file))
        params["save_path"] = str(folder)
    return params


def int_list(values: str | list[str] | tuple[str, ...], flag: str) -> list[int]:
    """Positive integers given as ``8,5,5`` and/or as a repeated flag."""
    values = [values] if isinstance(values, str) else values
    parts = [part for value in values for part in str(value).replace(",", " ").split()]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"{flag} takes positive integers separated by commas (e.g. 8,5,5,5), "
                          f"got {','.join(map(str, values))!r}")
    return [int(part) for part in parts]


def dataset_names(value: str, flag: str = "--dataset", one: bool = False) -> list[str]:
    """The dataset names in a comma list; refuses a list that names none (``""``, ``","``),
    and more than one where a command reads ``one``."""
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    if not names:
        several = "" if one else ", or several separated by commas"
        raise ConfigError(f"{flag} names no dataset ({value!r}); pass a name from "
                          f"'timetok data list'{several}")
    if one and len(names) > 1:
        raise ConfigError(f"{flag} names {len(names)} datasets ({value!r}); this command reads "
                          "one, run it once per dataset")
    return names


def check_writable(path: str | Path, flag: str, folder: bool = True) -> None:
    """Refuse an output this process cannot write (a file in the way, a read-only
    folder) before any work starts; creates nothing."""
    from timetok.core.utils import unwritable_reason

    reason = unwritable_reason(path, folder)
    if reason:
        raise ConfigError(f"cannot write {flag} {path}: {reason}; pass another {flag}")


@contextlib.contextmanager
def writing(path: str | Path, flag: str):
    """Turn a file system error while writing an output into one line that names the file
    (errors without a file name, a network's say, pass through)."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise
        reason = err.strerror or type(err).__name__
        raise ConfigError(f"cannot write {err.filename} ({reason}); make room or access in "
                          f"{path}, or pass another {flag}") from None


def json_option(func):
    return option("--json", "as_json", is_flag=True, help="Print the report as JSON.")(func)


class DeviceName(click.ParamType):
    """``--device``: refused when it is read (from the command line or a settings file)
    where this machine has no such device (see :func:`timetok.core.devices.resolve_device`)."""

    name = "device"

    def convert(self, value, param, ctx):
        from timetok.core.devices import resolve_device

        resolve_device(value)  # its ConfigError reaches the user with the flags' names
        return str(value)


def device_option(func):
    return option("--device", type=DeviceName(), default="auto", show_default=True,
                  help="auto (a GPU when one is visible), cpu, cuda, cuda:1 ...")(func)


def resolve_device(value: str) -> str:
    """``--device`` as a name torch takes (see :func:`timetok.core.devices.resolve_device`)."""
    from timetok.core.devices import resolve_device as resolve

    return str(resolve(value))


def pass_settings(func):
    """Hand the command its parameters with files and a resumed run's settings merged in;
    a training command's accelerator and device count are checked there, before any work."""

    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx, **params):
        params = resolve_settings(ctx, params)
        if "devices" in params:
            from timetok.core.devices import check_run_devices

            check_run_devices(params["accelerator"], params["devices"])
        return func(**params)

    return wrapper


def check_save_path(save_path: Path, s: dict) -> None:
    """A training command's run folder, checked before any work: apart from what the run
    reads, writable, and not an earlier run unless --resume or --overwrite says so."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from timetok.core.paths import check_apart, read_paths

    check_apart(save_path, "save_path", read_paths(s))
    check_writable(save_path, "--save-path")
    if s["resume"] or s["overwrite"] or rank_zero_only.rank != 0:
        return
    if (save_path / "run.yaml").exists():
        raise ConfigError(
            f"{save_path} already holds a run; pass --resume {save_path} to continue it, "
            "--overwrite to replace it, or another --save-path"
        )


def print_summary(summary: dict, save_path: Path, as_json: bool,
                  lines: list[str] | None = None) -> None:
    """What a finished training command prints (on the main process only): the standard
    line, then the module's own ``lines``."""
    import json

    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    monitor = summary["monitor"]
    best = summary[f"best_{monitor}"]
    click.echo(
        f"trained {summary['global_step']} steps in {summary['wall_s']:.0f} s "
        f"({summary['throughput_per_s']:,.0f} {summary['throughput_unit']}/s); best "
        f"{monitor.replace('_', ' ')} {'n/a' if best is None else f'{best:.4f}'}; model saved "
        f"to {save_path}"
    )
    for line in lines or []:
        click.echo(line)
