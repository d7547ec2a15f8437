"""Every command and Python block of README.md and docs/*.md runs, at tiny settings.

How a document is read (the conventions a writer follows):

- Fenced blocks run in the order written, all of one document in one fresh working folder
  (which holds a ``configs`` link to the repository's ``configs/``), with
  ``TIMETOK_THREADS=1``. Blocks fenced as ``text``, ``console``, ``yaml``, ``json`` or
  ``csv`` are shown, not run; a block with no language is refused.
- ``bash`` blocks: ``\\`` continuations are joined and ``#`` comments dropped; then each
  line is one of
  - ``timetok ...`` (or ``python -m timetok ...``): run in this process through
    ``timetok.cli.main``; it must exit 0. Training commands get the tiny budget of
    ``TINY`` appended (click keeps an option's last value, so ``--max-steps 2`` caps a
    documented ``--n-epochs 100``), as do the commands listed there with size flags.
  - ``make TARGET``: the target must exist in the Makefile (not run).
  - ``pip install ...``: its ``-c``/``-r`` files and local paths must exist, and an extra
    (``.[classify]``) must be declared in pyproject.toml (not run).
  - ``git ...``: a git subcommand a user would type (not run).
  - ``python benchmarks/NAME.py ...``: the script must exist and every ``configs/...``
    path in the line must exist and load into its stage's config class (not run).
  - ``export NAME=value``: sets the variable for the rest of the document, except
    ``TIMETOK_DATA_DIR`` and ``TIMETOK_THREADS``, which the test keeps as its own.
  Any other line fails the test: fence it as ``text`` if it is not to be run.
- ``python`` blocks run in one namespace per document, after the blocks before them (so a
  model a command trained is there); write them to run as they stand, on small data.
- Data: ``TIMETOK_DATA_DIR`` is a folder linking every file of ``../shared/data`` under its
  official name (beside the bundled ETTh1 and ECG200); ``--data-dir`` given in a command
  or a ``--config`` file is pointed there too. A document that names a dataset not found
  there (``--dataset``, a config's ``dataset``, ``data info/fetch NAME``,
  ``forecast predict --input NAME``) is skipped, with the reason. ``timetok data fetch
  NAME`` runs against that folder (the file is already there, so only its checksum is
  checked); a dataset downloaded as several files is only checked to be fetchable.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SYSTEM_DOCS = ("tokenizer", "forecast", "mae", "setvae", "doppler", "data", "training")
SHOWN = {"text", "console", "yaml", "json", "csv"}
RUN_FLAGS = ["--no-progress", "--accelerator", "cpu", "--devices", "1", "--num-nodes", "1",
             "--strategy", "auto", "--max-steps", "2"]
EPOCH = ["--n-epochs", "1"]
# Appended to each (group, command): a budget of two steps and, where a model or its data
# would take long on two cores, smaller sizes.
TINY: dict[tuple[str, str], list[str]] = {
    ("tokenizer", "train"): [*RUN_FLAGS, *EPOCH, "--val-stride", "256", "--batch-size", "8"],
    ("tokenizer", "evaluate"): ["--stride", "64"],
    ("forecast", "pretrain"): [*RUN_FLAGS, *EPOCH, "--val-stride", "256", "--batch-size", "8"],
    ("forecast", "finetune"): [*RUN_FLAGS, *EPOCH, "--val-stride", "256", "--batch-size", "8",
                               "--no-trained-skip"],
    ("forecast", "evaluate"): ["--stride", "64"],
    ("forecast", "calibrate"): [],
    ("mae", "pretrain"): [*RUN_FLAGS, *EPOCH, "--batch-size", "32"],
    ("mae", "finetune"): [*RUN_FLAGS, *EPOCH, "--batch-size", "32"],
    ("mae", "evaluate"): ["--baseline", "nearest-neighbour"],
    ("setvae", "pretrain"): [*RUN_FLAGS, *EPOCH, "--sets", "a", "--limit", "400"],
    ("setvae", "finetune"): [*RUN_FLAGS, *EPOCH, "--sets", "a", "--limit", "400"],
    ("doppler", "simulate"): ["--users", "4", "--per-user", "10", "--size", "32"],
    ("doppler", "train"): [*RUN_FLAGS, "--tokenizer-epochs", "1", "--prior-epochs", "1",
                           "--image-size", "32", "--channels", "8,16", "--codebook-size", "32",
                           "--d-model", "32", "--n-layers", "1", "--n-heads", "2",
                           "--d-ff", "64", "--batch-size", "8"],
    ("doppler", "generate"): ["--samples", "2"],
    ("doppler", "evaluate"): ["--classifier-epochs", "1", "--samples", "2"],
}
GIT_COMMANDS = {"clone", "pull", "checkout", "switch", "log", "status", "fetch"}


@dataclass
class Block:
    lang: str
    code: str
    line: int  # where the block starts in its document


def read_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```\s*$", text, re.M | re.S):
        found.append(Block(match.group(1).lower(), match.group(2),
                           text.count("\n", 0, match.start()) + 1))
    return found


def shell_lines(code: str) -> list[list[str]]:
    """A bash block -> its command lines as words (continuations joined, comments gone)."""
    joined = re.sub(r"\\\n", " ", code)
    return [words for line in joined.splitlines()
            if (words := shlex.split(line, comments=True))]


# --- data ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One folder linking every file of ../shared/data under its official name, as a user's
    TIMETOK_DATA_DIR would hold them."""
    from timetok.core.data.registry import datasets

    folder = tmp_path_factory.mktemp("timetok-data")
    names = {spec.filename for spec in datasets().values() if spec.filename}
    if SHARED_DATA.is_dir():
        for path in [*SHARED_DATA.glob("*"), *SHARED_DATA.glob("*/*")]:
            if path.name in names and not (folder / path.name).exists():
                (folder / path.name).symlink_to(path)
    return folder


def named_datasets(argv: list[str], command, params: dict) -> list[str]:
    """The registered datasets a command line reads (by flag, config file or argument)."""
    from timetok.core.cli_options import read_yaml
    from timetok.core.data.registry import datasets

    values = [params.get("dataset"), params.get("name")]
    if argv[:2] == ["forecast", "predict"]:
        values.append(params.get("input"))
    if params.get("config_file"):
        config = read_yaml(ROOT / params["config_file"], "config file")
        if not any(p.startswith("--dataset") or p == "--dset" for p in argv):
            values.append(config.get("dataset"))
    known = datasets()
    return [name.strip() for value in values if isinstance(value, str)
            for name in value.split(",") if name.strip().lower() in known]


def missing_data(name: str, folder: Path) -> bool:
    from timetok.core.data.registry import BUNDLED_DIR, get_spec

    spec = get_spec(name)
    if spec.filename is None:
        return False
    return not ((folder / spec.filename).exists() or (BUNDLED_DIR / spec.filename).exists())


# --- commands -----------------------------------------------------------------------------


def find_command(argv: list[str]):
    """The click command of ``timetok ARGV`` and the words naming it."""
    import click

    from timetok.cli import cli

    command, path = cli, []
    for word in argv:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command, path = command.commands[word], [*path, word]
    assert not isinstance(command, click.Group), f"'timetok {' '.join(argv)}' names no command"
    return command, path


def parse(command, argv: list[str], path: list[str]) -> dict:
    ctx = command.make_context(" ".join(path), argv[len(path):], resilient_parsing=True)
    return ctx.params


def timetok_argv(words: list[str]) -> list[str] | None:
    if words[0] == "timetok":
        return words[1:]
    if words[:3] == ["python", "-m", "timetok"]:
        return words[3:]
    return None


def tiny_argv(argv: list[str], folder: Path) -> list[str]:
    command, path = find_command(argv)
    params = parse(command, argv, path)
    extra = list(TINY.get(tuple(path), []))
    config = {}
    if params.get("config_file"):
        from timetok.core.cli_options import read_yaml

        config = read_yaml(ROOT / params["config_file"], "config file")
    if tuple(path) == ("forecast", "finetune"):
        extra += horizon_steps(params, config)
    takes_data_dir = any(p.name == "data_dir" for p in command.params)
    if takes_data_dir and (params.get("data_dir") or config.get("data_dir")):
        extra += ["--data-dir", str(folder)]
    return [*argv, *extra]


def horizon_steps(params: dict, config: dict) -> list[str]:
    """Two steps for each horizon a finetuning trains (its own --horizon-steps would win
    over --max-steps)."""
    given = params.get("horizon") or config.get("horizon") or 96
    given = given if isinstance(given, list | tuple) else [given]
    horizons = [h for value in given for h in str(value).replace(",", " ").split()]
    return ["--horizon-steps", ",".join(f"{h}:2" for h in horizons)]


def stage_fetch(argv: list[str], folder: Path) -> bool:
    """Make ``data fetch NAME`` find its file where it saves it; False where the dataset is
    downloaded as several files (checked to be fetchable instead of run)."""
    from timetok.core.data.registry import get_spec

    command, path = find_command(argv)
    params = parse(command, argv, path)
    spec = get_spec(params["name"])
    assert spec.url, f"'timetok {' '.join(argv)}': {spec.name} has no download"
    if spec.files:
        return False
    dest = Path(params.get("data_dir") or folder) / spec.filename
    source = folder / spec.filename
    if not source.exists():
        from timetok.core.data.registry import BUNDLED_DIR

        source = BUNDLED_DIR / spec.filename
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(source)
    return True


def run_timetok(argv: list[str], capsys) -> None:
    from timetok.cli import main

    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, (f"'timetok {shlex.join(argv)}' exited {rc}\nstderr: {err}\n"
                     f"stdout: {out[-2000:]}")


# --- lines that are checked, not run ------------------------------------------------------


def check_make(words: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in (w for w in words[1:] if not w.startswith("-") and "=" not in w):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (
            f"'make {target}': no such target in the Makefile")


def check_pip(words: list[str]) -> None:
    assert words[1:2] == ["install"], f"'{shlex.join(words)}': only pip install is documented"
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
    extras = re.findall(r"^([\w-]+)\s*=", section.split("\n[")[0], re.M)
    args = iter(words[2:])
    for word in args:
        if word in {"-c", "-r", "--constraint", "--requirement"}:
            name = next(args)
            assert (ROOT / name).is_file(), f"'{shlex.join(words)}': no file {name}"
        elif not word.startswith("-") and (word.startswith(".") or "/" in word):
            local, _, rest = word.partition("[")
            assert (ROOT / local).exists(), f"'{shlex.join(words)}': no path {local}"
            for extra in filter(None, rest.rstrip("]").split(",")):
                assert extra in extras, f"'{shlex.join(words)}': no extra [{extra}]"


def config_class(path: Path):
    """The config class a file under configs/ loads into, by its system and name."""
    system, stem = path.relative_to(ROOT / "configs").parts[0], path.stem
    if system == "tokenizer" or (system == "forecast" and stem == "tokenizer"):
        from timetok.tokenizer.config import TokenizerTrainConfig
        return TokenizerTrainConfig
    if system == "forecast":
        from timetok.forecast import config
        return config.PretrainConfig if stem == "pretrain" else config.FinetuneConfig
    if system == "mae":
        from timetok.mae import recipe
        return recipe.PretrainConfig if stem.endswith("pretrain") else recipe.FinetuneConfig
    if system == "setvae":
        from timetok.setvae import config
        return config.PretrainConfig if stem.endswith("pretrain") else config.FinetuneConfig
    if system == "doppler":
        from timetok.doppler import config
        return config.TrainConfig if stem == "train" else config.EvaluateConfig
    raise AssertionError(f"{path}: no config class known for configs/{system}")


def check_benchmark(words: list[str]) -> None:
    script = ROOT / words[1]
    assert script.is_file(), f"'{shlex.join(words)}': no script {words[1]}"
    for word in words[2:]:
        for name in re.findall(r"configs/[\w./-]+", word):
            path = ROOT / name
            assert path.is_file(), f"'{shlex.join(words)}': no file {name}"
            config_class(path).from_yaml(path)


def check_git(words: list[str]) -> None:
    assert len(words) > 1 and words[1] in GIT_COMMANDS, f"'{shlex.join(words)}': not a git " \
        "command a reader would type"


# --- the tests ----------------------------------------------------------------------------


def plan(path: Path, folder: Path) -> tuple[list[tuple[Block, list]], list[str]]:
    """Each runnable block with its parsed lines, and the datasets the document lacks."""
    steps, missing = [], []
    for block in read_blocks(path):
        where = f"{path.name}:{block.line}"
        if block.lang in SHOWN:
            continue
        assert block.lang in {"bash", "python"}, (
            f"{where}: a block fenced as {block.lang or 'nothing'!r}; fence it as bash, python "
            f"or one of {sorted(SHOWN)}")
        if block.lang == "python":
            steps.append((block, []))
            continue
        lines = shell_lines(block.code)
        for words in lines:
            argv = timetok_argv(words)
            if argv is None:
                continue
            command, cmd_path = find_command(argv)
            params = parse(command, argv, cmd_path)
            missing += [n for n in named_datasets(argv, command, params)
                        if missing_data(n, folder)]
        steps.append((block, lines))
    return steps, sorted(set(missing))


def run_line(words: list[str], where: str, folder: Path, monkeypatch, capsys) -> None:
    argv = timetok_argv(words)
    if argv is not None:
        if argv[:2] == ["data", "fetch"] and not stage_fetch(argv, folder):
            return
        run_timetok(tiny_argv(argv, folder), capsys)
    elif words[0] == "make":
        check_make(words)
    elif words[0] == "pip":
        check_pip(words)
    elif words[0] == "git":
        check_git(words)
    elif words[0] == "python" and len(words) > 1 and words[1].startswith("benchmarks/"):
        check_benchmark(words)
    elif words[0] == "export":
        for assignment in words[1:]:
            name, _, value = assignment.partition("=")
            if name not in {"TIMETOK_DATA_DIR", "TIMETOK_THREADS"}:
                monkeypatch.setenv(name, os.path.expanduser(value))
    else:
        raise AssertionError(f"{where}: '{shlex.join(words)}' is no line this test knows; "
                             "fence the block as text if it is not to be run")


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_document_runs(path, data_dir, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TIMETOK_THREADS", "1")
    monkeypatch.setenv("TIMETOK_DATA_DIR", str(data_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(data_dir.parent / "cache"))
    monkeypatch.delenv("TIMETOK_DEBUG", raising=False)
    steps, missing = plan(path, data_dir)
    assert steps, f"{path.name} holds no block to run"
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)} from {SHARED_DATA} (absent)")
    scope: dict = {"__name__": f"doc_{path.stem}"}
    for block, lines in steps:
        where = f"{path.name}:{block.line}"
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), scope)
            continue
        for words in lines:
            run_line(words, where, data_dir, monkeypatch, capsys)


def test_every_system_has_its_document():
    names = {p.stem for p in DOCS}
    assert not set(SYSTEM_DOCS) - names, f"docs/ lacks {sorted(set(SYSTEM_DOCS) - names)}"


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_links_resolve(path):
    """Every relative link of a document names a file or folder of the repository."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:|#", target):
            continue
        file = (path.parent / target.split("#")[0]).resolve()
        assert file.exists(), f"{path.name}: the link {target} leads nowhere"
