import pytest
import torch

from timetok.core.errors import ConfigError
from timetok.core.nn.sampling import Sampling, filter_logits, next_token


def test_top_k_keeps_exactly_k_candidates():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    kept = filter_logits(logits, top_k=7).isfinite()
    assert (kept.sum(dim=1) == 7).all()
    assert torch.equal(kept, torch.zeros_like(kept).scatter(1, logits.topk(7).indices, True))


@pytest.mark.parametrize("p", [0.3, 0.75, 0.95])
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(p):
    logits = torch.randn(8, 40, generator=torch.Generator().manual_seed(1)) * 2
    kept = filter_logits(logits, top_p=p).isfinite()
    probs = logits.softmax(-1)
    for row in range(len(logits)):
        order = probs[row].argsort(descending=True)
        mass = probs[row][order].cumsum(0)
        size = int((mass < p).sum()) + 1  # the first prefix whose mass reaches p
        assert kept[row].sum() == size
        assert kept[row][order[:size]].all()


def test_no_filter_keeps_everything_and_greedy_takes_the_argmax():
    logits = torch.randn(4, 10)
    assert torch.equal(filter_logits(logits), logits)
    assert torch.equal(next_token(logits, Sampling(temperature=0)), logits.argmax(-1))


def test_sampled_tokens_stay_inside_the_filtered_set():
    logits = torch.randn(500, 30, generator=torch.Generator().manual_seed(2))
    tokens = next_token(logits, Sampling(top_k=3), torch.Generator().manual_seed(3))
    assert (logits.topk(3).indices == tokens[:, None]).any(dim=1).all()


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"),
    (dict(top_p=0), "top_p"),
])
def test_impossible_settings_name_the_parameter(settings, message):
    with pytest.raises(ConfigError, match=message):
        Sampling(**settings)
