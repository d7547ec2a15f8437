"""The prior's training step: the user prefix's worth in nats per image."""

from __future__ import annotations

import pytest
import torch

from timetok.train.doppler import PriorModule

TOK = dict(image_size=32, channels=[8, 16], embedding_dim=8, num_embeddings=16)
SIZES = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0)


def logged(module: PriorModule, stage: str, codes, users) -> dict[str, float]:
    values = {}
    module.log_values = lambda s, v, n: values.update({k: float(x.detach()) for k, x in v.items()})
    module.step((codes, users), stage, 0)
    return values


@pytest.fixture
def prior():
    torch.manual_seed(0)
    module = PriorModule({"tokenizer": TOK, "users": ["a", "b", "c"], **SIZES}).eval()
    codes = torch.randint(0, 16, (6, 8, 8))
    users = torch.tensor([0, 1, 2, 0, 1, 2])
    return module, codes, users


def test_validation_logs_what_the_user_prefix_saves_per_image(prior):
    module, codes, users = prior
    values = logged(module, "val", codes, users)
    with torch.no_grad():
        null = module.model.loss(codes, torch.full_like(users, 3))
        conditioned = module.model.loss(codes, users)
    assert values["loss"] == pytest.approx(float(conditioned))
    assert values["user_nats"] == pytest.approx(float(null - conditioned) * 64, rel=1e-4)
    assert values["user_nats"] != 0
    with torch.no_grad():
        wrong = module.model.loss(codes, torch.tensor([1, 2, 0, 1, 2, 0]))
    assert values["wrong_user_nats"] == pytest.approx(float(wrong - conditioned) * 64, rel=1e-4)
    assert "user_nats" not in logged(module, "train", codes, users)


def test_a_prefix_that_cannot_tell_users_apart_saves_nothing(prior):
    module, codes, users = prior
    table = module.model.prior.condition_embeddings[0].weight
    with torch.no_grad():
        table[:] = table[-1]  # every user's row is the null row
    values = logged(module, "val", codes, users)
    assert values["user_nats"] == pytest.approx(0, abs=1e-4)
    assert values["wrong_user_nats"] == pytest.approx(0, abs=1e-4)


def test_without_condition_dropout_there_is_no_null_prefix_but_wrong_users(prior):
    _, codes, users = prior
    module = PriorModule({"tokenizer": TOK, "users": ["a", "b", "c"], **SIZES,
                          "condition_dropout": 0.0}).eval()
    assert set(logged(module, "val", codes, users)) == {"loss", "wrong_user_nats"}
