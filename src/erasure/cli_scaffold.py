"""``erasure new-connector``: write a connector distribution to start a plugin from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import _errors, app, out

__all__ = ["new_connector"]


@app.command("new-connector")
def new_connector(
    name: Annotated[str, typer.Argument(help="Connector name: a Python identifier "
                                             "(lowercase), e.g. acme_crm.")],
    dir: Annotated[Path, typer.Option(  # noqa: A002 - the option's name
        "--dir", help="Folder to create the distribution in (default: the current one).")
    ] = Path("."),
) -> None:
    """Write a connector distribution (pyproject, connector, local fake, contract tests,
    README) that installs with `pip install -e` and passes its tests as it is."""
    from .scaffold import new_connector as write

    with _errors():
        target = write(name, dir)
    out.print(f"wrote {target}")
    out.print(f"next: cd {target} && pip install -e '.[test]' && pytest", markup=False,
              highlight=False)
