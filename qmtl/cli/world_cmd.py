"""`qmtl world …`: create and inspect worlds through the gateway (which proxies the world service).

Also home of ``gateway_client``, the one place where the CLI turns a gateway failure into a printed
error code + message and exit status 1 (no traceback): every command that talks to a gateway uses it.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer
import yaml

from qmtl.services.client import GatewayClient, GatewayError, GatewayUnavailable, resolve_gateway_url

from .formats import Format, FormatOption
from .output import err, out, print_json

world_app = typer.Typer(help="Create and inspect worlds (policies, decisions, allocations).",
                        no_args_is_help=True)

GatewayUrl = typer.Option(None, "--gateway-url", envvar="QMTL_GATEWAY_URL",
                          help="Gateway base URL (default http://127.0.0.1:8000).")
Output = FormatOption


@contextlib.contextmanager
def gateway_client(url: str | None, timeout: float = 10.0) -> Iterator[GatewayClient]:
    """A client for ``url``; gateway errors end the command with their code and message, exit 1."""
    base = resolve_gateway_url(url)
    try:
        with GatewayClient(base, timeout=timeout) as client:
            yield client
    except GatewayError as exc:
        err.print(f"error[{exc.code}]: {exc.message}", style="bold red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except GatewayUnavailable as exc:
        err.print(f"error[E_UNAVAILABLE]: gateway at {base} did not answer: {exc}\n"
                  "  start one with `qmtl serve` or point --gateway-url / QMTL_GATEWAY_URL at it",
                  style="bold red", markup=False, highlight=False)
        raise typer.Exit(1) from None


def fail(message: str, code: str = "E_USAGE") -> None:
    err.print(f"error[{code}]: {message}", style="bold red", markup=False, highlight=False)
    raise typer.Exit(1)


def read_document(path: Path, what: str = "policy") -> tuple[str, str]:
    """A YAML/JSON mapping file's text and content type; unreadable or malformed files stop here,
    named (``what`` says which kind of document it should have been)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read {what} file: {exc}")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        fail(f"{where}: not valid YAML/JSON: {getattr(exc, 'problem', exc)}", _code(what))
    if not isinstance(doc, dict):
        fail(f"{path}: a {what} must be a mapping, got {type(doc).__name__}", _code(what))
    kind = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    return text, kind


def _show(data: Any, output: str, title: str | None = None) -> None:
    if output == "json":
        print_json(data)
        return
    if title:
        out.print(title, style="bold", markup=False, highlight=False)
    out.print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip(),
              markup=False, highlight=False)


@world_app.command("create")
def create(name: str = typer.Argument(..., help="World id."),
           preset: Optional[str] = typer.Option(None, "--preset",
                                                help="sandbox | conservative | moderate | aggressive"),
           policy: Optional[Path] = typer.Option(None, "--policy", help="Policy file (YAML or JSON)."),
           allow_live: bool = typer.Option(False, "--allow-live", help="Allow live trading (still "
                                           "needs a passing policy)."),
           description: Optional[str] = typer.Option(None, "--description"),
           decision_ttl: Optional[int] = typer.Option(None, "--decision-ttl", min=1, max=7 * 86400,
                                                      help="Seconds a paper/live decision stands before a "
                                                      "new evaluation must renew it (default 300)."),
           gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Create a world (sandbox preset when neither --preset nor --policy is given)."""
    if preset and policy:
        fail("give --preset or --policy, not both")
    doc = yaml.safe_load(read_document(policy)[0]) if policy else None
    with gateway_client(gateway_url) as client:
        world = client.create_world(name, preset=preset, policy=doc, allow_live=allow_live,
                                    description=description, decision_ttl=decision_ttl)
    _show(world, output, f"created world {name!r}")


@world_app.command("list")
def list_worlds(gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """List worlds."""
    with gateway_client(gateway_url) as client:
        worlds = client.list_worlds().get("worlds", [])
    if output == "json":
        print_json(worlds)
        return
    if not worlds:
        out.print("no worlds yet: `qmtl world create NAME --preset sandbox`", markup=False)
    for w in worlds:
        live = "live allowed" if w.get("allow_live") else "no live"
        out.print(f"{w['id']}\t{live}\tmax_mode={w.get('policy', {}).get('max_mode', '?')}",
                  markup=False, highlight=False)


@world_app.command("show")
def show(name: str, gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Show one world."""
    with gateway_client(gateway_url) as client:
        _show(client.get_world(name), output)


@world_app.command("policy")
def policy_cmd(name: str,
               set_file: Optional[Path] = typer.Option(None, "--set", help="Replace the policy with "
                                                      "this YAML/JSON file."),
               gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Show a world's policy, or replace it with --set FILE."""
    with gateway_client(gateway_url) as client:
        if set_file is not None:
            text, kind = read_document(set_file)
            _show(client.put_policy(name, text, kind), output, f"policy of {name!r} updated")
        else:
            _show(client.get_policy(name), output)


@world_app.command("apply")
def apply(name: str, run_id: Optional[str] = typer.Option(None, "--run-id", help="Idempotency key "
                                                          "of this apply (same id twice = one apply); "
                                                          "default: a new one."),
          plan: Optional[Path] = typer.Option(None, "--plan", help="JSON/YAML {activate: [...], "
                                              "deactivate: [...]}; default: latest evaluation."),
          etag: Optional[str] = typer.Option(None, "--etag", help="The activation etag the plan was "
                                             "made against (refused if the world changed since); "
                                             "default: the current one."),
          gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Two-phase apply (freeze/drain → switch → unfreeze) of the world's active set.

    Only strategies the world's decisions allow (paper/live) are activated."""
    plan_doc = yaml.safe_load(read_document(plan, "plan")[0]) if plan else None
    run_id = run_id or f"apply-{uuid.uuid4().hex[:12]}"
    with gateway_client(gateway_url) as client:
        _show(client.apply(name, run_id, plan_doc, etag), output, f"apply {run_id!r} on {name!r}")


@world_app.command("allocations")
def allocations(name: Optional[str] = typer.Argument(None, help="World (default: every world, and each "
                                                    "strategy across worlds)."),
                gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Show capital allocations: one world's, or all of them."""
    with gateway_client(gateway_url) as client:
        _show(client.allocations(name) if name else client.all_allocations(), output)


@world_app.command("rebalance-plan")
def rebalance_plan(names: Optional[List[str]] = typer.Argument(None, help="Worlds (default: all)."),
                   gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """What each world's latest evaluation asks to allocate, against what is allocated now."""
    with gateway_client(gateway_url) as client:
        _show(client.rebalance_plan(names or None), output, "rebalancing plan (nothing changed yet)")


@world_app.command("rebalance-apply")
def rebalance_apply(names: Optional[List[str]] = typer.Argument(None, help="Worlds (default: all)."),
                    plan: Optional[Path] = typer.Option(None, "--plan", help="A plan saved from "
                                                        "`rebalance-plan -o json` (applied as planned, "
                                                        "refused if a world changed since)."),
                    run_id: Optional[str] = typer.Option(None, "--run-id", help="Idempotency key (same "
                                                         "id twice = one rebalance); default: a new one."),
                    gateway_url: Optional[str] = GatewayUrl, output: Format = Output) -> None:
    """Set the planned allocations in every world of the plan, or in none (audited)."""
    run_id = run_id or f"rebalance-{uuid.uuid4().hex[:12]}"
    plan_doc = yaml.safe_load(read_document(plan, "plan")[0]) if plan else None
    if plan_doc is not None and not isinstance(plan_doc.get("plans"), list):
        fail(f"{plan}: a rebalancing plan needs a 'plans' list (the output of rebalance-plan -o json)",
             "E_SCHEMA")
    with gateway_client(gateway_url) as client:
        plans = plan_doc["plans"] if plan_doc is not None else client.rebalance_plan(names or None)["plans"]
        _show(client.rebalance_apply(run_id, plans), output, f"rebalance {run_id!r} applied")


def _code(what: str) -> str:
    return "E_POLICY" if what == "policy" else "E_SCHEMA"
