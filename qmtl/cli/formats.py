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
