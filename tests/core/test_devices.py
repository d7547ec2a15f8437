"""Devices are refused before any work where this machine cannot give them: the inference
``--device`` of every command that takes one, the training ``--accelerator`` and
``--devices`` of every command that trains, found by walking the command tree."""

import click
import pytest
import torch

from timetok.cli import cli as root
from timetok.core import devices
from timetok.core.devices import check_run_devices, resolve_device
from timetok.core.errors import ConfigError


def test_auto_is_the_gpu_where_one_is_visible_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_refused_by_parameter_name():
    with pytest.raises(ConfigError, match="device='cuda:1': no CUDA device is visible"):
        resolve_device("cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU is visible")
def test_a_gpu_beyond_the_last_is_refused():
    count = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=f"has {count} CUDA device"):
        resolve_device(f"cuda:{count}")


@pytest.mark.parametrize("name", ["gpu0", "tpu", "xla", "meta"])
def test_a_device_this_library_cannot_run_on_is_refused(name):
    with pytest.raises(ConfigError, match="device must be 'auto', 'cpu'"):
        resolve_device(name)


CPU_ONLY = {"auto": 2, "cpu": 2}
TWO_GPUS = {"auto": 2, "cpu": 16, "gpu": 2, "cuda": 2}


@pytest.mark.parametrize(("machine", "accelerator", "count"), [
    (CPU_ONLY, "auto", "auto"), (CPU_ONLY, "cpu", "2"), (CPU_ONLY, "cpu", "1"),
    (TWO_GPUS, "cpu", "16"), (TWO_GPUS, "auto", "-1"), (TWO_GPUS, "gpu", "0,1"),
    (TWO_GPUS, "cuda", "1,"), (TWO_GPUS, "gpu", 2),
])
def test_what_the_machine_offers_passes(monkeypatch, machine, accelerator, count):
    monkeypatch.setattr(devices, "accelerators", lambda: machine)
    check_run_devices(accelerator, count)


@pytest.mark.parametrize(("machine", "accelerator", "count", "message"), [
    (CPU_ONLY, "tpu", "auto", "accelerator='tpu' is not available here; pass one of auto, cpu"),
    (CPU_ONLY, "gpu", "1", "accelerator='gpu' is not available here"),
    (CPU_ONLY, "cpu", "3", "devices='3' does not fit accelerator='cpu', which here has 2 CPU"),
    (CPU_ONLY, "auto", "0", "pass a count from 1 to 2 or devices='auto'"),
    (CPU_ONLY, "cpu", "-1", "devices='-1'"),
    (CPU_ONLY, "cpu", "0,1", "devices='0,1'"),
    (CPU_ONLY, "cpu", "abc", "devices='abc'"),
    (TWO_GPUS, "gpu", "3", "which here has 2 GPU(s); pass a count from 1 to 2, -1 (all), GPU "
                           "indices below 2 such as 0,1"),
    (TWO_GPUS, "auto", "0,2", "devices='0,2'"),
])
def test_what_the_machine_cannot_give_is_refused(monkeypatch, machine, accelerator, count,
                                                 message):
    monkeypatch.setattr(devices, "accelerators", lambda: machine)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_run_devices(accelerator, count)


def commands_with(option: str, group: click.Group = root, path: tuple[str, ...] = ()):
    """(command path, its required options filled with a placeholder) of every command
    that takes ``option``, each once."""
    for name, command in group.commands.items():
        if command.hidden:  # aliases: the same options under an older name
            continue
        if isinstance(command, click.Group):
            yield from commands_with(option, command, (*path, name))
        elif any(option in p.opts for p in command.params):
            required = [(p.opts[0], "x") for p in command.params if p.required]
            yield (*path, name), [word for pair in required for word in pair]


TRAINING = list(commands_with("--devices"))
INFERENCE = list(commands_with("--device"))


def test_the_walk_finds_every_training_and_inference_command():
    assert {" ".join(p) for p, _ in TRAINING} == {
        "tokenizer train", "forecast pretrain", "forecast finetune", "mae pretrain",
        "mae finetune", "setvae pretrain", "setvae finetune", "doppler train"}
    assert {" ".join(p) for p, _ in INFERENCE} == {
        "forecast evaluate", "mae evaluate", "mae embed", "setvae evaluate", "setvae predict",
        "doppler generate", "doppler evaluate"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--accelerator", "tpu"], "--accelerator tpu is not available here; pass one of auto,"),
    (["--devices", "99"], "--devices 99 does not fit --accelerator auto"),
    (["--devices", "0"], "pass a count from 1 to"),
], ids=["accelerator-tpu", "devices-99", "devices-0"])
@pytest.mark.parametrize(("path", "required"), TRAINING, ids=[" ".join(p) for p, _ in TRAINING])
def test_every_training_command_refuses_devices_it_cannot_have(cli, tmp_path, path, required,
                                                               flags, message):
    result = cli(*path, *required, *flags, "--save-path", tmp_path / "run")
    result.assert_error(message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("path", "required"), INFERENCE,
                         ids=[" ".join(p) for p, _ in INFERENCE])
def test_every_inference_command_refuses_a_device_it_cannot_have(cli, path, required):
    result = cli(*path, *required, "--device", "tpu")
    result.assert_error("--device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'")
