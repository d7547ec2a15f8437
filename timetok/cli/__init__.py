"""The ``timetok`` command line: one group per system. Nothing heavy is imported here."""
