"""``python -m timetok``: the same CLI as the ``timetok`` command."""

from timetok.cli.main import main

raise SystemExit(main())
