"""`qmtl demo`: the README's main job on a fresh machine, with nothing to start.

Embedded services → world ``demo`` (moderate preset) if missing → seeded synthetic prices in
``.qmtl/demo/prices.parquet`` if missing → compile + replay + submit the momentum example → summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from .formats import Format, FormatOption
from .output import err, out, print_json

if TYPE_CHECKING:
    from qmtl.services.client import GatewayClient

DEMO_WORLD = "demo"
DEMO_PRESET = "moderate"
DEMO_BARS = 5_000
DEMO_SYMBOLS = ("BTC", "ETH")
DEMO_SEED = 7


def demo_command(
    home: Optional[Path] = typer.Option(None, "--home", help="Where the embedded databases and demo "
                                        "data live (default: $QMTL_HOME or ./.qmtl)."),
    output: Format = FormatOption,
) -> None:
    """Run the whole loop locally: embedded services, a world, data, compile, submit."""
    from qmtl import paths
    from qmtl.config import ConfigError, load_config
    from qmtl.runner.runner import Runner
    from qmtl.services.app import EmbeddedServices, StartupError
    from qmtl.services.client import GatewayClient, GatewayError, GatewayUnavailable

    from .submit_cmd import EXIT_CODES, print_summary

    try:
        config = load_config().model_copy(update={"profile": "dev"})
    except ConfigError as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1) from None
    root = home or paths.home()
    config = config.model_copy(update={"home": root})
    prices = demo_prices(root / "demo" / "prices.parquet")
    try:
        with EmbeddedServices(config) as url:
            with GatewayClient(url) as client:
                created = _ensure_world(client)
            result = Runner.submit(example_path(), DEMO_WORLD, data=prices, gateway_url=url)
    except (StartupError, GatewayError, GatewayUnavailable) as exc:
        err.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if output == "json":
        print_json({"world_created": created, "data": str(prices), "example": str(example_path()),
                    "result": result.model_dump(mode="json")})
    else:
        if created:
            out.print(f"created world {DEMO_WORLD!r} ({DEMO_PRESET} preset)", markup=False)
        out.print(f"submitting {example_path()} with {prices}", markup=False, highlight=False)
        print_summary(result)
    raise typer.Exit(EXIT_CODES[result.status])


def _ensure_world(client: GatewayClient) -> bool:
    from qmtl.services.client import GatewayError
    try:
        client.get_world(DEMO_WORLD)
        return False
    except GatewayError as exc:
        if exc.code != "E_UNKNOWN_WORLD":
            raise
    client.create_world(DEMO_WORLD, preset=DEMO_PRESET,
                        description="qmtl demo world (created by `qmtl demo`)")
    return True


def demo_prices(path: Path) -> Path:
    """Seeded synthetic bars at ``path`` (written once; the same bytes every time)."""
    if not path.exists():
        from qmtl.runtime.synthetic import synthetic_bars
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        synthetic_bars(DEMO_BARS, symbols=DEMO_SYMBOLS, interval=60, seed=DEMO_SEED).to_parquet(
            tmp, index=False)
        tmp.replace(path)
    return path


def example_path() -> Path:
    """``examples/momentum.py`` of the checkout, else the copy packaged with qmtl."""
    checkout = Path(__file__).resolve().parents[2] / "examples" / "momentum.py"
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parents[1] / "examples" / "momentum.py"
