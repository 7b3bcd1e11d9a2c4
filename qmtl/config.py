"""``qmtl.yml``: which profile runs and where each service keeps its state.

Two profiles (DESIGN.md "Services"):

* ``dev`` — nothing to start: SQLite files under ``home`` and the in-process bus.  Every DSN may be
  left out and gets a default here, so ``qmtl serve`` works in an empty directory.
* ``prod`` — PostgreSQL and Redis are required (Neo4j for the graph store is optional).  A prod config
  that leaves one out is an *error*, never a silent fall-back to an embedded store: mixing a durable
  world service with an in-memory bus is how state gets lost.

The file is read by ``load_config`` (``path`` argument, else ``$QMTL_CONFIG``, else ``./qmtl.yml``, else
defaults).  Environment variables override the file (pydantic-settings): ``QMTL_PROFILE=prod``,
``QMTL_GATEWAY__DATABASE_DSN=postgresql://…``, ``QMTL_WORLDSERVICE__REDIS_DSN=redis://…`` (a section
and its field joined by ``__``), so a container needs no file and no secret has to be written into
one.  Arguments given in code win over both.  Passwords never reach output: ``describe`` redacts
DSNs and the Neo4j password is a ``SecretStr``.  ``validate`` lists what is wrong for one target so ``qmtl config validate`` and service
start-up report the same findings.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from . import paths
from .services.storage.sql import redact

Profile = Literal["dev", "prod"]
Target = Literal["all", "gateway", "worldservice"]
DEFAULT_FILE = "qmtl.yml"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# PostgreSQL connections the gateway commits submissions on in parallel (its writes are idempotent
# inserts, so they commute); the world service keeps one, as its audit numbering needs serial writes.
DEFAULT_GATEWAY_POOL_SIZE = 8


class ConfigError(Exception):
    """The config file cannot be used; the message names the file and the field."""


class _Section(BaseModel):
    # Unknown keys are a typo more often than a feature: reject them so the user hears about it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Section):
    database_dsn: str | None = None
    redis_dsn: str | None = None
    neo4j_uri: str | None = None
    neo4j_user: str | None = None
    neo4j_password: SecretStr | None = None
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, gt=0)
    database_pool_size: int = Field(DEFAULT_GATEWAY_POOL_SIZE, ge=1, le=64)
    # One log line per request costs more than a small request's own work under load; errors and
    # start-up are logged either way.
    access_log: bool = False
    # Server processes behind the one port (``qmtl serve --workers``); None: one per core where the
    # services' state can be shared between processes (see ``serving_workers``), else one.
    workers: int | None = Field(None, ge=1, le=64)


class WorldServiceConfig(_Section):
    database_dsn: str | None = None
    redis_dsn: str | None = None


# The decoded qmtl.yml while ``load_config`` builds a config from it (the lowest-priority source).
_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("qmtl_config_file", default={})


class _FileSource(PydanticBaseSettingsSource):
    """qmtl.yml as a pydantic-settings source, below the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_VALUES.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get())


class QmtlConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QMTL_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: arguments in code, then ``QMTL_*`` environment variables, then qmtl.yml."""
        return init_settings, env_settings, _FileSource(settings_cls)

    profile: Profile = "dev"
    home: Path = Field(default_factory=paths.home)
    # Where the SDK submits strategies; None means "start the embedded pair in-process".
    gateway_url: str | None = None
    # Namespace of every Redis key (bus streams, activation cache): two deployments, or a test run,
    # can share one Redis server without reading each other's events.
    redis_prefix: str = Field("qmtl", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    worldservice: WorldServiceConfig = Field(default_factory=WorldServiceConfig)

    def gateway_database_dsn(self) -> str:
        """The gateway's DSN, defaulting (dev only) to a SQLite file under ``home``."""
        return self.gateway.database_dsn or _sqlite_under(self.home, "gateway.db")

    def worldservice_database_dsn(self) -> str:
        return self.worldservice.database_dsn or _sqlite_under(self.home, "worldservice.db")


def _sqlite_under(home: Path, filename: str) -> str:
    return f"sqlite:///{(home / filename).resolve()}"


def config_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The file ``load_config`` would read, or None when there is none (defaults apply)."""
    if path is not None:
        return Path(path)
    env = os.environ.get("QMTL_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_FILE
    return local if local.exists() else None


def load_config(path: str | os.PathLike[str] | None = None) -> QmtlConfig:
    """Read and check ``qmtl.yml``; a missing default file means the dev defaults.

    A file named explicitly (argument or ``$QMTL_CONFIG``) must exist.  Relative ``home`` paths are
    taken relative to the config file, so the same file works from any working directory.
    """
    file = config_path(path)
    if file is not None and not file.exists():
        raise ConfigError(f"{file}: config file not found")
    raw = _read_yaml(file) if file is not None else {}
    token = _FILE_VALUES.set(raw)
    try:
        config = QmtlConfig()
    except ValidationError as exc:
        raise ConfigError(_describe(file or Path("<environment>"), exc)) from None
    finally:
        _FILE_VALUES.reset(token)
    if file is not None and "home" in raw and not config.home.is_absolute():
        config = config.model_copy(update={"home": (file.parent / config.home)})
    return config


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _describe(file: Path, exc: ValidationError) -> str:
    lines = [f"{file}: invalid configuration"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)


def describe(config: QmtlConfig) -> list[str]:
    """Where each service keeps its state, one line each, passwords hidden (for start-up logs)."""
    bus = config.worldservice.redis_dsn or config.gateway.redis_dsn
    cache = config.worldservice.redis_dsn
    return [f"profile: {config.profile}",
            f"gateway database: {redact(config.gateway_database_dsn())}",
            f"world service database: {redact(config.worldservice_database_dsn())}",
            f"control bus: {redact(bus) + ' (Redis Streams)' if bus else 'in-process'}",
            f"activation cache: {redact(cache) if cache else 'none'}",
            f"strategy graph: {config.gateway.neo4j_uri or 'the gateway database'}"]


def unshared_state(config: QmtlConfig) -> list[str]:
    """What keeps several server processes from sharing this configuration's state (empty: nothing).

    Every process must see every other's writes and events: PostgreSQL for both databases (an SQLite
    file has one writer, and its group commit batches only one process's transactions) and Redis for
    the control bus (the in-process bus would keep one process's events from another's clients)."""
    problems = [f"the {what} is SQLite (one writer per file): use PostgreSQL" for what, dsn in
                (("gateway database", config.gateway_database_dsn()),
                 ("world service database", config.worldservice_database_dsn())) if dsn.startswith("sqlite:")]
    if not (config.worldservice.redis_dsn or config.gateway.redis_dsn):
        problems.append("the control bus is in-process: set worldservice.redis_dsn")
    return problems


def serving_workers(config: QmtlConfig, requested: int | None = None) -> int:
    """How many server processes ``serve`` runs: ``requested`` (else ``gateway.workers``) when the state
    can be shared, else 1; when unset, one per core.  Asking for several where they cannot share the
    state is an error that says why, never a silent single process."""
    wanted = requested if requested is not None else config.gateway.workers
    problems = unshared_state(config)
    if wanted is None:
        return 1 if problems else max(1, os.cpu_count() or 1)
    if wanted < 1:
        raise ConfigError(f"workers: expected at least 1, got {wanted}")
    if wanted > 1 and problems:
        raise ConfigError(f"workers: {wanted} server processes cannot share this configuration's state: "
                          + "; ".join(problems))
    return wanted


def validate(config: QmtlConfig, target: Target = "all") -> list[str]:
    """Errors that keep ``target`` from starting under ``config.profile`` (empty list: fine)."""
    if target not in ("all", "gateway", "worldservice"):
        raise ValueError(f"unknown target {target!r}; expected all, gateway or worldservice")
    errors: list[str] = []
    if target in ("all", "gateway"):
        errors += _check_gateway(config)
    if target in ("all", "worldservice"):
        errors += _check_worldservice(config)
    return errors


def _check_gateway(config: QmtlConfig) -> list[str]:
    g = config.gateway
    errors = _check_dsns("gateway", config.profile, g.database_dsn, g.redis_dsn)
    if g.neo4j_uri is not None:
        if not g.neo4j_uri.startswith(("bolt://", "bolt+s://", "neo4j://", "neo4j+s://")):
            errors.append(f"gateway.neo4j_uri: expected bolt:// or neo4j://, got {g.neo4j_uri!r}")
        if g.neo4j_user is None or g.neo4j_password is None:
            errors.append("gateway.neo4j_uri is set but gateway.neo4j_user/neo4j_password are not")
    return errors


def _check_worldservice(config: QmtlConfig) -> list[str]:
    w = config.worldservice
    return _check_dsns("worldservice", config.profile, w.database_dsn, w.redis_dsn)


def _check_dsns(section: str, profile: Profile, database: str | None, redis: str | None) -> list[str]:
    errors: list[str] = []
    if database is not None and not database.startswith(("sqlite:///", "postgresql://", "postgres://")):
        errors.append(f"{section}.database_dsn: expected sqlite:///… or postgresql://…, got {database!r}")
    if redis is not None and not redis.startswith(("redis://", "rediss://")):
        errors.append(f"{section}.redis_dsn: expected redis://…, got {redis!r}")
    if profile == "prod":
        if database is None:
            errors.append(f"{section}.database_dsn is required in the prod profile (PostgreSQL)")
        elif database.startswith("sqlite"):
            errors.append(f"{section}.database_dsn: the prod profile needs PostgreSQL, not SQLite")
        if redis is None:
            errors.append(f"{section}.redis_dsn is required in the prod profile")
    return errors
