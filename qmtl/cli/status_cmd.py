"""`qmtl status [STRATEGY_ID]`: is the gateway up, and what does it hold for a strategy."""

from __future__ import annotations

from typing import Optional

import typer

from .formats import Format
from .output import human_time, out, print_json
from .world_cmd import GatewayUrl, Output, gateway_client


def status_command(strategy_id: Optional[str] = typer.Argument(None, help="A submitted strategy's id."),
                   gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Gateway health, and a submitted strategy's worlds and node statuses."""
    with gateway_client(gateway_url) as client:
        health = client.health()
        strategy = client.get_strategy(strategy_id) if strategy_id else None
    if output == "json":
        print_json({"gateway": client.base_url, "health": health, "strategy": strategy})
        return
    out.print(f"gateway {client.base_url}: {health.get('status', '?')} "
              f"({health.get('strategies', '?')} strategies)", markup=False, highlight=False)
    if strategy is not None:
        nodes = strategy.get("nodes", [])
        out.print(f"strategy {strategy_id}: worlds {', '.join(strategy.get('world_ids', [])) or '-'}; "
                  f"{len(nodes)} nodes; submitted {human_time(strategy.get('created_at', '?'))}",
                  markup=False, highlight=False)
        for n in nodes:
            out.print(f"  {n.get('node_id', '')[:19]}…  {n.get('op', '?'):12} {n.get('name') or ''}",
                      markup=False, highlight=False)
