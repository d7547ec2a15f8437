"""Published forecasting figures (test MSE/MAE, standardised) shown beside our own.

Multivariate ETT, H = 96, 192, 336, 720, the look-back window as the setting:

- ``PatchTST/64`` (L=512): Nie et al., ICLR 2023, Table 3 (the MAE as Dai et al. reprint
  them, ICLR 2024, Table 12, "Patch(512)");
- ``DLinear`` (L=336): Zeng et al., AAAI 2023, Table 2 (as in LTSF-Linear's
  ``LTSF-Benchmark.md`` and Dai et al.'s Table 12);
- ``PDF(720)``, ``PDF(336)``: Dai et al., *Periodicity Decoupling Framework for Long-term
  Series Forecasting*, ICLR 2024, Table 12 (its repository's ``assest/result.png``).

RLinear's figures are left out: we found none in a source we could check against the
paper.
"""

from __future__ import annotations

HORIZONS = (96, 192, 336, 720)
PATCHTST = "Nie et al., ICLR 2023"
DLINEAR = "Zeng et al., AAAI 2023"
PDF = "Dai et al., ICLR 2024"

# method -> (setting, reference, {dataset: ((MSE at H = 96..720), (MAE at H = 96..720))})
TABLES = {
    "PatchTST/64": ("L=512", PATCHTST, {
        "etth1": ((0.370, 0.413, 0.422, 0.447), (0.400, 0.429, 0.440, 0.468)),
        "etth2": ((0.274, 0.341, 0.329, 0.379), (0.337, 0.382, 0.384, 0.422)),
        "ettm1": ((0.293, 0.333, 0.369, 0.416), (0.346, 0.370, 0.392, 0.420)),
        "ettm2": ((0.166, 0.223, 0.274, 0.362), (0.256, 0.296, 0.329, 0.385)),
    }),
    "DLinear": ("L=336", DLINEAR, {
        "etth1": ((0.375, 0.405, 0.439, 0.472), (0.399, 0.416, 0.443, 0.490)),
        "etth2": ((0.289, 0.383, 0.448, 0.605), (0.353, 0.418, 0.465, 0.551)),
        "ettm1": ((0.299, 0.335, 0.369, 0.425), (0.343, 0.365, 0.386, 0.421)),
        "ettm2": ((0.167, 0.224, 0.281, 0.397), (0.260, 0.303, 0.342, 0.421)),
    }),
    "PDF(720)": ("L=720", PDF, {
        "etth1": ((0.356, 0.390, 0.402, 0.462), (0.391, 0.413, 0.421, 0.477)),
        "etth2": ((0.270, 0.334, 0.324, 0.378), (0.332, 0.375, 0.379, 0.422)),
        "ettm1": ((0.277, 0.316, 0.346, 0.402), (0.337, 0.364, 0.381, 0.409)),
        "ettm2": ((0.159, 0.217, 0.266, 0.345), (0.251, 0.292, 0.325, 0.375)),
    }),
    "PDF(336)": ("L=336", PDF, {
        "etth1": ((0.357, 0.397, 0.409, 0.432), (0.388, 0.412, 0.422, 0.455)),
        "etth2": ((0.272, 0.335, 0.325, 0.375), (0.333, 0.375, 0.377, 0.417)),
        "ettm1": ((0.280, 0.317, 0.354, 0.405), (0.335, 0.359, 0.382, 0.413)),
        "ettm2": ((0.162, 0.219, 0.270, 0.358), (0.253, 0.291, 0.326, 0.380)),
    }),
}

Row = tuple[str, str, float, float | None, str]  # method, setting, mse, mae or None, source


def _rows() -> dict[tuple[str, int], list[Row]]:
    """(dataset, horizon) -> rows: the tables', then single figures."""
    rows: dict[tuple[str, int], list[Row]] = {}
    for method, (setting, ref, sets) in TABLES.items():
        for dataset, (mses, maes) in sets.items():
            for horizon, mse, mae in zip(HORIZONS, mses, maes, strict=True):
                rows.setdefault((dataset, horizon), []).append((method, setting, mse, mae, ref))
    rows[("ettm1", 96)].append(("reference system 2", "L=512", 0.457, 0.446,
                                "reference 000's logged run"))
    return rows


FORECAST = _rows()


def forecast_rows(dataset: str, horizon: int) -> list[dict]:
    return [
        {"method": method, "setting": setting, "mse": mse, "mae": mae, "source": "published",
         "reference": ref}
        for method, setting, mse, mae, ref in FORECAST.get((dataset, horizon), [])
    ]


def published_mse(method: str, dataset: str, horizon: int) -> float | None:
    """``method``'s published test MSE on ``dataset`` at ``horizon``, if we hold one."""
    table = TABLES.get(method)
    if table is None or dataset not in table[2] or horizon not in HORIZONS:
        return None
    return table[2][dataset][0][HORIZONS.index(horizon)]
