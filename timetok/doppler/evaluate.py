"""Evaluating a trained spectrogram generator against the real images of its users.

:func:`evaluate` is the recipe (``timetok doppler evaluate``): one :class:`EvaluateConfig`
in; it re-reads the real images and the per-user split recorded in the model folder,
samples (or reads) generated images, trains a user classifier on the real training images
(:mod:`timetok.doppler.classifier`) or loads one, and compares generated with real test
images by :func:`evaluate_images`: classifier accuracy (does each image keep its user's
signature?), the Fréchet distance in the classifier's features beside the real
train-vs-test floor (does it match the real distribution?), diversity (no mode collapse?),
memorisation (copies of training images?) and codebook use. It writes ``report.json``,
``report.md`` and ``grid.png`` and says whether the run is a toy beside the full benchmark.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timetok.core.errors import DataError
from timetok.doppler.classifier import UserClassifier, train_classifier
from timetok.doppler.config import EvaluateConfig
from timetok.doppler.data import read_generated, real_splits
from timetok.doppler.metrics import (
    accuracy,
    check_images,
    check_users,
    codebook_figures,
    diversity,
    frechet_distance,
    mean_of,
    mean_pairwise_distance,
    memorisation,
    nearer_train,
    nearest_distances,
    ratio,
)
from timetok.doppler.report import run_scale, write_report


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate the generator ``config.model``; writes ``report.json``, ``report.md`` and
    ``grid.png`` into ``config.out`` (default ``MODEL/evaluation``) and returns the report
    (with the folder as ``report["out"]``)."""
    from timetok.core.devices import resolve_device
    from timetok.core.train.runner import begin
    from timetok.doppler.model import GeneratorModel

    begin(config.run_options())
    device = str(resolve_device(config.device))
    model_dir, out = config.model_dir(), config.out_dir()
    model = GeneratorModel.from_pretrained(model_dir, device)
    splits = real_splits(model_dir, config.data_path, config.data_dir)
    (train_images, train_users), (test_images, test_users) = splits["train"], splits["test"]
    gen_images, gen_users, codes, speed = _generated(config, model, test_users, device)
    classifier, trained = user_classifier(config, train_images, train_users, out)
    report = evaluate_images(train_images, train_users, test_images, test_users, gen_images,
                             gen_users, classifier,
                             codebook=codebook_figures(model.tokenizer, train_images, codes))
    report["classifier"]["trained_here"] = trained
    report["generation"] = {"images_per_s": speed, "device": device,
                            "unconditional": config.unconditional,
                            "sampling": {"temperature": config.temperature,
                                         "top_k": config.top_k, "top_p": config.top_p,
                                         "guidance_scale": config.guidance_scale}}
    report["scale"] = run_scale(model.n_users, len(train_images), _prior_epochs(model_dir))
    write_report(out, report, test_images, test_users, gen_images, gen_users)
    return report | {"out": str(out)}


def _generated(config: EvaluateConfig, model, test_users: np.ndarray, device: str
               ) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None, float | None]:
    """The images to judge, their users, their code grids and images per second (the last
    two None when read from ``config.generated``)."""
    if config.generated is not None:
        images, users = read_generated(config.generated, model.config.users,
                                       model.config.tokenizer.image_size)
        return images, users, None, None
    per_user = config.samples or max(10, int(np.bincount(test_users).max()))
    started = time.perf_counter()
    codes = model.generate_codes(list(range(model.n_users)), per_user, config.sampling(),
                                 config.guidance_scale, not config.no_cache, config.seed,
                                 config.batch_size, config.unconditional)
    images = torch.cat([model.tokenizer.decode(c) for c in codes.split(config.batch_size)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    speed = len(codes) / (time.perf_counter() - started)
    users = np.repeat(np.arange(model.n_users), per_user)
    return images.float().cpu().numpy(), users, codes.cpu(), speed


def _prior_epochs(model_dir: Path) -> int | None:
    """The epochs the generator's prior trained, as its run recorded them."""
    summary = model_dir / "training.json"
    return json.loads(summary.read_text()).get("epochs") if summary.is_file() else None


def user_classifier(config: EvaluateConfig, images: np.ndarray, users: np.ndarray,
                    out: Path) -> tuple[UserClassifier, bool]:
    """The classifier in ``config.classifier`` where that folder holds one, else one
    trained on ``images`` into it (or into ``out/classifier``); and whether it was trained
    here. Several evaluations of one model then judge by the same classifier."""
    folder = Path(config.classifier) if config.classifier else out / "classifier"
    if config.classifier and (folder / "config.json").is_file():
        return UserClassifier.load(folder), False
    return train_classifier(images, users, folder, config.run_options()), True


def _check_sets(sets: dict[str, tuple[Any, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each ``name: (images, users)`` checked, all of the training images' size."""
    checked = {name: (check_images(x, f"{name}_images"),
                      check_users(y, len(np.asarray(x)), f"{name}_users"))
               for name, (x, y) in sets.items()}
    size = checked["train"][0].shape[1:]
    for name, (images, _) in checked.items():
        if images.shape[1:] != size:
            raise DataError(f"{name}_images are {images.shape[1]}x{images.shape[2]} but the "
                            f"real training images {size[0]}x{size[1]}; resize them to match")
    if len(checked["test"][0]) < 2 or len(checked["generated"][0]) < 2:
        raise DataError("evaluation needs at least 2 real test and 2 generated images; "
                        "pass more images")
    return checked


def _per_user(test_users, generated_users, predicted, features) -> dict[str, dict]:
    """Accuracy and diversity of each user's real test and generated images."""
    rows = {}
    for user in sorted(set(test_users.tolist()) | set(generated_users.tolist())):
        real, fake = test_users == user, generated_users == user
        acc_real = accuracy(predicted["test"][real], test_users[real]) if real.any() else None
        acc_fake = (accuracy(predicted["generated"][fake], generated_users[fake])
                    if fake.any() else None)
        div_real = diversity(features["test"][real])
        div_fake = diversity(features["generated"][fake])
        rows[str(user)] = {
            "real_test_images": int(real.sum()), "generated_images": int(fake.sum()),
            "accuracy_real_test": acc_real, "accuracy_generated": acc_fake,
            "accuracy_ratio": ratio(acc_fake, acc_real),
            "diversity_real_test": div_real, "diversity_generated": div_fake,
            "diversity_ratio": ratio(div_fake, div_real)}
    return rows


def _memorisation(features, images, users, quantile: float) -> dict[str, Any]:
    """The feature-space and the pixel-space test, and their joint verdict."""
    in_features = memorisation(nearest_distances(features["generated"], features["train"]),
                               nearest_distances(features["test"], features["train"]),
                               quantile)
    in_pixels = nearer_train(images["generated"], images["train"], images["test"],
                             users["train"], users["test"])
    memorised = in_features["memorised"] or in_pixels["memorised"]
    verdict = "no memorised copies" if not memorised else "; ".join(
        f"{space}: {m['verdict']}" for space, m in
        (("features", in_features), ("pixels", in_pixels)) if m["memorised"])
    return {"features": in_features, "pixels": in_pixels, "memorised": memorised,
            "verdict": verdict}


def evaluate_images(train_images, train_users, test_images, test_users, generated_images,
                    generated_users, classifier: UserClassifier, *,
                    codebook: dict[str, Any] | None = None, quantile: float = 0.05
                    ) -> dict[str, Any]:
    """Compare generated images ``[N, H, W]`` with real test images of the same users, as
    ``classifier`` (trained on the real training images) sees them; a JSON-ready dict with
    the keys data, classifier, accuracy, frechet, diversity, memorisation, codebook (the
    ``codebook`` figures given, e.g. codes used) and per_user."""
    sets = _check_sets({"train": (train_images, train_users), "test": (test_images, test_users),
                        "generated": (generated_images, generated_users)})
    images = {name: x for name, (x, _) in sets.items()}
    users = {name: y for name, (_, y) in sets.items()}
    seen = set(classifier.seen_users)
    for name in ("test", "generated"):
        unseen = sorted(set(users[name].tolist()) - seen)
        if unseen:
            raise DataError(f"{name}_users holds user ids the classifier never saw in "
                            f"training ({', '.join(map(str, unseen[:10]))}); keep only users "
                            "with real training images")
    if codebook is not None:
        try:
            codebook = json.loads(json.dumps(codebook))
        except (TypeError, ValueError) as err:
            raise DataError(f"codebook figures are not JSON-ready ({err}); pass numbers, "
                            "strings, lists and dicts") from None
    features = {name: classifier.features(x).astype(np.float64) for name, x in images.items()}
    predicted = {name: classifier.predict(images[name]) for name in ("test", "generated")}
    per_user = _per_user(users["test"], users["generated"], predicted, features)
    acc_real = accuracy(predicted["test"], users["test"])
    acc_fake = accuracy(predicted["generated"], users["generated"])
    fd_fake = frechet_distance(features["generated"], features["test"])
    fd_floor = frechet_distance(features["train"], features["test"])
    div_real, div_fake = (mean_pairwise_distance(features[n]) for n in ("test", "generated"))
    user_real = mean_of([row["diversity_real_test"] for row in per_user.values()])
    user_fake = mean_of([row["diversity_generated"] for row in per_user.values()])
    history = classifier.history
    height, width = images["train"].shape[1:]
    return {
        "data": {"train_images": len(images["train"]),
                 "validation_images": history.get("validation_images", 0),
                 "test_images": len(images["test"]),
                 "generated_images": len(images["generated"]), "users": len(per_user),
                 "height": int(height), "width": int(width)},
        "classifier": {"feature_dim": classifier.feature_dim, "classes": classifier.num_users,
                       "epochs": history.get("epochs"),
                       "best_val_accuracy": history.get("best_val_accuracy")},
        "accuracy": {"real_test": acc_real, "generated": acc_fake,
                     "ratio": ratio(acc_fake, acc_real)},
        "frechet": {"generated_vs_real_test": fd_fake, "real_train_vs_real_test": fd_floor,
                    "ratio": ratio(fd_fake, fd_floor)},
        "diversity": {"real_test": div_real, "generated": div_fake,
                      "ratio": ratio(div_fake, div_real), "per_user_mean_real_test": user_real,
                      "per_user_mean_generated": user_fake,
                      "per_user_mean_ratio": ratio(user_fake, user_real)},
        "memorisation": _memorisation(features, images, users, quantile),
        "codebook": codebook,
        "per_user": per_user,
    }


def tokenizer_ceiling(classifier: UserClassifier, train: np.ndarray, test: np.ndarray,
                      rebuilt: np.ndarray, users: np.ndarray) -> dict[str, float]:
    """What a perfect prior could reach at most: ``classifier`` (trained on real images) on
    the tokenizer's reconstructions ``rebuilt`` of the real ``test`` images of ``users``,
    accuracy and Fréchet distance to the real test images, beside the real figures (the
    floor: real train against real test)."""
    real = accuracy(classifier.predict(test), users)
    rebuilt_accuracy = accuracy(classifier.predict(rebuilt), users)
    features = [classifier.features(a).astype(np.float64) for a in (train, test, rebuilt)]
    floor = frechet_distance(features[0], features[1])
    fd = frechet_distance(features[2], features[1])
    return {"user_acc_real": real, "user_acc_generated": rebuilt_accuracy,
            "user_acc_ratio": rebuilt_accuracy / real if real else float("nan"),
            "fd_generated": fd, "fd_floor": floor,
            "fd_ratio": fd / floor if floor else float("nan")}


def evaluate_tokenizer(config: EvaluateConfig) -> dict[str, float]:
    """The ceiling of the tokenizer in ``config.model`` (a tokenizer folder): a classifier
    trained on the real training images judges the reconstructions of the real test images
    (:func:`tokenizer_ceiling`); and, to tell lost identity from a shift in texture, one
    trained on the reconstructions of the training images scores them
    (``user_acc_rebuilt_trained``). Both classifiers train into ``config.out``."""
    from timetok.core.devices import resolve_device
    from timetok.core.train.runner import begin
    from timetok.doppler.metrics import reconstruction_figures
    from timetok.doppler.model import SpectrogramTokenizer

    begin(config.run_options())
    model_dir = config.model_dir()
    tokenizer = SpectrogramTokenizer.from_pretrained(model_dir, resolve_device(config.device))
    splits = real_splits(model_dir, config.data_path, config.data_dir)
    (train, train_users), (test, users) = splits["train"], splits["test"]
    _, rebuilt_train = reconstruction_figures(tokenizer, train, train_users)
    _, rebuilt = reconstruction_figures(tokenizer, test, users)
    out = config.out_dir()
    options = config.run_options()
    real = train_classifier(train, train_users, out / "classifier", options)
    on_rebuilt = train_classifier(rebuilt_train, train_users, out / "classifier-rebuilt",
                                  options)
    return tokenizer_ceiling(real, train, test, rebuilt, users) | {
        "user_acc_rebuilt_trained": accuracy(on_rebuilt.predict(rebuilt), users)}
