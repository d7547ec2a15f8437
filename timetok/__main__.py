"""``python -m timetok``: the same CLI as the ``timetok`` command."""

from timetok.cli import main

raise SystemExit(main())
