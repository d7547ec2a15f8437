import pytest
import torch

from timetok.core.devices import resolve_device
from timetok.core.errors import ConfigError


def test_auto_is_the_gpu_where_one_is_visible_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_refused_by_parameter_name():
    with pytest.raises(ConfigError, match="device='cuda:1': no CUDA device is visible"):
        resolve_device("cuda:1")


def test_a_device_torch_does_not_know_is_refused():
    with pytest.raises(ConfigError, match="device must be 'auto', 'cpu'"):
        resolve_device("gpu0")
