"""The prior's training step (the user prefix's worth in nats per image), the tokenizer's
optional patch critic, and the train recipe's refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timetok.core.errors import ConfigError
from timetok.core.nn.conv2d import PatchDiscriminator2d
from timetok.doppler.config import TrainConfig
from timetok.doppler.model import GeneratorOutput, SpectrogramTokenizer
from timetok.doppler.recipe import PriorModule, SpectrogramTokenizerModule, train, train_tokenizer

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
        null = module.model(codes, torch.full_like(users, 3)).loss
        conditioned = module.model(codes, users).loss
    assert values["loss"] == pytest.approx(float(conditioned))
    assert values["user_nats"] == pytest.approx(float(null - conditioned) * 64, rel=1e-4)
    assert values["user_nats"] != 0
    with torch.no_grad():
        wrong = module.model(codes, torch.tensor([1, 2, 0, 1, 2, 0])).loss
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


def test_code_noise_corrupts_what_the_prior_reads_in_training_only(prior):
    _, codes, users = prior
    module = PriorModule({"tokenizer": TOK, "users": ["a", "b", "c"], **SIZES,
                          "condition_dropout": 0.0, "code_noise": 0.5})
    seen = []

    def forward(c, u, inputs=None):
        seen.append((c, inputs))
        return GeneratorOutput(loss=torch.tensor(0.0), logits=torch.zeros(0))

    module.model.forward = forward
    module.step((codes, users), "train", 0)
    targets, inputs = seen[-1]
    assert targets is codes
    changed = (inputs != codes).float().mean()
    assert 0.3 < changed < 0.55  # half replaced, a sixteenth of those by the same code
    assert inputs.min() >= 0 and inputs.max() < 16
    module.step((codes, users), "val", 0)
    assert all(inputs is None for _, inputs in seen[1:])


def test_code_noise_of_one_is_refused():
    with pytest.raises(ConfigError, match="code_noise must lie in"):
        PriorModule({"tokenizer": TOK, "users": ["a"], **SIZES, "code_noise": 1.0})


def random_images(root, users: str = "abc", per_user: int = 6):
    rng = np.random.default_rng(0)
    for user in users:
        (root / user).mkdir(parents=True)
        for n in range(per_user):
            np.save(root / user / f"{n}.npy", rng.random((32, 32)))
    return root


def tiny_config(tmp_path, **changes) -> TrainConfig:
    return TrainConfig(data_path=str(tmp_path / "data"), image_size=32, channels=[8, 16],
                       embedding_dim=8, codebook_size=16, batch_size=4,
                       accelerator="cpu", devices="1", progress=False, seed=0,
                       save_path=str(tmp_path / "run"), **changes)


def adversarial_run(tmp_path, weight: float, start: int, amp: bool = False,
                    ramp: float = 0.0):
    """Two epochs of a tiny tokenizer on random images of three users."""
    from safetensors.torch import load_file

    from timetok.core.train.runner import begin

    random_images(tmp_path / "data")
    config = tiny_config(tmp_path, stage="tokenizer", tokenizer_epochs=2, amp=amp,
                         adversarial_weight=weight, adversarial_start=start,
                         adversarial_ramp=ramp)
    begin(config.run_options())
    module, summary = train_tokenizer(config, config.tokenizer_config(), config.datamodule(),
                                      tmp_path / "tok")
    history = (tmp_path / "tok" / "history.csv").read_text().splitlines()
    return module, summary, history, load_file(tmp_path / "tok" / "model.safetensors")


def test_the_patch_critic_trains_beside_the_tokenizer_and_stays_out_of_its_export(tmp_path):
    torch.manual_seed(0)
    critic = PatchDiscriminator2d([8, 16, 32])
    assert critic(torch.rand(2, 1, 32, 32)).shape == (2, 1, 4, 4)
    module, summary, history, weights = adversarial_run(tmp_path, 0.5, 1)
    columns = history[0].split(",")
    assert {"train_adv_g", "train_adv_d", "train_adv_weight"} <= set(columns)
    rows = [dict(zip(columns, line.split(","), strict=True)) for line in history[1:]]
    trained = [row for row in rows if row.get("train_adv_d")]
    assert len(trained) == 1  # the critic starts at the second epoch
    assert float(trained[0]["train_adv_weight"]) > 0
    assert summary["exported"] == "last"
    assert not any(name.startswith("discriminator") for name in weights)
    exported = SpectrogramTokenizer.from_pretrained(tmp_path / "tok")
    for name, value in exported.state_dict().items():
        assert torch.equal(value, module.model.state_dict()[name])


def test_without_the_critic_the_best_weights_are_exported(tmp_path):
    module, summary, history, weights = adversarial_run(tmp_path, 0.0, 0)
    assert not hasattr(module, "discriminator")
    assert "train_adv_g" not in history[0]
    assert summary["exported"] == "best"


def test_the_tokenizer_and_its_critic_train_in_bf16_on_the_cpu(tmp_path):
    module, summary, history, weights = adversarial_run(tmp_path, 0.5, 1, amp=True)
    assert module.trainer.precision == "bf16-mixed"
    rows = [line.split(",") for line in history[1:]]
    assert len(rows) == 2
    assert all(np.isfinite(float(value)) for row in rows for value in row if value)
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}


def test_the_critic_weight_ramps_over_its_first_epochs(tmp_path):
    module, summary, history, weights = adversarial_run(tmp_path, 0.5, 0, ramp=4)
    columns = history[0].split(",")
    rows = [dict(zip(columns, line.split(","), strict=True)) for line in history[1:]]
    ramps = [float(row["train_adv_ramp"]) for row in rows if row.get("train_adv_ramp")]
    batches = module.trainer.num_training_batches
    expected = [np.mean([(epoch + b / batches) / 4 for b in range(batches)])
                for epoch in range(2)]
    np.testing.assert_allclose(ramps, expected, rtol=1e-5)


def test_a_critic_at_the_foot_of_its_ramp_trains_without_pulling_the_decoder():
    torch.manual_seed(0)
    module = SpectrogramTokenizerModule(TOK, 3, adversarial_weight=0.5, adversarial_ramp=2)
    images, users = torch.rand(4, 32, 32), torch.tensor([0, 1, 2, 0])
    module.model(images)  # k-means initialises the codebook
    module.eval()
    module.log_values = lambda stage, v, n: None
    module.step((images, users), "train", 0).backward()
    last = module.model.decoder.net[-1].weight
    decoder_grad = last.grad.clone()
    assert any(w.grad.abs().sum() > 0 for w in module.discriminator.parameters())
    module.zero_grad()
    module.model(images).loss.backward()
    torch.testing.assert_close(last.grad, decoder_grad)


@pytest.mark.parametrize("weight, start, ramp", [(-0.1, 0, 0), (0.1, -1, 0), (0.1, 0, -1)])
def test_a_negative_adversarial_weight_start_or_ramp_is_refused(weight, start, ramp):
    with pytest.raises(ConfigError, match="must be >= 0"):
        SpectrogramTokenizerModule(TOK, 3, adversarial_weight=weight, adversarial_start=start,
                                   adversarial_ramp=ramp)


def test_each_adversarial_loss_moves_only_its_own_player():
    """One backward pass trains both: the critic by its hinge loss alone, the decoder by
    the pixel and VQ losses plus the weighted term for fooling the critic."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    module = SpectrogramTokenizerModule(TOK, 3, adversarial_weight=0.5)
    images, users = torch.rand(4, 32, 32), torch.tensor([0, 1, 2, 0])
    module.model(images)  # k-means initialises the codebook
    module.eval()  # which stays put from here on
    values = {}
    module.log_values = lambda stage, v, n: values.update(v)
    module.step((images, users), "train", 0).backward()
    critic_grads = [w.grad.clone() for w in module.discriminator.parameters()]
    last = module.model.decoder.net[-1].weight
    decoder_grad = last.grad.clone()

    module.zero_grad()
    out = module.model(images)
    fake = out.reconstruction[:, None] * 2 - 1
    critic = (F.relu(1 - module.discriminator(images[:, None] * 2 - 1)).mean()
              + F.relu(1 + module.discriminator(fake.detach())).mean())
    critic.backward()
    for w, expected in zip(module.discriminator.parameters(), critic_grads, strict=True):
        torch.testing.assert_close(w.grad, expected)

    module.zero_grad()
    out = module.model(images)
    fool = -module.discriminator(out.reconstruction[:, None] * 2 - 1).mean()
    assert values["adv_weight"] > 0
    (out.loss + values["adv_weight"] * fool).backward()
    torch.testing.assert_close(last.grad, decoder_grad)
    module.zero_grad()
    module.model(images).loss.backward()
    assert not torch.allclose(last.grad, decoder_grad)  # the critic's pull reached it


@pytest.mark.slow
def test_the_tokenizer_and_its_critic_train_with_ddp_on_two_cpu_processes(tmp_path):
    import json
    import subprocess
    import sys

    from timetok.cli import main

    assert main(["doppler", "simulate", "--users", "2", "--per-user", "8", "--size", "32",
                 "--out", str(tmp_path / "sim"), "--no-progress"]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "timetok.cli", "doppler", "train", "--stage", "tokenizer",
         "--data", str(tmp_path / "sim"), "--image-size", "32", "--channels", "8,16",
         "--codebook-size", "16", "--embedding-dim", "8", "--tokenizer-epochs", "2",
         "--adversarial-weight", "0.5", "--adversarial-start", "1", "--batch-size", "4",
         "--no-progress",
         "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--save-path", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tok = tmp_path / "run" / "tokenizer"
    assert json.loads((tok / "training.json").read_text())["world_size"] == 2
    assert "train_adv_d" in (tok / "history.csv").read_text()


def test_the_recipe_trains_both_stages_and_refuses_to_overwrite_a_run(tmp_path):
    random_images(tmp_path / "data")
    config = tiny_config(tmp_path, tokenizer_epochs=1, prior_epochs=1, d_model=16, n_layers=1,
                         n_heads=2, d_ff=32)
    summaries = train(config)
    assert set(summaries) == {"tokenizer", "prior"}
    assert summaries["tokenizer"]["restarts"] >= 0 and summaries["prior"]["users"] == 3
    with pytest.raises(ConfigError, match="already holds a run.*overwrite=True"):
        train(config)
    prior = config.replace(stage="prior", overwrite=True,
                           save_path=str(tmp_path / "other"),
                           tokenizer_from=str(tmp_path / "run" / "tokenizer"))
    assert set(train(prior)) == {"prior"}
    assert not (tmp_path / "other" / "tokenizer").exists()


@pytest.mark.parametrize("changes, match", [
    ({"n_epochs": 3}, "tokenizer_epochs and prior_epochs"),
    ({"resume": True}, "cannot be resumed"),
    ({"stage": "all"}, "stage must be one of"),
    ({"channels": "8,x"}, "channels takes positive integers"),
    ({"data_path": None}, "reads the folder given by data_path"),
    ({"adversarial_weight": 0.1, "adversarial_start": 2, "tokenizer_epochs": 2},
     "adversarial_start 2 is past the last of 2 tokenizer_epochs"),
])
def test_impossible_settings_are_refused_in_parameter_names(tmp_path, changes, match):
    values = {"data_path": str(tmp_path), **changes}
    with pytest.raises(ConfigError, match=match) as caught:
        TrainConfig(**values)
    assert "--" not in str(caught.value)


def test_the_prior_stage_needs_a_trained_tokenizer(tmp_path):
    random_images(tmp_path / "data")
    with pytest.raises(ConfigError, match="needs a trained tokenizer"):
        train(tiny_config(tmp_path, stage="prior"))
