"""TimeSeriesTokenizer: one answer for numpy, torch and DataFrames, on the data's scale,
through save_pretrained/from_pretrained, and a one-line error for each bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.synthetic import mixture
from timetok.core.data.scaler import Scaler
from timetok.core.errors import CheckpointError, ConfigError, DataError, TimetokError
from timetok.tokenizer.model import TokenizerConfig, TokenizerModel
from timetok.tokenizer.pipeline import Scale, TimeSeriesTokenizer

SMALL = dict(n_channels=2, context_points=32, embedding_dim=8, block_hidden_size=16,
             res_hidden_size=8, num_embeddings=16)


def make_tokenizer(**overrides) -> TimeSeriesTokenizer:
    """A tokenizer warmed on a few batches (k-means has run) over a scaler with a level and
    spread far from 0 and 1, so a missed (un)scaling shows."""
    torch.manual_seed(0)
    model = TokenizerModel(TokenizerConfig(**(SMALL | overrides)))
    model.train()
    for seed in range(2):
        model(mixture(16, 32, 2, seed=seed))
    scaler = Scaler(np.array([100.0, -5.0], np.float32), np.array([20.0, 0.5], np.float32),
                    ["a", "b"])
    return TimeSeriesTokenizer(model.eval(), scaler, device="cpu")


def frame(rows: int = 64, seed: int = 3) -> pd.DataFrame:
    values = mixture(1, rows, 2, seed=seed)[0].numpy() * [20.0, 0.5] + [100.0, -5.0]
    index = pd.date_range("2024-01-01", periods=rows, freq="15min", name="date")
    return pd.DataFrame(values.astype(np.float32), columns=["a", "b"], index=index)


@pytest.fixture(scope="module")
def tok() -> TimeSeriesTokenizer:
    return make_tokenizer()


def test_numpy_torch_and_dataframe_give_the_same_answer(tok):
    df = frame()
    values = df.to_numpy()
    tensor = torch.from_numpy(values)
    codes_np, scale = tok.encode(values, return_scale=True)
    codes_df, scale_df = tok.encode(df, return_scale=True)
    codes_t = tok.encode(tensor)
    assert isinstance(codes_t, torch.Tensor) and isinstance(codes_df, pd.DataFrame)
    assert codes_np.shape == (64 // tok.compression, 2) and codes_np.dtype == np.int64
    np.testing.assert_array_equal(codes_df.to_numpy(), codes_np)
    np.testing.assert_array_equal(codes_t.numpy(), codes_np)
    np.testing.assert_array_equal(scale_df.mean, scale.mean)

    recon_np = tok.reconstruct(values)
    recon_t = tok.reconstruct(tensor)
    recon_df = tok.reconstruct(df)
    np.testing.assert_allclose(recon_t.numpy(), recon_np, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(recon_df.to_numpy(), recon_np, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tok.decode(codes_np, scale), recon_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tok.decode(codes_t, scale).numpy(), recon_np, rtol=1e-5,
                               atol=1e-5)

    embedded = tok.embed(values)
    assert embedded.shape == (16, 2, tok.config.embedding_dim)
    np.testing.assert_allclose(tok.embed(tensor).numpy(), embedded, rtol=1e-6)
    np.testing.assert_allclose(tok.embed(df).to_numpy().reshape(embedded.shape), embedded,
                               rtol=1e-6)


def test_a_dataframe_comes_back_with_its_columns_and_index(tok):
    df = frame()
    codes, scale = tok.encode(df, return_scale=True)
    assert list(codes.columns) == ["a", "b"]
    assert codes.index.equals(df.index[::tok.compression])
    for out in (tok.reconstruct(df), tok.decode(codes, scale)):
        assert list(out.columns) == ["a", "b"]
        assert out.index.equals(df.index)


def test_answers_are_on_the_datas_scale(tok):
    """The pipeline is the model between the folder's scaler and its inverse."""
    values = frame().to_numpy()
    scaled = torch.from_numpy(tok.scaler.transform(values))[None]
    codes, stats = tok.model.encode(scaled)
    expected = tok.scaler.inverse_transform(tok.model.decode(codes, stats)[0].numpy())
    np.testing.assert_allclose(tok.reconstruct(values), expected, rtol=1e-6, atol=1e-5)
    assert abs(tok.reconstruct(values)[:, 0].mean() - values[:, 0].mean()) < 5.0


def test_a_batch_is_each_series_on_its_own(tok):
    batch = np.stack([frame(seed=s).to_numpy() for s in (1, 2, 3)])
    codes, scale = tok.encode(batch, return_scale=True)
    assert codes.shape == (3, 16, 2) and scale.mean.shape == (3, 1, 2)
    for i in range(3):
        np.testing.assert_array_equal(tok.encode(batch[i]), codes[i])
    small = TimeSeriesTokenizer(tok.model, tok.scaler, batch_size=2)
    np.testing.assert_allclose(small.reconstruct(batch), tok.reconstruct(batch), rtol=1e-6)


def test_save_and_from_pretrained_give_identical_answers(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    assert set(json.loads((tmp_path / "data.json").read_text())) == {"scaler"}
    loaded = TimeSeriesTokenizer.from_pretrained(tmp_path, device="auto")
    assert loaded.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = TimeSeriesTokenizer.from_pretrained(tmp_path, device="cpu")
    values = frame().to_numpy()
    np.testing.assert_array_equal(loaded.encode(values), tok.encode(values))
    np.testing.assert_array_equal(loaded.reconstruct(values), tok.reconstruct(values))
    np.testing.assert_array_equal(loaded.scaler.std, tok.scaler.std)


def test_a_folder_exported_before_data_json_still_loads(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    scaler = json.loads((tmp_path / "data.json").read_text())["scaler"]
    (tmp_path / "data.json").unlink()
    (tmp_path / "scaler.json").write_text(json.dumps(scaler))
    values = frame().to_numpy()
    loaded = TimeSeriesTokenizer.from_pretrained(tmp_path, device="cpu")
    np.testing.assert_array_equal(loaded.reconstruct(values), tok.reconstruct(values))


def test_a_folder_without_its_scaler_is_refused(tok, tmp_path):
    tok.model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="scaler.*data.json.*re-export"):
        TimeSeriesTokenizer.from_pretrained(tmp_path)


def test_a_trained_run_folder_loads(tiny_run):
    tok = TimeSeriesTokenizer.from_pretrained(tiny_run.path, device="cpu")
    df = pd.read_csv(tiny_run.csv, index_col="date")
    out = tok.reconstruct(df.iloc[:64])
    assert list(out.columns) == ["a", "b"] and out.index.equals(df.index[:64])


def test_residual_codes_as_a_dataframe_have_a_column_per_channel_and_level():
    tok = make_tokenizer(quantizer="rvq", rvq_levels=2)
    df = frame()
    codes, scale = tok.encode(df, return_scale=True)
    assert list(codes.columns) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    np.testing.assert_array_equal(codes.to_numpy().reshape(16, 2, 2), tok.encode(df.to_numpy()))
    np.testing.assert_allclose(tok.decode(codes, scale).to_numpy(), tok.reconstruct(df),
                               rtol=1e-5, atol=1e-5)


def test_a_tokenizer_without_revin_decodes_codes_alone():
    tok = make_tokenizer(revin=False)
    values = frame().to_numpy()
    np.testing.assert_allclose(tok.decode(tok.encode(values)), tok.reconstruct(values),
                               rtol=1e-5, atol=1e-5)


def test_embeddings_before_quantization_differ_from_the_quantized(tok):
    values = frame().to_numpy()
    quantized, raw = tok.embed(values), tok.embed(values, quantized=False)
    assert raw.shape == quantized.shape
    codebook = tok.model.quantizer.codebook.detach().numpy()
    nearest = ((quantized[..., None, :] - codebook) ** 2).sum(-1).min(-1)
    assert nearest.max() < 1e-8  # every quantized vector is a codebook entry
    assert not np.allclose(raw, quantized)


@pytest.mark.parametrize(
    ("series", "error", "fragments"),
    [
        (np.zeros((64, 3), np.float32), DataError, ("3 channel", "trained on 2")),
        (np.zeros((62, 2), np.float32), DataError, ("length 62", "multiple", "trim it to 60")),
        (np.zeros((0, 2), np.float32), DataError, ("length 0",)),
        (np.zeros(64, np.float32), DataError, ("[time, channels]", "series[:, None]")),
        (np.full((64, 2), np.nan, np.float32), DataError, ("NaN",)),
        ([[1.0, 2.0]] * 64, DataError, ("numpy array", "list")),
        (np.array([["x", "y"]] * 64), DataError, ("real numbers",)),
        (frame().rename(columns={"b": "c"}), DataError, ("['a', 'c']", "pass those columns")),
        (frame()[["b", "a"]], DataError, ("in this order",)),
        (frame().assign(b="text"), DataError, ("'b' is not numeric", "set_index")),
    ],
)
def test_bad_series_name_the_problem_and_the_fix(tok, series, error, fragments):
    with pytest.raises(error) as caught:
        tok.encode(series)
    assert isinstance(caught.value, TimetokError) and isinstance(caught.value, ValueError)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_bad_codes_and_scales_are_refused(tok):
    values = frame().to_numpy()
    codes, scale = tok.encode(values, return_scale=True)
    with pytest.raises(ConfigError, match="return_scale=True"):
        tok.decode(codes)
    with pytest.raises(DataError, match=r"integers in \[0, 16\)"):
        tok.decode(codes + 16, scale)
    with pytest.raises(DataError, match="integers"):
        tok.decode(codes.astype(np.float32), scale)
    with pytest.raises(DataError, match="do not fit"):
        tok.decode(codes[:, :1], scale)
    with pytest.raises(DataError, match="statistics of shape"):
        tok.decode(np.stack([codes, codes]), scale)
    with pytest.raises(DataError, match="statistics of shape"):
        tok.decode(codes, Scale(scale.mean[..., :1], scale.std[..., :1]))


def test_bad_construction_is_refused(tok):
    with pytest.raises(ConfigError, match="batch_size"):
        TimeSeriesTokenizer(tok.model, tok.scaler, batch_size=0)
    with pytest.raises(ConfigError, match="scaler has 1 channel"):
        TimeSeriesTokenizer(tok.model, Scaler(np.zeros(1), np.ones(1)))


def test_the_pipeline_is_importable_from_the_package():
    from timetok import TimeSeriesTokenizer as exported

    assert exported is TimeSeriesTokenizer
