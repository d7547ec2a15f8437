import pytest
import torch

from timetok.core.errors import ConfigError
from timetok.core.nn.code_lm import CodeLanguageModel, CodeLMConfig
from timetok.core.nn.sampling import Sampling

VOCAB = 24


def make(conditions=(), max_codes=32, grid_width=0, every=False) -> CodeLanguageModel:
    torch.manual_seed(0)
    config = CodeLMConfig(vocab_size=VOCAB, max_codes=max_codes, d_model=32, n_layers=2,
                          n_heads=4, d_ff=64, dropout=0.0, conditions=list(conditions),
                          grid_width=grid_width, condition_every_code=every)
    return CodeLanguageModel(config).eval()


def codes(n=3, length=12, seed=0):
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("conditions", [(), (5,), (5, 3)])
def test_causality_later_codes_never_change_earlier_logits(conditions):
    model = make(conditions)
    labels = torch.tensor([[1, 2][:len(conditions)]] * 3) if conditions else None
    seq = codes()
    changed = seq.clone()
    changed[:, 8:] = codes(3, 4, seed=1)
    before, after = model(seq, labels), model(changed, labels)
    torch.testing.assert_close(before[:, :8], after[:, :8])
    assert not torch.allclose(before[:, 8:], after[:, 8:])


def test_the_prefix_conditions_every_code_and_the_loss_covers_all_of_them():
    model = make((5,))
    seq = codes()
    a, b = model(seq, torch.tensor([[0]] * 3)), model(seq, torch.tensor([[4]] * 3))
    assert not torch.allclose(a[:, 0], b[:, 0])  # the first code already sees the label
    out = model.loss(seq, torch.tensor([[0], [1], [2]]))
    assert out.logits.shape == (3, 12, VOCAB) and torch.equal(out.targets, seq)
    plain = make().loss(seq)
    assert plain.logits.shape == (3, 11, VOCAB) and torch.equal(plain.targets, seq[:, 1:])


def test_the_loss_can_read_other_inputs_while_predicting_the_true_codes():
    model = make((5,)).eval()
    seq, labels = codes(), torch.tensor([[0], [1], [2]])
    noisy = torch.randint(0, VOCAB, seq.shape, generator=torch.Generator().manual_seed(1))
    out = model.loss(seq, labels, inputs=noisy)
    assert torch.equal(out.targets, seq)
    torch.testing.assert_close(out.logits, model.loss(noisy, labels).logits)
    clean = model.loss(seq, labels).loss
    torch.testing.assert_close(model.loss(seq, labels, inputs=seq).loss, clean)
    assert not torch.allclose(out.loss, clean)


@pytest.mark.parametrize("grid_width", [0, 6])
def test_greedy_decoding_with_the_cache_equals_recomputation(grid_width):
    model = make(grid_width=grid_width)
    cached = model.generate(codes(), 12, sampling=Sampling(temperature=0))
    full = model.generate(codes(), 12, sampling=Sampling(temperature=0), use_cache=False)
    assert cached.shape == (3, 12)
    assert torch.equal(cached, full)


@pytest.mark.parametrize("grid_width, every", [(0, False), (5, False), (0, True)])
def test_greedy_generation_follows_the_argmax_of_the_logits(grid_width, every):
    model = make((4,), grid_width=grid_width, every=every)
    labels = torch.tensor([[3], [1]])
    generated = model.generate(codes(2), 3, labels, Sampling(temperature=0))
    sequence = codes(2)
    for step in range(3):
        nxt = model(sequence, labels)[:, -1].argmax(-1)
        assert torch.equal(nxt, generated[:, step])
        sequence = torch.cat([sequence, nxt[:, None]], dim=1)


def test_grid_positions_tell_a_code_its_row_and_column_and_cost_nothing_when_off():
    plain, grid = make(), make(grid_width=4)
    extra = set(grid.state_dict()) - set(plain.state_dict())
    assert extra == {"row_embedding.weight", "column_embedding.weight"}
    assert grid.row_embedding.num_embeddings == 8  # 32 codes, 4 a row
    same = torch.full((1, 12), 3)
    embeds = grid.embed_codes(same)
    torch.testing.assert_close(embeds[0, 5] - embeds[0, 1],  # one row down, same column
                               grid.row_embedding.weight[1] - grid.row_embedding.weight[0])
    torch.testing.assert_close(grid.embed_codes(same[:, :1], start=5), embeds[:, 5:6])
    assert not torch.allclose(plain(same), grid(same))


def test_a_condition_on_every_code_adds_its_embedding_to_each_code_and_no_weights():
    prefix_only, every = make((5, 3)), make((5, 3), every=True)
    assert set(every.state_dict()) == set(prefix_only.state_dict())
    labels = torch.tensor([[1, 2], [4, 0]])
    seq = codes(2)
    tables = every.condition_embeddings
    bias = tables[0].weight[[1, 4]] + tables[1].weight[[2, 0]]
    torch.testing.assert_close(every.embed(seq, labels)[:, 2:],
                               prefix_only.embed(seq, labels)[:, 2:] + bias[:, None])
    assert not torch.allclose(every(seq, labels), prefix_only(seq, labels))
    greedy = Sampling(temperature=0)
    for scale in (None, 3.0):
        cached = every.generate(seq, 8, labels, greedy, guidance_scale=scale, repeats=2)
        full = every.generate(seq, 8, labels, greedy, guidance_scale=scale, repeats=2,
                              use_cache=False)
        assert torch.equal(cached, full)
    null = every.null_conditions(2)
    cond, uncond = every(seq, labels)[:, -1], every(seq, null)[:, -1]
    first = every.generate(seq, 1, labels, greedy, guidance_scale=3.0)[:, 0]
    assert torch.equal(first, (uncond + 3.0 * (cond - uncond)).argmax(-1))


def test_one_prefill_repeated_across_samples_equals_recomputation():
    model = make()
    repeated = model.generate(codes(2), 10, sampling=Sampling(temperature=0), repeats=3)
    full = model.generate(codes(2).repeat_interleave(3, dim=0), 10,
                          sampling=Sampling(temperature=0), use_cache=False)
    assert torch.equal(repeated, full)


def test_generation_from_the_prefix_alone_fills_max_codes():
    model = make((5,), max_codes=16)
    out = model.generate(None, 16, torch.tensor([[2], [3]]), repeats=2)
    assert out.shape == (4, 16) and out.max() < VOCAB
    with pytest.raises(ConfigError, match="max_codes"):
        model.generate(None, 17, torch.tensor([[2]]))


def test_guidance_scale_one_is_plain_conditioning_and_greater_scales_change_the_choice():
    model = make((5,))
    labels = torch.tensor([[1], [4]])
    greedy = Sampling(temperature=0)
    plain = model.generate(codes(2), 8, labels, greedy)
    assert torch.equal(model.generate(codes(2), 8, labels, greedy, guidance_scale=1.0), plain)
    for cache in (True, False):
        guided = model.generate(codes(2), 8, labels, greedy, guidance_scale=4.0,
                                use_cache=cache, repeats=2)
        assert guided.shape == (4, 8)
    # The first guided step is the argmax of u + s (c - u).
    null = model.null_conditions(2)
    cond, uncond = model(codes(2), labels)[:, -1], model(codes(2), null)[:, -1]
    first = model.generate(codes(2), 1, labels, greedy, guidance_scale=4.0)[:, 0]
    assert torch.equal(first, (uncond + 4.0 * (cond - uncond)).argmax(-1))


@pytest.mark.parametrize("labels, message", [
    (None, "conditioned on 1 label"), (torch.tensor([[6]]), "ids in \\[0, 5\\)"),
    (torch.tensor([[1, 2]]), "shape"),
])
def test_bad_conditions_are_refused(labels, message):
    with pytest.raises(ConfigError, match=message):
        make((5,))(codes(1), labels)


def test_a_model_without_a_prefix_refuses_conditions_and_guidance():
    model = make()
    with pytest.raises(ConfigError, match="takes no conditions"):
        model(codes(1), torch.tensor([[0]]))
    with pytest.raises(ConfigError, match="guidance"):
        model.generate(codes(1), 2, guidance_scale=2.0)


@pytest.mark.parametrize("settings, message", [
    (dict(d_model=30, n_heads=4), "divisible by n_heads"),
    (dict(attn_dropout=1.0), "attn_dropout must lie"),
    (dict(conditions=[0]), "condition"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(grid_width=-1), "grid_width"),
    (dict(condition_every_code=True), "condition_every_code needs conditions"),
])
def test_config_errors_name_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        CodeLMConfig(**(dict(vocab_size=8, max_codes=8, d_model=32, n_heads=4) | settings))
