"""The service-facing CLI (`qmtl world/status/config/submit`) against a real served gateway."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.config import QmtlConfig
from qmtl.services.app import EmbeddedServices
from qmtl.services.gateway.sample_dags import chain_dag
from tests.services.conftest import PG_BASE, REDIS_URL, unavailable
from tests.redis_support import delete_keys

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


def test_world_create_sets_the_decision_ttl(gateway: str) -> None:
    r = run("world", "create", "cli-ttl", "--decision-ttl", "86400", "--gateway-url", gateway, "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decision_ttl"] == 86400
    r = run("world", "show", "cli-ttl", "--gateway-url", gateway, "-o", "json")
    assert json.loads(r.stdout)["decision_ttl"] == 86400
    r = run("world", "create", "cli-ttl-default", "--gateway-url", gateway, "-o", "json")
    assert json.loads(r.stdout)["decision_ttl"] == 300
    r = run("world", "create", "cli-ttl-bad", "--decision-ttl", "0", "--gateway-url", gateway)
    assert r.exit_code == 2 and "--decision-ttl" in r.output and "Traceback" not in r.output


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
    r = run("world", "apply", "cli-alloc", "--run-id", "r1", "--plan", str(plan), "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_UNKNOWN_STRATEGY" in r.stderr and "strat-a" in r.stderr
    with httpx.Client(base_url=gateway) as c:  # sandbox world: strat-a passes, paper, may be activated
        c.post("/worlds/cli-alloc/evaluate", json={"strategies": [{"strategy_id": "strat-a"}],
                                                   "as_of": "2024-01-01T00:00:00Z",
                                                   "dataset_fingerprint": "blake3:" + "1" * 64})
    r = run("world", "apply", "cli-alloc", "--run-id", "r-stale", "--plan", str(plan), "--etag", '"old"',
            "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_ETAG_MISMATCH" in r.stderr
    args = ("world", "apply", "cli-alloc", "--run-id", "r1", "--plan", str(plan),
            "--gateway-url", gateway, "-o", "json")
    r = run(*args)
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert json.loads(run(*args).stdout) == first  # idempotent by run id
    r = run("world", "allocations", "cli-alloc", "--gateway-url", gateway, "-o", "json")
    assert "strat-a" in json.dumps(json.loads(r.stdout))
    # without --run-id each apply is a new run (and a new activation sequence)
    plan.write_text("deactivate: [strat-a]\n")
    runs = [json.loads(run("world", "apply", "cli-alloc", "--plan", str(plan), "--gateway-url", gateway,
                           "-o", "json").stdout) for _ in range(2)]
    assert runs[0]["run_id"] != runs[1]["run_id"] and runs[0]["run_id"].startswith("apply-")
    assert all(r["status"] == "completed" for r in runs)


def test_rebalance_plan_and_apply(gateway: str, tmp_path: Path) -> None:
    run("world", "create", "cli-rb", "--gateway-url", gateway)
    with httpx.Client(base_url=gateway) as c:
        c.post("/worlds/cli-rb/evaluate", json={"strategies": [{"strategy_id": "rb-a"}, {"strategy_id": "rb-b"}],
                                                "as_of": "2024-01-01T00:00:00Z",
                                                "dataset_fingerprint": "blake3:" + "2" * 64})
    r = run("world", "rebalance-plan", "cli-rb", "--gateway-url", gateway, "-o", "json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["plans"][0]["target"] == {"rb-a": 0.5, "rb-b": 0.5}
    saved = tmp_path / "rb.json"
    saved.write_text(json.dumps(plan))
    r = run("world", "rebalance-apply", "--plan", str(saved), "--run-id", "cli-rb1", "--gateway-url", gateway,
            "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["worlds"][0]["allocations"] == {"rb-a": 0.5, "rb-b": 0.5}
    # the saved plan is now stale (the allocations changed): a new run with it is refused, by name
    r = run("world", "rebalance-apply", "--plan", str(saved), "--run-id", "cli-rb2", "--gateway-url", gateway)
    assert r.exit_code == 1 and "E_ETAG_MISMATCH" in r.stderr
    r = run("world", "allocations", "--gateway-url", gateway, "-o", "json")
    assert json.loads(r.stdout)["strategies"]["rb-a"] == {"cli-rb": 0.5}
    r = run("world", "rebalance-apply", "cli-rb", "--gateway-url", gateway, "-o", "json")  # plan + apply
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "completed"


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


def _prod_yml(path: Path, schema: str, prefix: str, redis_url: str, pg_base: str) -> Path:
    dsn = f"{pg_base}?options=-csearch_path%3D{schema}"
    path.write_text(f"profile: prod\nredis_prefix: {prefix}\n"
                    f"gateway:\n  database_dsn: {dsn}\n  redis_dsn: {redis_url}\n"
                    f"worldservice:\n  database_dsn: {dsn}\n  redis_dsn: {redis_url}\n")
    return path


@pytest.fixture
def prod_yml(tmp_path: Path):
    """A prod qmtl.yml on the local PostgreSQL (a schema of its own) and Redis (a key prefix of its
    own); skipped with the reason when a server is absent (failed under QMTL_REQUIRE_SERVICES=1)."""
    import psycopg
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        admin = psycopg.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except Exception as exc:  # any failure to connect means "no server here"
        unavailable(f"prod serve needs PostgreSQL at {PG_BASE} and Redis at {REDIS_URL}: {exc}")
    tag = uuid.uuid4().hex[:10]
    schema, prefix = f"qmtl_serve_{tag}", f"qmtl-serve:{tag}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _prod_yml(tmp_path / "qmtl.yml", schema, prefix, REDIS_URL, PG_BASE), schema, prefix
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        delete_keys(REDIS_URL, prefix)


def _wait_for_health(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"qmtl serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return httpx.get(f"{url}/health", timeout=1).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"qmtl serve did not answer at {url} within {timeout}s")


def test_serve_prod_profile_starts_and_keeps_state_in_postgres_and_redis(prod_yml) -> None:
    """`qmtl serve --profile prod` as a user runs it: a real process, a real port, real servers."""
    import psycopg
    import redis

    cfg, schema, prefix = prod_yml
    url = closed_port_url()
    port = url.rsplit(":", 1)[1]
    proc = subprocess.Popen([sys.executable, "-m", "qmtl.cli.main", "serve", "--profile", "prod",
                             "--config", str(cfg), "--port", port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for_health(url, proc)["status"] == "ok"
        assert httpx.post(f"{url}/worlds", json={"id": "prod-w"}).status_code == 201
        resp = httpx.post(f"{url}/strategies", json={"dag": chain_dag("p", 5), "world_ids": ["prod-w"]})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["strategy_id"]
        assert httpx.get(f"{url}/strategies/{sid}").json()["world_ids"] == ["prod-w"]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert "qmtl serve: profile: prod" in stderr and "(Redis Streams)" in stderr
    # the state is where the config said: PostgreSQL rows, Redis streams under the prefix
    with psycopg.connect(PG_BASE) as conn:
        rows = conn.execute(f'SELECT strategy_id FROM "{schema}".gw_strategy').fetchall()
        worlds = conn.execute(f'SELECT COUNT(*) FROM "{schema}".ws_worlds').fetchone()
    assert [r[0] for r in rows] == [sid] and worlds[0] == 1
    rds = redis.Redis.from_url(REDIS_URL)
    assert rds.exists(f"{prefix}:bus:queues:stream")
    rds.close()


def test_serve_prod_with_servers_down_fails_clearly(tmp_path: Path) -> None:
    cfg = _prod_yml(tmp_path / "qmtl.yml", "public", "x", "redis://127.0.0.1:1/0",
                    "postgresql://postgres@127.0.0.1:1/test")
    r = run("serve", "--config", str(cfg), "--port", "1")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "cannot start" in r.stderr and "127.0.0.1:1" in r.stderr


def test_submit_with_malformed_qmtl_yml_prints_the_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.submit_support import MOMENTUM
    monkeypatch.delenv("QMTL_GATEWAY_URL", raising=False)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.py").write_text(MOMENTUM)
    (tmp_path / "qmtl.yml").write_text("profile: [\n")
    r = cli.invoke(app, ["submit", "s.py", "-w", "x", "--embedded"])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "REJECTED" in r.stdout and "qmtl.yml:2: not valid YAML" in r.stdout
    assert "Traceback" not in r.output


def test_submit_uses_gateway_url_from_qmtl_yml_unless_told_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.submit_support import MOMENTUM
    monkeypatch.delenv("QMTL_GATEWAY_URL", raising=False)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.py").write_text(MOMENTUM)
    configured, explicit = closed_port_url(), closed_port_url()
    (tmp_path / "qmtl.yml").write_text(f"home: state\ngateway_url: {configured}/\n")
    r = cli.invoke(app, ["submit", "s.py", "-w", "x", "--timeout", "2", "-o", "json"])
    assert r.exit_code == 2, r.output  # the configured gateway is down: safe mode, not embedded
    assert json.loads(r.stdout)["gateway_url"] == configured
    r = cli.invoke(app, ["submit", "s.py", "-w", "x", "--timeout", "2", "-o", "json",
                         "--gateway-url", explicit])
    assert r.exit_code == 2 and json.loads(r.stdout)["gateway_url"] == explicit
    monkeypatch.setenv("QMTL_GATEWAY_URL", explicit)
    r = cli.invoke(app, ["submit", "s.py", "-w", "x", "-o", "json", "--embedded"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["embedded"] is True and shown["gateway_url"] not in (configured, explicit)


def test_gateway_url_order_is_explicit_env_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from qmtl.services.client import DEFAULT_GATEWAY_URL, configured_gateway_url, resolve_gateway_url
    monkeypatch.delenv("QMTL_GATEWAY_URL", raising=False)
    assert configured_gateway_url(None, None) is None
    assert configured_gateway_url(None, "http://yml:1/") == "http://yml:1"
    assert resolve_gateway_url(None) == DEFAULT_GATEWAY_URL  # world/status keep their default
    monkeypatch.setenv("QMTL_GATEWAY_URL", "http://env:2")
    assert configured_gateway_url(None, "http://yml:1") == "http://env:2"
    assert resolve_gateway_url(None) == "http://env:2"
    assert configured_gateway_url("http://cli:3", "http://yml:1") == "http://cli:3"


def test_submit_output_must_be_text_or_json(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("")
    r = cli.invoke(app, ["submit", str(path), "-w", "x", "--output", "xml"])
    assert r.exit_code == 2  # usage error, before anything is compiled or submitted
    assert "xml" in r.output and "text" in r.output and "json" in r.output
