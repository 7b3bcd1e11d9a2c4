"""The one spelling of "how to print": ``--format text|json`` (``--output``/``-o`` still accepted
where a command took it before).  A closed set, so typer rejects ``--format xml`` with the choices."""

from __future__ import annotations

from enum import Enum

import typer


class Format(str, Enum):
    text = "text"
    json = "json"


FormatOption = typer.Option(Format.text, "--format", "--output", "-o", case_sensitive=False,
                            help="text | json (--output/-o: the same option's older spelling)")

#: for commands where ``--output`` would read as an output directory (``replay``, next to ``--out``) or
#: that printed JSON with ``--json`` (still accepted there as ``--format json``)
FormatOnlyOption = typer.Option(Format.text, "--format", case_sensitive=False, help="text | json")
JsonFlag = typer.Option(False, "--json", hidden=True, help="The same as --format json.")
