"""The in-run baselines of ``timetok mae evaluate``."""

import numpy as np
import pytest

from timetok.core.data.labelled import load_labelled
from timetok.mae.evaluate import baseline_report, markdown_report, nearest_neighbour_predict


def test_the_nearest_neighbour_is_the_closest_series_over_every_step_and_channel():
    train = np.array([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]],
                      [[0.0, 5.0], [0.0, 0.0]]])
    labels = np.array([4, 7, 9])
    queries = np.array([[[0.1, 0.0], [0.0, 0.2]], [[0.9, 1.2], [1.0, 0.8]],
                        [[0.0, 4.0], [0.0, 0.0]]])
    assert nearest_neighbour_predict(train, labels, queries, chunk=2).tolist() == [4, 7, 9]


def test_the_nearest_neighbour_baseline_reproduces_the_ucr_figure_on_ecg200():
    # The UCR archive gives 1-NN Euclidean an error of 0.12 on ECG200 (train -> test); a
    # per-channel scaler does not change which series is nearest.
    report = baseline_report(load_labelled("ecg200"), "test", "nearest-neighbour")
    assert report["fitted_on"] == "train+val"
    assert report["accuracy"] == pytest.approx(0.88)


def test_a_validation_score_fits_the_baseline_on_training_samples_only():
    data = load_labelled("ecg200")
    report = baseline_report(data, "val", "nearest-neighbour")
    assert report["fitted_on"] == "train" and 0 <= report["accuracy"] <= 1
    assert baseline_report(data, "test", "none") is None


def test_the_report_shows_the_baseline_beside_the_model():
    report = {"dataset": "ecg200", "split": "test", "samples": 100, "accuracy": 0.8,
              "macro_f1": 0.75, "per_class": {"0": {"precision": 1.0, "recall": 0.5,
                                                    "f1": 0.6, "support": 36}},
              "baseline": {"method": "1-nearest neighbour (Euclidean)",
                           "fitted_on": "train+val", "accuracy": 0.88, "macro_f1": 0.87}}
    lines = markdown_report(report).splitlines()
    assert "| TimeMAE | 0.8000 | 0.7500 |" in lines
    assert "| 1-nearest neighbour (Euclidean), fitted on train+val | 0.8800 | 0.8700 |" in lines
