"""The images kind: per-user folders of pictures and arrays, HDF5 recordings cut into frames,
the split within each user, the CLI report and each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA
from timetok.core.data.images import (
    load_hdf5_frames,
    load_image_folder,
    load_images,
    split_per_user,
)
from timetok.core.errors import DataError

PARRAD = SHARED_DATA / "radar_parrad_sample"
NEEDS_PARRAD = pytest.mark.skipif(not PARRAD.is_dir(), reason=f"no PARRAD sample at {PARRAD}")


# --- fixture writers -------------------------------------------------------------------


def pixels(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_png(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)
    return path


def write_folder(root: Path) -> Path:
    """Three users: ``alice`` (PNGs 1, 2, 10; 20x20), ``bob`` (``.npy`` 0-2, 20x20, each
    with a PNG twin, plus a ``meta.json``) and ``carol`` (three 32x32 JPEGs); a
    ``users.json`` and a hidden file at the root."""
    for i, n in enumerate((10, 2, 1)):
        write_png(root / "alice" / f"{n}.png", pixels((20, 20), i))
    for i in range(3):
        values = np.random.default_rng(10 + i).random((20, 20))
        write_png(root / "bob" / f"{i}.png", (values * 255).astype(np.uint8))
        np.save(root / "bob" / f"{i}.npy", values)
    (root / "bob" / "meta.json").write_text("{}")
    (root / "carol").mkdir()
    for i in range(3):
        Image.fromarray(pixels((32, 32), 20 + i)).save(root / "carol" / f"s{i}.jpg")
    (root / "users.json").write_text("{}")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def write_h5(path: Path, values: np.ndarray | None = None, name: str = "mDoppler",
             steps: int = 70, bins: int = 16, seed: int = 0) -> Path:
    if values is None:
        values = 5000 + 1000 * np.random.default_rng(seed).random((steps, bins))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(name, data=np.asarray(values, dtype=np.float32))
    return path


# --- folders ---------------------------------------------------------------------------


def test_a_folder_per_user(tmp_path):
    root = write_folder(tmp_path / "root")
    data = load_image_folder(root, size=20)
    assert data.user_names == ["alice", "bob", "carol"]
    assert data.files == ["alice/1.png", "alice/2.png", "alice/10.png", "bob/0.npy",
                          "bob/1.npy", "bob/2.npy", "carol/s0.jpg", "carol/s1.jpg",
                          "carol/s2.jpg"]
    assert data.users.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.users.dtype == np.int64 and data.images.dtype == np.float32
    assert data.images.shape == (9, 20, 20) and data.source == str(root)
    assert 0 <= data.images.min() and data.images.max() <= 1
    np.testing.assert_allclose(data.images[0], pixels((20, 20), 2) / 255, atol=1e-6)
    np.testing.assert_allclose(data.images[4], np.random.default_rng(11).random((20, 20)),
                               atol=1e-6)  # the exact .npy values, not the PNG preview
    assert data.counts() == {"alice": 3, "bob": 3, "carol": 3}
    assert data.report == [
        "resized 3 images to 20x20 (from 32x32: 3)",
        "skipped 3 pictures with an .npy of the same name, read instead (bob/0.png, "
        "bob/1.png, bob/2.png)",
        "ignored 2 entries that are not an image (users.json, bob/meta.json)",
    ]


def test_images_are_resized_bilinearly_to_size(tmp_path):
    root = write_folder(tmp_path / "root")
    data = load_image_folder(root, size=8)
    assert data.images.shape == (9, 8, 8)
    expected = Image.fromarray((pixels((20, 20), 2) / 255).astype(np.float32)).resize(
        (8, 8), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(data.images[0], np.asarray(expected), atol=1e-6)
    assert data.report[0] == "resized 9 images to 8x8 (from 20x20: 6, 32x32: 3)"


def test_uint8_arrays_and_16_bit_pngs(tmp_path):
    np.save(write_png(tmp_path / "u" / "a.png", pixels((4, 4), 0)).with_name("b.npy"),
            pixels((4, 4), 1))
    wide = (np.arange(16).reshape(4, 4) * 4000).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "u" / "c.png")
    data = load_image_folder(tmp_path, size=4, resize=False)
    np.testing.assert_allclose(data.images[1], pixels((4, 4), 1) / 255, atol=1e-6)
    np.testing.assert_allclose(data.images[2], wide / 65535, atol=1e-6)


def test_without_resizing_the_images_must_be_size(tmp_path):
    root = write_folder(tmp_path / "root")
    with pytest.raises(DataError, match="images of mixed sizes: alice/1.png is 20x20, "
                                        "carol/s0.jpg is 32x32; pass resize=True"):
        load_image_folder(root, size=20, resize=False)
    for jpg in (root / "carol").iterdir():
        jpg.unlink()
    write_png(root / "carol" / "x.png", pixels((20, 20), 0))
    write_png(root / "carol" / "y.png", pixels((20, 20), 1))
    assert load_image_folder(root, size=20, resize=False).images.shape == (8, 20, 20)
    with pytest.raises(DataError, match="the images are 20x20, not 16x16; pass size=20 or "
                                        "pass resize=True"):
        load_image_folder(root, size=16, resize=False)
    wide = tmp_path / "wide"
    write_png(wide / "u" / "a.png", pixels((4, 6), 0))
    with pytest.raises(DataError, match="are 4x6, not 4x4; they are not square: pass resize"):
        load_image_folder(wide, size=4, resize=False)


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_image_folder(tmp_path / "file.png")
    with pytest.raises(DataError, match="has no user folders .its images lie at the top"):
        load_image_folder(tmp_path)
    write_png(tmp_path / "alice" / "1.png", pixels((4, 4), 0))
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "notes.txt").write_text("")
    with pytest.raises(DataError, match="user folder 'bob' holds no images .* remove the folder"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize("name, content, fragment", [
    ("broken.png", b"\x89PNG not really", "alice/broken.png: not a readable image"),
    ("broken.npy", b"not an array", "alice/broken.npy: not a readable .npy array"),
    ("cube.npy", np.zeros((2, 4, 4)), r"alice/cube.npy: an array of shape \(2, 4, 4\), not a "
                                      "2-D image"),
    ("nan.npy", np.full((4, 4), np.nan), "alice/nan.npy: 16 NaN or infinite values"),
    ("big.npy", np.full((4, 4), 2.0), r"alice/big.npy: values outside \[0, 1\] \(2 to 2\)"),
    ("ints.npy", np.zeros((4, 4), dtype=np.int32), "alice/ints.npy: an array of int32"),
])
def test_bad_image_files_are_named(tmp_path, name, content, fragment):
    write_png(tmp_path / "alice" / "0.png", pixels((4, 4), 0))
    if isinstance(content, bytes):
        (tmp_path / "alice" / name).write_bytes(content)
    else:
        np.save(tmp_path / "alice" / name, content)
    with pytest.raises(DataError, match=fragment):
        load_image_folder(tmp_path, size=4)


# --- HDF5 recordings -------------------------------------------------------------------


def test_hdf5_frames(tmp_path):
    values = np.arange(70 * 16, dtype=np.float64).reshape(70, 16)  # ramps along both axes
    b = write_h5(tmp_path / "rec10.h5", values)
    a = write_h5(tmp_path / "rec2.h5", seed=1, steps=40)
    data = load_hdf5_frames([b, a], width=16, size=16)
    assert data.user_names == ["rec2", "rec10"]
    assert data.users.tolist() == [0, 0, 1, 1, 1, 1]
    assert data.files[2:] == ["rec10.h5[0:16]", "rec10.h5[16:32]", "rec10.h5[32:48]",
                              "rec10.h5[48:64]"]
    assert data.images.shape == (6, 16, 16) and data.images.dtype == np.float32
    low, high = np.percentile(values, [1, 99.9])
    expected = np.clip((values[16:32] - low) / (high - low), 0, 1).T[::-1]
    np.testing.assert_allclose(data.images[3], expected, atol=1e-6)
    frame = data.images[3]  # rows: Doppler, the highest bin on top; columns: time
    assert (frame[0] > frame[-1]).all() and (frame[:, -1] > frame[:, 0]).all()
    assert data.report[1] == ("rec10.h5: 70 steps x 16 bins -> 4 frames, last 6 steps "
                              f"unused; percentiles 1 and 99.9 ({low:,.1f}, {high:,.1f}) "
                              "scaled to 0 and 1")
    assert data.source == str(tmp_path)


def test_hdf5_stride_and_resizing(tmp_path):
    path = write_h5(tmp_path / "rec.h5")
    data = load_hdf5_frames(path, width=20, stride=10, size=8)
    assert data.images.shape == (6, 8, 8)  # starts 0, 10, ..., 50
    assert data.files[-1] == "rec.h5[50:70]" and data.report[-1] == "resized 6 frames to 8x8"


def test_bad_hdf5_files(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataError, match="text.h5: not an HDF5 file"):
        load_hdf5_frames(tmp_path / "text.h5")
    other = write_h5(tmp_path / "other.h5", name="spectrum")
    with pytest.raises(DataError, match="other.h5 has no dataset 'mDoppler' .it holds: "
                                        "spectrum.; set the dataset option"):
        load_hdf5_frames(other)
    assert len(load_hdf5_frames(other, dataset="spectrum", width=16)) == 4
    cube = write_h5(tmp_path / "cube.h5", np.zeros((4, 4, 4)))
    with pytest.raises(DataError, match=r"cube.h5: dataset 'mDoppler' is float32 of shape "
                                        r"\(4, 4, 4\), expected a 2-D map"):
        load_hdf5_frames(cube)
    short = write_h5(tmp_path / "short.h5", steps=100)
    with pytest.raises(DataError, match="short.h5: 100 time steps, fewer than one frame of "
                                        "width 128; lower width"):
        load_hdf5_frames(short)
    values = np.ones((40, 8))
    values[7, 3] = np.nan
    with pytest.raises(DataError, match="nan.h5: dataset 'mDoppler' holds 1 NaN or infinite "
                                        "values .the first at time step 7, bin 3."):
        load_hdf5_frames(write_h5(tmp_path / "nan.h5", values), width=8)
    with pytest.raises(DataError, match="flat.h5: percentiles 1 and 99.9 are both 1"):
        load_hdf5_frames(write_h5(tmp_path / "flat.h5", np.ones((40, 8))), width=8)
    with pytest.raises(DataError, match="recording not found"):
        load_hdf5_frames(tmp_path / "missing.h5")
    with pytest.raises(DataError, match="two recordings are named 'rec'"):
        load_hdf5_frames([write_h5(tmp_path / "a" / "rec.h5"), write_h5(tmp_path / "rec.h5")])
    with pytest.raises(DataError, match="width must be a whole number >= 1"):
        load_hdf5_frames(other, width=0)


@NEEDS_PARRAD
def test_the_real_parrad_recordings():
    data = load_images("parrad", data_dir=SHARED_DATA)
    assert data.user_names == ["set1WR14", "set1WR68"]
    assert data.counts() == {"set1WR14": 6678 // 128, "set1WR68": 6679 // 128}
    assert data.images.shape == (104, 128, 128)
    assert data.images.min() == 0 and data.images.max() == 1
    profile = data.images.mean(axis=(0, 2))  # the static clutter: zero Doppler, mid-image
    assert int(np.argmax(profile)) == 63


# --- splits ----------------------------------------------------------------------------


def test_split_within_each_user():
    users = np.repeat(np.arange(4), [3, 10, 25, 7])
    split = split_per_user(users, val=0.1, test=0.2, seed=3)
    joined = np.concatenate(list(split.values()))
    assert sorted(joined.tolist()) == list(range(len(users)))  # disjoint and covering
    for part in split.values():
        assert part.dtype == np.int64 and (np.diff(part) > 0).all()
        assert set(users[part].tolist()) == {0, 1, 2, 3}
    assert [int((users[split["test"]] == u).sum()) for u in range(4)] == [1, 2, 5, 1]
    assert [int((users[split["val"]] == u).sum()) for u in range(4)] == [1, 1, 3, 1]
    again = split_per_user(users, val=0.1, test=0.2, seed=3)
    assert all(np.array_equal(split[s], again[s]) for s in split)
    other = split_per_user(users, val=0.1, test=0.2, seed=4)
    assert not np.array_equal(split["test"], other["test"])


def test_bad_splits():
    users = np.array([0, 0, 0, 1, 1])
    with pytest.raises(DataError, match="user 'bob' has 2 images; .* add images of this user "
                                        "or leave it out"):
        split_per_user(users, names=["alice", "bob"])
    with pytest.raises(DataError, match="user 1 has 2 images"):
        split_per_user(users)
    with pytest.raises(DataError, match="users must be a non-empty 1-D array"):
        split_per_user(np.array([-1, 0, 0]))
    with pytest.raises(DataError, match=r"val must lie in \[0, 1\)"):
        split_per_user(users, val=1)
    with pytest.raises(DataError, match="val . test is 1, leaving nothing to train on"):
        split_per_user(users, val=0.5, test=0.5)


# --- by name and the CLI ---------------------------------------------------------------


def test_load_images_by_name_or_path(tmp_path, isolated_env):
    root = write_folder(tmp_path / "root")
    by_path = load_images(root, size=20)
    by_name = load_images("image-folder", data_path=root, size=20)
    np.testing.assert_array_equal(by_path.images, by_name.images)
    with pytest.raises(DataError, match="needs a file: pass data_path"):
        load_images("image-folder")
    with pytest.raises(DataError, match="holds series, not images"):
        load_images("etth1")
    with pytest.raises(DataError, match="radar_parrad_sample not found"):
        load_images("parrad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .h5 recordings"):
        load_images("parrad", data_path=tmp_path / "empty")


def test_data_info_of_an_image_folder(cli, tmp_path):
    root = write_folder(tmp_path / "root")
    result = cli("data", "info", "image-folder", "--data-path", root, "--json")
    assert result.rc == 0, result.err
    report = json.loads(result.out)
    assert report["users"] == {"alice": 3, "bob": 3, "carol": 3}
    assert report["images_per_user"] == {"min": 3, "median": 3.0, "max": 3}
    assert report["image_size"] == [128, 128] and len(report["report"]) == 3
    result = cli("data", "info", "image-folder", "--data-path", root)
    assert result.out.startswith("image-folder (images): 9 images of 128x128 from 3 users")
    (root / "dave").mkdir()
    cli("data", "info", "image-folder", "--data-path", root).assert_error(
        "user folder 'dave' holds no images")


@NEEDS_PARRAD
def test_data_info_parrad(cli):
    result = cli("data", "info", "parrad", "--data-dir", SHARED_DATA)
    assert result.rc == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("parrad (images): 104 images of 128x128 from 2 users")
    assert "frames per file: set1WR14.h5: 52, set1WR68.h5: 52" in lines
    assert lines[-1].startswith("licence MIT; cite imec PARRAD")


def test_split_per_user_can_hold_out_validation_only():
    users = np.repeat([0, 1, 2], [10, 20, 2])
    parts = split_per_user(users, val=0.2, test=0, seed=3)
    assert len(parts["test"]) == 0
    assert sorted(np.r_[parts["train"], parts["val"]]) == list(range(len(users)))
    assert np.bincount(users[parts["val"]], minlength=3).tolist() == [2, 4, 1]
    np.testing.assert_array_equal(parts["val"], split_per_user(users, 0.2, 0, seed=3)["val"])
    with pytest.raises(DataError, match="needs 2 or more"):
        split_per_user(np.array([0, 0, 1]), val=0.2, test=0)
