"""The service-facing CLI (`qmtl world/status/config/submit`) against a real served gateway."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.config import QmtlConfig
from qmtl.services.app import EmbeddedServices

cli = CliRunner()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("qmtl-home")
    with EmbeddedServices(QmtlConfig(home=home)) as url:
        yield url


def run(*args: str) -> "object":
    return cli.invoke(app, list(args), catch_exceptions=False)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_world_create_list_show(gateway: str) -> None:
    r = run("world", "create", "cli-w1", "--preset", "moderate", "--gateway-url", gateway,
            "--output", "json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["id"] == "cli-w1" and created["allow_live"] is False
    assert created["policy"]["hysteresis"]["metric"] == "sharpe"

    r = run("world", "list", "--gateway-url", gateway, "--output", "json")
    assert r.exit_code == 0
    assert "cli-w1" in [w["id"] for w in json.loads(r.stdout)]

    r = run("world", "show", "cli-w1", "--gateway-url", gateway, "-o", "json")
    assert json.loads(r.stdout)["policy"] == created["policy"]
    r = run("world", "show", "cli-w1", "--gateway-url", gateway)
    assert r.exit_code == 0 and "allow_live: false" in r.stdout


def test_world_create_twice_prints_the_gateway_error(gateway: str) -> None:
    assert run("world", "create", "cli-dup", "--gateway-url", gateway).exit_code == 0
    r = run("world", "create", "cli-dup", "--gateway-url", gateway)
    assert r.exit_code == 1
    assert "E_WORLD_EXISTS" in r.stderr and "Traceback" not in r.output


def test_unknown_world_is_exit_1_with_code(gateway: str) -> None:
    r = run("world", "show", "no-such-world", "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_UNKNOWN_WORLD" in r.stderr and "no-such-world" in r.stderr


def test_gateway_url_from_env(gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMTL_GATEWAY_URL", gateway)
    assert run("world", "create", "cli-env").exit_code == 0
    r = run("world", "list", "-o", "json")
    assert "cli-env" in [w["id"] for w in json.loads(r.stdout)]


def test_policy_show_and_set(gateway: str, tmp_path: Path) -> None:
    run("world", "create", "cli-pol", "--gateway-url", gateway)
    policy = tmp_path / "p.yml"
    policy.write_text("thresholds:\n  sharpe: {min: 0.7}\nmax_mode: paper\n")
    r = run("world", "policy", "cli-pol", "--set", str(policy), "--gateway-url", gateway, "-o", "json")
    assert r.exit_code == 0, r.output
    r = run("world", "policy", "cli-pol", "--gateway-url", gateway, "-o", "json")
    shown = json.loads(r.stdout)
    assert shown["thresholds"]["sharpe"]["min"] == 0.7 and shown["max_mode"] == "paper"


def test_bad_policy_is_refused_naming_the_field(gateway: str, tmp_path: Path) -> None:
    run("world", "create", "cli-bad", "--gateway-url", gateway)
    policy = tmp_path / "bad.yml"
    policy.write_text("thresholds:\n  sharpe: {min: 2, max: 1}\n")
    r = run("world", "policy", "cli-bad", "--set", str(policy), "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_POLICY" in r.stderr and "sharpe" in r.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("thresholds: [unclosed\n")
    r = run("world", "create", "cli-bad2", "--policy", str(broken), "--gateway-url", gateway)
    assert r.exit_code == 1 and str(broken) in r.stderr and "E_POLICY" in r.stderr


def test_allocations_and_apply(gateway: str, tmp_path: Path) -> None:
    run("world", "create", "cli-alloc", "--gateway-url", gateway)
    r = run("world", "allocations", "cli-alloc", "--gateway-url", gateway, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["world_id"] == "cli-alloc"
    r = run("world", "apply", "cli-alloc", "--run-id", "r0", "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_NO_PLAN" in r.stderr  # nothing evaluated yet
    plan = tmp_path / "plan.yml"
    plan.write_text("activate: [strat-a]\n")
    args = ("world", "apply", "cli-alloc", "--run-id", "r1", "--plan", str(plan),
            "--gateway-url", gateway, "-o", "json")
    r = run(*args)
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert json.loads(run(*args).stdout) == first  # idempotent by run id
    r = run("world", "allocations", "cli-alloc", "--gateway-url", gateway, "-o", "json")
    assert "strat-a" in json.dumps(json.loads(r.stdout))


def test_status_reports_health_and_unknown_strategy(gateway: str) -> None:
    r = run("status", "--gateway-url", gateway, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["health"]["status"] == "ok"
    r = run("status", "blake3:" + "0" * 64, "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_UNKNOWN_STRATEGY" in r.stderr


def test_unreachable_gateway_is_a_clear_error() -> None:
    r = run("world", "list", "--gateway-url", closed_port_url())
    assert r.exit_code == 1 and "E_UNAVAILABLE" in r.stderr and "qmtl serve" in r.stderr
    assert "Traceback" not in r.output


def test_config_validate_prod_without_dsns_fails(tmp_path: Path) -> None:
    cfg = tmp_path / "qmtl.yml"
    cfg.write_text("profile: prod\n")
    r = run("config", "validate", "--config", str(cfg))
    assert r.exit_code == 1 and "database_dsn" in r.stderr
    r = run("config", "validate", "--config", str(cfg), "--target", "worldservice", "-o", "json")
    report = json.loads(r.stdout)
    assert r.exit_code == 1 and report["ok"] is False and report["errors"]
    assert all("gateway" not in e.split(":")[0] for e in report["errors"])


def test_config_validate_dev_is_ok(tmp_path: Path) -> None:
    cfg = tmp_path / "qmtl.yml"
    cfg.write_text(f"profile: dev\nhome: {tmp_path / 'h'}\n")
    r = run("config", "validate", "--config", str(cfg))
    assert r.exit_code == 0 and "ok" in r.stdout


def test_config_validate_reports_bad_files(tmp_path: Path) -> None:
    cfg = tmp_path / "qmtl.yml"
    cfg.write_text("profile: staging\n")
    r = run("config", "validate", "--config", str(cfg))
    assert r.exit_code == 1 and "profile" in r.stderr
    r = run("config", "validate", "--config", str(tmp_path / "missing.yml"))
    assert r.exit_code == 1 and "not found" in r.stderr
    r = run("config", "validate", "--target", "bogus")
    assert r.exit_code == 1 and "--target" in r.stderr


def test_packaged_example_matches_the_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    assert (root / "qmtl" / "examples" / "momentum.py").read_text() == \
        (root / "examples" / "momentum.py").read_text()


def test_demo_runs_the_whole_loop_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    home = tmp_path / "home"
    r = run("demo", "--home", str(home), "--output", "json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["world_created"] is True and (home / "demo" / "prices.parquet").exists()
    result = first["result"]
    assert result["status"] == "accepted" and result["world"] == "demo"
    assert result["decision"]["execution_domain"] in ("backtest", "dryrun")  # never live: no allow_live
    assert result["precheck"]["metrics"]["trades"] > 0 and result["new_nodes"]
    again = json.loads(run("demo", "--home", str(home), "--output", "json").stdout)
    assert again["world_created"] is False
    assert again["result"]["strategy_id"] == result["strategy_id"]
    assert not again["result"]["new_nodes"]  # everything already in the graph
    assert again["result"]["precheck"]["dataset_fingerprint"] == result["precheck"]["dataset_fingerprint"]


def test_serve_prod_without_dsns_refuses_to_start(tmp_path: Path) -> None:
    cfg = tmp_path / "qmtl.yml"
    cfg.write_text("profile: dev\n")
    r = run("serve", "--profile", "prod", "--config", str(cfg), "--port", "1")
    assert r.exit_code == 1 and "redis_dsn" in r.stderr and "prod" in r.stderr
    r = run("serve", "--profile", "staging")
    assert r.exit_code == 1 and "--profile" in r.stderr
