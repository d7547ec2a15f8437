"""Training SeqSetVAE: the data module's splits and what travels with a model (data.json),
pretraining's logs, the finetuning losses and freeze policies, the key report and its 95 %
rule, and a pretrained model of another vocabulary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.core.data.test_records import many_stays, statics, write_physionet
from timetok.core.data.records import collate_sets
from timetok.core.errors import CheckpointError, ConfigError, DataError
from timetok.core.model_folder import read_data_section
from timetok.core.train.runner import RunOptions, train_and_export
from timetok.setvae.artifacts import (
    RecordsSettings,
    Vocabulary,
    first_stays,
    load_scaler,
    load_split,
    parse_bucket,
)
from timetok.setvae.data import RecordsDataModule, load_splits
from timetok.setvae.model import SeqSetVAE, active_units
from timetok.setvae.modules import SetVAEFinetuneModule, focal_loss, posterior_sums, summarise
from timetok.setvae.recipe import (
    finetune_module,
    load_pretrained,
    pretrain_module,
    resolve_pos_weight,
)

# A model of a few thousand parameters: a step takes a few milliseconds on a CPU.
TINY = dict(d_model=16, latent_dim=4, set_layers=1, n_heads=2, seq_layers=1, d_ff=32,
            dropout=0.0, beta_warmup_steps=2)
QUICK = RunOptions(max_steps=4, accelerator="cpu", devices="1", progress=False,
                   checkpoint_every=1000)


def icu_stays(n: int = 60, positive: float = 0.3, seed: int = 0,
              variables: tuple[str, ...] = ("HR", "Temp", "MAP", "Glucose")) -> dict:
    """``n`` PhysioNet-style stays (every tenth in set-b, the next in set-c, the rest in
    set-a) of 3 to 10 times over 48 h, 1 to 3 variables a time, a heart rate that runs
    higher for the positive stays; ``{"stays", "outcomes"}`` for :func:`write_physionet`."""
    rng = np.random.default_rng(seed)
    records: dict = {s: {} for s in "abc"}
    outcomes: dict = {s: [] for s in "abc"}
    for i in range(n):
        record, label = str(140000 + i), int(rng.random() < positive)
        lines = statics(record, age=int(rng.integers(20, 90)), gender=int(rng.integers(0, 2)))
        for minute in np.sort(rng.choice(48 * 60, int(rng.integers(3, 11)), replace=False)):
            for name in rng.choice(variables, int(rng.integers(1, 4)), replace=False):
                value = {"HR": 80 + 25 * label, "Temp": 37, "MAP": 80,
                         "Glucose": 120}[name] + rng.normal(0, 5)
                lines.append(f"{minute // 60:02d}:{minute % 60:02d},{name},{value:.1f}")
        part = {8: "b", 9: "c"}.get(i % 10, "a")
        records[part][record] = lines
        outcomes[part].append((record, label))
    return {"stays": records, "outcomes": outcomes}


def write_icu(root: Path, n: int = 60, seed: int = 0) -> Path:
    """A PhysioNet 2012 folder (official layout) of :func:`icu_stays`."""
    stays = icu_stays(n, seed=seed)
    return write_physionet(root, stays["stays"], stays["outcomes"])


@pytest.fixture(autouse=True)
def _own_cache(isolated_env):
    """Every test caches into its own empty folder."""


def datamodule(path: Path, **kwargs) -> RecordsDataModule:
    settings = dict(data_path=str(path), batch_size=8, bucket=1.0) | kwargs
    return RecordsDataModule(**settings)


@pytest.fixture(scope="module")
def icu(tmp_path_factory) -> Path:
    return write_icu(tmp_path_factory.mktemp("icu") / "p12")


@pytest.fixture(scope="module")
def pretrained(icu, tmp_path_factory) -> Path:
    """A pretrained folder (4 steps) of the tiny model on ``icu``; treat it as read-only."""
    root = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        data = datamodule(icu)
        torch.manual_seed(0)
        train_and_export(pretrain_module(data.load(), **TINY), data, root / "pre", QUICK)
    return root / "pre"


# --- the data module and what travels with a model -----------------------------------------


def test_the_data_module_exports_scaler_vocabulary_settings_split_and_report(icu, tmp_path):
    data = datamodule(icu, split=2)
    splits = data.load()
    assert {k: len(v) for k, v in splits.sets.items()} == {"train": 46, "val": 7, "test": 7}
    summary = data.save_artifacts(tmp_path)
    assert summary["stays"] == {"train": 46, "val": 7, "test": 7} and summary["split"] == 2
    vocabulary = Vocabulary.load(tmp_path)
    assert len(vocabulary.variables) == 36 and vocabulary.statics[0] == "Age"
    ids = load_split(tmp_path)
    assert ids.pop("split") == 2
    assert sorted(sum(ids.values(), [])) == sorted(splits.records.ids.tolist())
    assert ids["test"] == splits.records.ids[splits.index["test"]].tolist()
    sections = json.loads((tmp_path / "data.json").read_text())
    assert set(sections) == {"records_scaler", "variables", "records", "split"}
    assert sections["records"] | {"source": ""} == {
        "dataset": "physionet2012", "source": "", "sets": None, "limit": None, "split": 2,
        "bucket": 1.0}
    report = json.loads((tmp_path / "load_report.json").read_text())
    assert report["stays_kept"] == 60
    scaler = read_data_section(tmp_path, "records_scaler")
    train = splits.records.observations(splits.index["train"])
    hr = vocabulary.variables.index("HR")
    rows = train[splits.records.variables[train] == hr]
    assert scaler["series"]["mean"][hr] == pytest.approx(splits.records.values[rows].mean(),
                                                         rel=1e-5)


def test_folders_exported_before_data_json_still_load(icu, tmp_path):
    """Older exports kept each section in a file of its own."""
    data = datamodule(icu)
    splits = data.load()
    (tmp_path / "records_scaler.json").write_text(json.dumps(splits.scaler.to_dict()))
    (tmp_path / "variables.json").write_text(json.dumps(dataclasses.asdict(splits.vocabulary)))
    (tmp_path / "records.json").write_text(json.dumps(dataclasses.asdict(splits.settings)))
    assert Vocabulary.load(tmp_path) == splits.vocabulary
    assert RecordsSettings.load(tmp_path) == splits.settings
    np.testing.assert_array_equal(load_scaler(tmp_path).series.mean, splits.scaler.series.mean)
    assert load_split(tmp_path, required=False) is None


def test_a_folder_without_its_scaler_or_with_a_broken_section_is_refused(icu, tmp_path):
    data = datamodule(icu)
    data.load()
    data.save_artifacts(tmp_path)
    sections = json.loads((tmp_path / "data.json").read_text())
    del sections["records_scaler"]
    sections["variables"] = {"variables": "HR"}
    (tmp_path / "data.json").write_text(json.dumps(sections))
    with pytest.raises(CheckpointError, match=r"no records scaler \(section 'records_scaler' "
                                              r"of data.json\)"):
        load_scaler(tmp_path)
    with pytest.raises(CheckpointError, match=r"section 'variables' of .*data.json must hold "
                                              "lists of names"):
        Vocabulary.load(tmp_path)


def test_splits_are_the_same_on_every_load_and_limit_cuts_before_splitting(icu):
    first, again = datamodule(icu).load(), load_splits(data_path=str(icu), bucket="exact")
    for part in ("train", "val", "test"):
        assert first.ids()[part].tolist() == again.ids()[part].tolist()
    limited = load_splits(data_path=str(icu), limit=30)
    assert limited.records.ids.tolist() == first.records.ids[:30].tolist()
    assert sum(len(i) for i in limited.index.values()) == 30
    assert first_stays(first.records, 1000) is first.records
    one = first_stays(first.records, 1)
    assert one.offsets.tolist() == first.records.offsets[:2].tolist()
    assert len(one.values) == first.records.counts()[0]


@pytest.mark.parametrize("settings, message", [
    (dict(bucket="abc"), "bucket must be 'exact' or a number of hours > 0, got 'abc'"),
    (dict(bucket=-1), "bucket must be"),
    (dict(split=5), "split must be 0 to 4, got 5"),
    (dict(limit=0), "limit must be a whole number >= 1, got 0"),
    (dict(limit=5), "too few for an 80/10/10 split"),
])
def test_bad_data_settings(icu, settings, message):
    with pytest.raises((ConfigError, DataError), match=message):
        load_splits(data_path=str(icu), **settings)


def test_a_bucket_in_words_or_numbers():
    assert parse_bucket("exact") == "exact"
    assert parse_bucket("1.5") == parse_bucket(1.5) == 1.5
    with pytest.raises(ConfigError, match="got True"):
        parse_bucket(True)


def test_the_vocabulary_maps_other_stays_by_name(tmp_path):
    from timetok.core.data.records import load_records

    physionet = Vocabulary(["Glucose", "HR", "Temp", "pH"], ["Age", "Gender"])
    records = load_records("records-csv", data_path=many_stays(tmp_path / "t", n=20))
    mapped = physionet.remap(records)
    assert mapped.variable_names == physionet.variables
    names = np.array(records.variable_names)[records.variables]
    assert (np.array(physionet.variables)[mapped.variables] == names).all()
    np.testing.assert_array_equal(mapped.statics[:, 0], records.statics[:, 0])
    assert np.isnan(mapped.statics[:, 1]).all()
    with pytest.raises(DataError, match="the stays hold HR, which the model does not read"):
        Vocabulary(["Temp", "pH"], ["Age"]).remap(records)
    with pytest.raises(DataError, match="reads 4 variables .* holds 3"):
        physionet.check_same(Vocabulary(records.variable_names, ["Age"]), "model", "data")


# --- pretraining -------------------------------------------------------------------------


def test_pretraining_logs_losses_beta_active_units_and_kl_per_dimension(pretrained):
    with (pretrained / "history.csv").open() as handle:
        header, row = handle.read().splitlines()[:2]
    values = dict(zip(header.split(","), map(float, row.split(",")), strict=True))
    for name in ("train_loss", "train_recon_value", "train_recon_observed", "train_kl",
                 "train_kl_loss", "beta", "val_active_units", "val_kl_d00", "val_kl_d03"):
        assert name in values, name
    # validation weighs the KL by the final beta (0.1), whatever the warm-up's step
    assert values["val_loss"] == pytest.approx(
        values["val_recon_value"] + values["val_recon_observed"] + 0.1 * values["val_kl_loss"],
        rel=1e-4)
    summary = json.loads((pretrained / "training.json").read_text())
    assert summary["monitor"] == "val_loss" and summary["throughput_unit"] == "stays"
    assert len(summary["kl_per_dim"]) == 4 and 0 <= summary["active_units"] <= 4
    assert SeqSetVAE.from_pretrained(pretrained).head is None


def test_active_units_from_summed_moments_match_the_models_count(icu):
    data = datamodule(icu).load()
    torch.manual_seed(0)
    model = pretrain_module(data, **TINY).model.eval()
    sums, means = None, []
    for start in (0, 20, 40):
        batch = collate_sets([data.sets["train"][i] for i in range(start, start + 6)])
        with torch.no_grad():
            out = model.pretrain(batch)
            post = model.encode(batch)
        means.append(post.mu[post.valid])
        part = posterior_sums(model, batch, out.kl_per_dim)
        sums = part if sums is None else sums + part
    stacked = torch.cat(means)
    for threshold in (1e-4, 0.01, 0.05):
        expected = int((stacked.var(dim=0) > threshold).sum())
        assert summarise(sums, threshold)[0] == expected
    assert summarise(sums)[0] == active_units(stacked)


# --- finetuning --------------------------------------------------------------------------


def test_head_only_trains_the_head_and_leaves_every_frozen_tensor_as_it_was(pretrained, icu,
                                                                            tmp_path):
    data = datamodule(icu)
    module = finetune_module(pretrained, data.load(), lr=1e-2, feature="mu_logvar_gated")
    trainable = {n.split(".")[0] for n, p in module.model.named_parameters() if p.requires_grad}
    assert trainable == {"head", "wide", "feature"}
    sizes = {part: sum(p.numel() for n, p in module.model.named_parameters()
                       if n.startswith(part + ".")) for part in trainable}
    total = sum(p.numel() for p in module.model.parameters())
    assert module.trainable_share == pytest.approx(sum(sizes.values()) / total)
    module.train()
    assert not module.model.set_encoder.training and module.model.head.training
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    train_and_export(module, data, tmp_path / "ft", QUICK)
    after = SeqSetVAE.from_pretrained(tmp_path / "ft").state_dict()
    pretrained_state = SeqSetVAE.from_pretrained(pretrained).state_dict()
    for key, tensor in after.items():
        if key.startswith(("set_encoder", "sequence", "decoder")):
            assert torch.equal(tensor, pretrained_state[key]), key
    for key in ("head.0.weight", "wide.weight"):
        assert not torch.equal(after[key], before[key]), key


@pytest.mark.parametrize("policy, trains", [
    ("partial", {"sequence", "head", "wide"}),
    ("none", {"set_encoder", "sequence", "head", "wide"}),
    ("full", {"set_encoder", "sequence", "head", "wide"}),  # the old name of none
    ("head,sequence", {"set_encoder"}),
])
def test_the_freeze_policies(pretrained, icu, policy, trains):
    module = finetune_module(pretrained, datamodule(icu).load(), freeze=policy)
    trainable = {n.split(".")[0] for n, p in module.model.named_parameters() if p.requires_grad}
    assert trainable == trains  # the decoder never trains here
    rows = {row["part"]: row for row in module.table}
    assert rows["decoder"]["trainable"] == 0


def test_the_reference_size_trains_under_5_percent_head_only():
    from timetok.setvae.model import SeqSetVAEConfig

    config = dataclasses.asdict(SeqSetVAEConfig(n_variables=36, n_statics=5, n_classes=2,
                                                 summaries=True))
    assert SetVAEFinetuneModule(config, freeze="head-only").trainable_share < 0.05


def damaged(pretrained: Path, folder: Path, rename: str = "sequence.") -> Path:
    """A copy of ``pretrained`` whose ``rename`` tensors carry an older version's names."""
    from safetensors.torch import load_file, save_file

    folder.mkdir()
    for name in ("config.json", "data.json"):
        (folder / name).write_bytes((pretrained / name).read_bytes())
    state = load_file(pretrained / "model.safetensors")
    save_file({k.replace(rename, "seq_model.") if k.startswith(rename) else k: v
               for k, v in state.items()}, folder / "model.safetensors")
    return folder


def test_the_key_report_and_the_95_percent_rule(pretrained, icu, tmp_path):
    data = datamodule(icu).load()
    module = finetune_module(pretrained, data)
    lines = module.load_report.lines()
    assert sum(line.startswith("matched") for line in lines) == len(
        SeqSetVAE.from_pretrained(pretrained).state_dict())
    assert "missing     head.0.weight" in lines
    old = damaged(pretrained, tmp_path / "old")
    with pytest.raises(CheckpointError, match=r"backbone's \d+ tensors \(\d+ %, 95 % needed\)"
                       r".*allow_partial=True") as caught:
        finetune_module(old, data)
    details = caught.value.details.splitlines()
    assert any(line.startswith("unexpected  seq_model.") for line in details)
    assert any(line.startswith("missing     sequence.") for line in details)
    module = finetune_module(old, data, allow_partial=True)
    state, source = module.model.state_dict(), SeqSetVAE.from_pretrained(pretrained).state_dict()
    loaded, new = "set_encoder.posterior.weight", "sequence.project.weight"
    assert torch.equal(state[loaded], source[loaded])
    assert not torch.equal(state[new], source[new])  # not loaded: a new initialisation
    report = load_pretrained(SeqSetVAE.from_pretrained(pretrained), pretrained)
    assert report.clean


def test_a_pretrained_model_of_another_vocabulary_is_refused(pretrained, tmp_path):
    other = load_splits("records-csv", data_path=str(many_stays(tmp_path / "t", n=60)))
    with pytest.raises(DataError, match=r"reads 36 variables \(ALP, .*\), records-csv holds 3 "
                                        r"\(HR, Temp, pH\): another variable vocabulary"):
        finetune_module(pretrained, other)


def test_scratch_and_impossible_combinations(pretrained, icu):
    data = datamodule(icu).load()
    with pytest.raises(ConfigError, match="needs a pretrained folder, model=PATH, or "
                                          "scratch=True"):
        finetune_module(None, data)
    with pytest.raises(ConfigError, match="allow_partial=True .* scratch=True .* drop one"):
        finetune_module(pretrained, data, scratch=True, allow_partial=True)
    with pytest.raises(ConfigError, match="freeze='head-only' with scratch=True .* use "
                                          "freeze='none'"):
        finetune_module(pretrained, data, scratch=True, freeze="head-only")
    with pytest.raises(ConfigError, match="freeze takes a policy .none, head-only, partial. "
                                          "or a comma list of parts .*, got 'everything'"):
        finetune_module(pretrained, data, freeze="everything")
    with pytest.raises(ConfigError, match="leave d_model out"):
        finetune_module(pretrained, data, d_model=8)
    scratch = finetune_module(pretrained, data, scratch=True)
    assert scratch.load_report is None and scratch.trainable_share > 0.5
    source = SeqSetVAE.from_pretrained(pretrained).state_dict()
    key = "set_encoder.posterior.weight"
    assert not torch.equal(scratch.model.state_dict()[key], source[key])
    sized = finetune_module(None, data, scratch=True, **TINY)
    assert sized.model.config.d_model == 16 and sized.model.config.n_classes == 2


def test_the_losses_and_the_positive_weight(icu, tmp_path):
    logits, labels = torch.randn(12, 2), torch.arange(12) % 3 // 2
    weight = torch.tensor([1.0, 3.0])
    torch.testing.assert_close(focal_loss(logits, labels, 0.0, weight),
                               torch.nn.functional.cross_entropy(logits, labels, weight=weight))
    assert focal_loss(logits, labels, 2.0, weight) < focal_loss(logits, labels, 0.0, weight)
    assert resolve_pos_weight("auto", np.array([0, 0, 0, 1])) == 3.0
    assert resolve_pos_weight("2.5", np.array([0, 1])) == 2.5
    with pytest.raises(ConfigError, match="pos_weight must be a number > 0 or 'auto', got 'x'"):
        resolve_pos_weight("x", np.array([0, 1]))
    with pytest.raises(DataError, match="needs positive training stays"):
        resolve_pos_weight("auto", np.array([0, 0]))
    data = datamodule(icu).load()
    module = finetune_module(None, data, scratch=True, pos_weight="auto", loss="focal", **TINY)
    train = data.records.labels[data.index["train"]]
    assert module.hparams.pos_weight == pytest.approx((train == 0).sum() / train.sum())
    with pytest.raises(ConfigError, match="pos_weight must be a number > 0"):
        finetune_module(None, data, scratch=True, pos_weight=-1, **TINY)
    with pytest.raises(ConfigError, match="loss must be one of ce, focal"):
        finetune_module(None, data, scratch=True, loss="hinge", **TINY)


def test_labels_other_than_0_and_1_are_refused(tmp_path):
    folder = many_stays(tmp_path / "t", n=60)
    labels = (folder / "labels.csv").read_text().replace(",1\n", ",2\n")
    (folder / "labels.csv").write_text(labels)
    data = load_splits("records-csv", data_path=str(folder))
    with pytest.raises(DataError, match=r"reads labels 0 and 1, records-csv has \[0, 2\]"):
        finetune_module(None, data, scratch=True, **TINY)


def test_finetuning_on_stays_read_otherwise_warns(pretrained, icu, caplog):
    with caplog.at_level("WARNING", logger="timetok.setvae.recipe"):
        finetune_module(pretrained, datamodule(icu, split=1, bucket="exact").load())
    assert "split 0 -> 1, bucket 1.0 -> 'exact'" in caplog.text
