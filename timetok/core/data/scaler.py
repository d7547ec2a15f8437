"""Per-channel standardisation with statistics from the training data only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scaler:
    """Per-channel standardisation with statistics from the training rows only."""

    mean: np.ndarray
    std: np.ndarray
    columns: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str] | None = None) -> Scaler:
        mean = values.mean(axis=0, dtype=np.float64)
        std = values.std(axis=0, dtype=np.float64)
        std[std < 1e-8] = 1.0  # a constant channel stays constant instead of dividing by 0
        return cls(mean.astype(np.float32), std.astype(np.float32), list(columns or []))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "columns": self.columns}

    @classmethod
    def from_dict(cls, data: dict) -> Scaler:
        return cls(
            np.asarray(data["mean"], dtype=np.float32),
            np.asarray(data["std"], dtype=np.float32),
            list(data.get("columns", [])),
        )

