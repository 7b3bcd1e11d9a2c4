"""qmtl.yml loading and validation: dev defaults, prod requirements, errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmtl.config import ConfigError, QmtlConfig, load_config, serving_workers, validate

PROD_OK = """
profile: prod
gateway:
  database_dsn: postgresql://postgres@127.0.0.1:5432/test
  redis_dsn: redis://127.0.0.1:6379/0
worldservice:
  database_dsn: postgresql://postgres@127.0.0.1:5432/test
  redis_dsn: redis://127.0.0.1:6379/0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qmtl.yml"
    path.write_text(text)
    return path


def test_no_file_means_dev_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    config = load_config()
    assert config.profile == "dev"
    assert config.gateway_database_dsn() == f"sqlite:///{(tmp_path / 'home' / 'gateway.db').resolve()}"
    assert config.worldservice_database_dsn().endswith("/home/worldservice.db")
    assert validate(config) == []


def test_reads_cwd_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.delenv("QMTL_HOME", raising=False)  # .ci/run sets it; this test is about the file
    _write(tmp_path, "profile: dev\nhome: state\ngateway:\n  max_body_bytes: 1024\n")
    config = load_config()
    assert config.gateway.max_body_bytes == 1024
    assert config.home == tmp_path / "state"  # relative to the file, not the cwd
    other = tmp_path / "elsewhere.yml"
    other.write_text(PROD_OK)
    monkeypatch.setenv("QMTL_CONFIG", str(other))
    assert load_config().profile == "prod"


def test_prod_without_dsns_is_an_error_per_target() -> None:
    config = QmtlConfig(profile="prod")
    gateway = validate(config, "gateway")
    world = validate(config, "worldservice")
    assert any("gateway.database_dsn is required" in e for e in gateway)
    assert any("gateway.redis_dsn is required" in e for e in gateway)
    assert not any(e.startswith("worldservice") for e in gateway)
    assert any("worldservice.database_dsn is required" in e for e in world)
    assert sorted(validate(config, "all")) == sorted(gateway + world)


def test_prod_with_dsns_validates(tmp_path: Path) -> None:
    assert validate(load_config(_write(tmp_path, PROD_OK))) == []


def test_prod_rejects_sqlite_and_bad_schemes() -> None:
    config = QmtlConfig.model_validate({
        "profile": "prod",
        "gateway": {"database_dsn": "sqlite:///x.db", "redis_dsn": "http://nope",
                    "neo4j_uri": "bolt://127.0.0.1:7687"},
        "worldservice": {"database_dsn": "mysql://x", "redis_dsn": "redis://127.0.0.1"}})
    errors = validate(config)
    assert "gateway.database_dsn: the prod profile needs PostgreSQL, not SQLite" in errors
    assert any(e.startswith("gateway.redis_dsn: expected redis://") for e in errors)
    assert any("neo4j_user/neo4j_password" in e for e in errors)
    assert any(e.startswith("worldservice.database_dsn: expected sqlite") for e in errors)
    with pytest.raises(ValueError, match="unknown target"):
        validate(config, "dagmanager")  # type: ignore[arg-type]


def test_unknown_field_and_wrong_type_name_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "profile: staging\ngateway:\n  databse_dsn: x\n  max_body_bytes: lots\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert "profile:" in text and "gateway.databse_dsn:" in text and "gateway.max_body_bytes:" in text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "profile: dev\ngateway: [unclosed\n")
    with pytest.raises(ConfigError, match=r"qmtl\.yml:\d+: not valid YAML"):
        load_config(path)


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 8 section 5: settings from the environment as well as qmtl.yml (pydantic-settings)."""
    path = _write(tmp_path, "profile: dev\ngateway:\n  max_body_bytes: 1024\n")
    monkeypatch.setenv("QMTL_PROFILE", "prod")
    monkeypatch.setenv("QMTL_GATEWAY__DATABASE_DSN", "postgresql://u:p@ss@db/q")
    monkeypatch.setenv("QMTL_WORLDSERVICE__REDIS_DSN", "redis://127.0.0.1:6379/0")
    config = load_config(path)
    assert config.profile == "prod" and config.gateway.max_body_bytes == 1024  # env and file merged
    assert config.gateway.database_dsn == "postgresql://u:p@ss@db/q"
    assert config.worldservice.redis_dsn == "redis://127.0.0.1:6379/0"
    assert QmtlConfig(profile="dev").profile == "dev"  # arguments in code win over the environment
    monkeypatch.setenv("QMTL_GATEWAY__MAX_BODY_BYTES", "-5")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_config(path)


def test_no_file_at_all_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QMTL_CONFIG", raising=False)
    monkeypatch.setenv("QMTL_REDIS_PREFIX", "from-env")
    assert load_config().redis_prefix == "from-env"


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    from qmtl.config import describe

    config = load_config(_write(tmp_path, "profile: prod\ngateway:\n"
                                          "  database_dsn: postgresql://u:p@ss@db/q\n"
                                          "  redis_dsn: redis://:r3d@s@127.0.0.1:6379/0\n"
                                          "  neo4j_uri: bolt://n:7687\n  neo4j_user: n\n  neo4j_password: n30@j\n"
                                          "worldservice:\n  database_dsn: postgresql://u:p@ss@db/q\n"
                                          "  redis_dsn: redis://:r3d@s@127.0.0.1:6379/0\n"))
    shown = "\n".join(describe(config))  # what `qmtl serve` prints at start-up
    for secret in ("p@ss", "ss@", "r3d", "n30"):
        assert secret not in shown, secret
    assert "n30" not in repr(config) and "n30" not in str(config.model_dump())  # a SecretStr
    assert config.gateway.neo4j_password.get_secret_value() == "n30@j"


def test_workers_default_to_one_per_core_only_where_state_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    pg = "postgresql://u@h/db"
    shared = QmtlConfig.model_validate({"profile": "prod", "gateway": {"database_dsn": pg},
                                        "worldservice": {"database_dsn": pg, "redis_dsn": "redis://h:6379/0"}})
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert serving_workers(shared) == 6
    assert serving_workers(shared, 3) == 3
    assert serving_workers(shared.model_copy(update={"gateway": shared.gateway.model_copy(
        update={"workers": 2})})) == 2
    assert serving_workers(QmtlConfig()) == 1  # dev: SQLite files and the in-process bus
    # PostgreSQL without Redis: the in-process bus alone keeps it to one process
    no_bus = QmtlConfig.model_validate({"gateway": {"database_dsn": pg}, "worldservice": {"database_dsn": pg}})
    assert serving_workers(no_bus) == 1


def test_asking_for_workers_that_cannot_share_state_says_why() -> None:
    with pytest.raises(ConfigError) as err:
        serving_workers(QmtlConfig(), 2)
    message = str(err.value)
    assert "gateway database is SQLite" in message and "world service database is SQLite" in message
    assert "control bus is in-process" in message
    assert serving_workers(QmtlConfig(), 1) == 1
