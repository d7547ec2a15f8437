import logging
import warnings

from timetok.core.console import library_run


def test_a_library_run_keeps_lightnings_info_lines_off_and_restores_them():
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    before = log.level
    log.setLevel(logging.INFO)  # Lightning's own default
    try:
        with library_run():
            assert log.getEffectiveLevel() == logging.WARNING
        assert log.level == logging.INFO
    finally:
        log.setLevel(before)


def test_a_logger_the_caller_set_keeps_its_level():
    log = logging.getLogger("transformers")
    before = log.level
    log.setLevel(logging.DEBUG)
    try:
        with library_run():
            assert log.level == logging.DEBUG
    finally:
        log.setLevel(before)


def test_known_harmless_warnings_are_silenced_only_inside():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with library_run():
            warnings.warn("Found 3 module(s) in eval mode at the start", UserWarning, stacklevel=1)
        warnings.warn("Found 3 module(s) in eval mode at the start", UserWarning, stacklevel=1)
    assert len(caught) == 1
