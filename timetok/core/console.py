"""What reaches a person's console: library chatter kept off it unless asked for.

Used by the CLI and the benchmark scripts; library code itself only logs.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

# Loggers whose info lines (accelerator lists, adverts, tips) are not the user's business.
CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                  "lightning.fabric.utilities.rank_zero", "transformers")
HARMLESS_WARNINGS = (
    r".*LeafSpec.*",  # a torch deprecation inside Lightning
    r".*module\(s\) in eval mode.*",  # the frozen tokenizer is in eval mode on purpose
    r".*exists and is not empty.*",  # a run folder holding its own start checkpoint
    r".*does not have many workers.*",  # num_workers is the user's choice (--num-workers)
    r".*Trying to infer the `batch_size`.*",
    r".*your dataloader is not resumable.*",  # ResumeState takes the epoch up (checkpoints)
)


def quiet() -> None:
    """Keep library info lines and known harmless warnings off the console."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def verbose(level: int) -> None:
    """Show log records from ``level`` up, library chatter and warnings included."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    warnings.resetwarnings()


@contextlib.contextmanager
def library_run():
    """While the library trains for a Python caller: Lightning's info lines and the known
    harmless warnings stay off the console, as the CLI keeps them. Loggers someone has set
    (``quiet``, ``verbose`` or the caller's own logging setup) keep their level."""
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    raised = [log for log in loggers if log.level == logging.INFO]  # Lightning's own default
    for log in raised:
        log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for log in raised:
            log.setLevel(logging.INFO)
