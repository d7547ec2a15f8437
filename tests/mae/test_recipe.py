"""The recipe's settings chosen from the data's size, the few-label split, and checkpoint
selection with ties broken by the validation loss."""

import numpy as np
import pytest
import torch

from timetok.mae.data import labelled_from_arrays
from timetok.mae.recipe import (
    SMALL_SET,
    FinetuneConfig,
    PretrainConfig,
    batch_size_for,
    steps_for,
)


def arrays(n: int, classes: int = 3, length: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, length, 2)) + y[:, None, None]
    return labelled_from_arrays(x, y, [str(c) for c in range(classes)], seed=seed)


def test_a_small_set_gets_the_conv_encoder_small_batches_and_a_budget_in_steps():
    small = arrays(40)  # 32 training samples after validation
    config = PretrainConfig().sized(small)
    assert config.encoder == "conv" and config.batch_size == 8 and config.lr == 1e-3
    assert config.max_steps == 1000 and config.n_epochs is None  # 250 epochs of 4 steps
    large = arrays(int(SMALL_SET * 1.5), classes=6)
    config = PretrainConfig().sized(large)
    n_train = len(large.splits["train"])
    assert config.encoder == "native" and config.batch_size == 128
    assert config.max_steps == steps_for(n_train, 128) == max(1000, 30 * -(-n_train // 128))


def test_settings_given_by_the_user_are_kept():
    data = arrays(40)
    config = PretrainConfig(encoder="native", batch_size=4, lr=3e-4, n_epochs=2).sized(data)
    assert (config.encoder, config.batch_size, config.lr) == ("native", 4, 3e-4)
    assert config.max_steps == -1 and config.n_epochs == 2  # the user's budget stands


def test_a_head_on_a_frozen_encoder_defaults_to_a_tenfold_learning_rate():
    data = arrays(40)
    assert FinetuneConfig(freeze_policy="head-only").sized(data).lr == 1e-2
    assert FinetuneConfig(freeze_policy="linear-probe").sized(data).lr == 1e-2
    assert FinetuneConfig().sized(data).lr == 1e-3


@pytest.mark.parametrize("n,expected", [(1, 8), (24, 8), (128, 16), (600, 64), (10**6, 128)])
def test_batch_sizes_are_powers_of_two_from_8_to_128(n, expected):
    assert batch_size_for(n) == expected


def test_few_labels_keep_a_stratified_seeded_share_of_train_and_validation_only():
    data = arrays(300)
    few = data.with_labels(0.1, seed=1)
    for split in ("train", "val"):
        full, kept = data.splits[split].y, few.splits[split].y
        assert len(kept) == pytest.approx(0.1 * len(full), abs=3)
        assert set(kept.tolist()) == set(full.tolist())  # every class keeps a sample
    assert few.splits["test"] is data.splits["test"] and few.scaler is data.scaler
    again = data.with_labels(0.1, seed=1)
    np.testing.assert_array_equal(few.splits["train"].x, again.splits["train"].x)
    other = data.with_labels(0.1, seed=2)
    assert not np.array_equal(few.splits["train"].x, other.splits["train"].x)
    assert data.with_labels(1.0, seed=1) is data
    tiny = data.with_labels(0.001, seed=1)  # still one sample per class
    assert sorted(tiny.splits["train"].y.tolist()) == [0, 1, 2]


def test_a_small_training_split_keeps_every_sample_in_every_epoch():
    data = arrays(40)
    module = FinetuneConfig().sized(data).datamodule(data)
    loader = module.train_dataloader()
    assert sum(len(batch[1]) for batch in loader) == len(data.splits["train"])


def test_equal_validation_accuracy_is_decided_by_the_lower_loss():
    from timetok.mae.modules import MAEFinetuneModule

    config = dict(n_channels=2, length=32, n_classes=3, d_model=16, n_layers=1, n_heads=2,
                  d_ff=32, regressor_layers=1, encoder="conv")
    module = MAEFinetuneModule(config)
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))

    class Strategy:
        @staticmethod
        def reduce(value, reduce_op):
            return value

    module.trainer = type("T", (), {"strategy": Strategy})()  # only its reduce is read
    y = torch.tensor([0, 1, 2, 0])

    def score(confidence: float, predicted=(0, 1, 2, 1)) -> float:
        logits = torch.full((4, 3), 0.0)
        logits[torch.arange(4), torch.tensor(predicted)] = confidence
        module.on_validation_epoch_start()
        module.tally["confusion"].index_put_((y, logits.argmax(-1)), torch.ones(4),
                                             accumulate=True)
        loss = torch.nn.functional.cross_entropy(logits, y)
        module.tally["loss"] += loss * 4
        module.on_validation_epoch_end()
        return logged["val_selection"], float(loss)

    (a, loss_a), (b, loss_b) = score(4.0), score(0.5)  # 3 of 4 right each
    assert loss_a != loss_b and 0.75 - 0.5 / 4 < min(a, b) <= max(a, b) < 0.75
    assert (a > b) == (loss_a < loss_b)  # equal accuracy: the lower loss wins
    assert score(0.01, predicted=(0, 1, 1, 1))[0] < min(a, b)  # an error outweighs any loss


def test_augmentation_scales_and_jitters_observed_steps_and_leaves_padding_at_zero():
    from timetok.mae.modules import augment

    torch.manual_seed(0)
    x = torch.ones(64, 20, 2)
    observed = torch.ones(64, 20, dtype=torch.bool)
    observed[:, 15:] = False
    out = augment(x * observed[..., None], observed, 0.1)
    assert (out[:, 15:] == 0).all()
    seen = out[:, :15]
    assert 0.05 < seen.std() < 0.2 and abs(seen.mean() - 1) < 0.05
    assert torch.equal(augment(x, observed, 0.0), x * observed[..., None])
