"""No numeric option accepts NaN or infinity: every float option of every command, found
by walking the command tree, refuses both at parse time with one line naming the flag."""

import click
import pytest

from timetok.cli import cli as root


def float_options(group: click.Group, path: tuple[str, ...] = ()):
    """(command path, first long flag) of every float option, each command once."""
    for name, command in group.commands.items():
        if command.hidden:  # aliases: the same options under an older name
            continue
        if isinstance(command, click.Group):
            yield from float_options(command, (*path, name))
            continue
        for param in command.params:
            numeric = isinstance(param.type, click.types.FloatParamType)
            if isinstance(param, click.Option) and numeric:
                yield (*path, name), next(o for o in param.opts if o.startswith("--"))


FLOATS = list(float_options(root))


def test_the_walk_finds_the_float_options_of_every_group():
    groups = {path[0] for path, _ in FLOATS}
    assert groups >= {"tokenizer", "forecast", "mae", "setvae", "doppler"}
    assert (("tokenizer", "train"), "--lr") in FLOATS and len(FLOATS) > 40


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("path", "flag"), FLOATS, ids=[" ".join(p) + " " + f for p, f in FLOATS])
def test_every_float_option_refuses_nan_and_infinity(cli, path, flag, value):
    result = cli(*path, f"{flag}={value}")
    result.assert_error(flag, "not a finite number")
