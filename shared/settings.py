"""Process configuration, read from the environment (prefix ``IM_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123"
MIN_JWT_SECRET_BYTES = 32


def _db_pool_size(description: str) -> Any:
    """An ``IM_<SERVICE>_DB_POOL_SIZE``: every service's has the same default and bounds."""
    return Field(default=5, ge=1, le=200, description=description)


class Settings(BaseSettings):
    """Every ``IM_`` setting of every process. Each process reads the ones it needs."""

    model_config = SettingsConfigDict(env_prefix="IM_", extra="ignore")

    # Broker and naming
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    amqp_urls: str = Field(
        default="",
        description="The nodes of a broker cluster, comma-separated: a process connects to the "
        "first that answers and, when that node goes, to the next. Empty: IM_AMQP_URL alone.",
    )
    amqp_heartbeat_s: int = Field(
        default=10,
        ge=0,
        le=3600,
        description="AMQP heartbeat for every broker URL that sets none (?heartbeat=): a "
        "silent node (its machine down, the network cut) is given up after about three of "
        "these and the next node is tried. 0: no heartbeats (aiormq's default is 60).",
    )
    namespace: str = Field(
        default="im",
        pattern=r"^[a-z][a-z0-9_-]{0,30}$",
        description="Prefix of every exchange and queue; lets stacks share one broker.",
    )
    prefetch: int = Field(default=64, ge=2, le=10_000)
    delivery_limit: int = Field(default=5, ge=1)
    queue_max_length: int = Field(
        default=20_000,
        ge=10,
        description="Messages a service's durable queue holds at most (one message carries a "
        "command, or a gateway's batch of up to 100).",
    )
    chat_partitions: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Chat's durable commands are split by conversation over this many queues, "
        "each with one active consumer, so a conversation's commands keep their order with any "
        "number of replicas; at most this many chat replicas work at once (the others stand "
        "by). One replica is fastest with one: more mean smaller batches. Fixed per "
        "deployment: gateways and chat must agree (see docs/chat.md before changing it).",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        description="How many replicas of this service run: with the replica's index, which "
        "partitions this one consumes first (the others it joins later, as a standby).",
    )
    replica_index: int | None = Field(
        default=None,
        ge=0,
        description="This replica's number, 0 to IM_REPLICAS - 1. Unset, a replica takes the "
        "first number no running replica holds (so identical replicas need only IM_REPLICAS).",
    )
    partition_standby_s: float = Field(
        default=5.0,
        ge=0,
        description="How long after its start a replica joins the partitions of the others, "
        "as a standby (the broker activates it when their active replica is gone).",
    )
    transient_max_length: int = Field(
        default=2_000, ge=10, description="The same for transient commands (typing, signals)."
    )
    shed_after_ms: int = Field(
        default=2_000,
        ge=10,
        description="A service whose oldest unanswered command is this old gets no new ones "
        "from this gateway: they are refused at once with unavailable and retry_after_ms.",
    )
    publishes_in_flight: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Messages of a gateway's commands to one service that may wait for their "
        "confirms at once; each is written after the one before it, so order is kept.",
    )
    transient_shed_after_ms: int = Field(
        default=500, ge=10, description="The same for transient events: they are shed first."
    )

    # Auth
    jwt_secret: str = DEV_JWT_SECRET
    dev_mode: bool = False

    # Gateway
    gateway_host: str = Field(
        default="0.0.0.0",
        description="Where the gateway listens; 127.0.0.1 in dev mode unless set.",
    )
    gateway_port: int = 8000
    gateway_reuse_port: bool = Field(
        default=False,
        description="SO_REUSEPORT: several gateway processes on one machine share the port and "
        "the kernel spreads new connections over them (one process uses one core).",
    )
    gateway_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`make up` starts this many gateway processes on the port (with "
        "IM_GATEWAY_REUSE_PORT); one per core is what a machine serving many sockets wants.",
    )
    heartbeat_interval_s: float = Field(default=20.0, gt=0)
    ws_compression: bool = Field(
        default=False,
        description="permessage-deflate: fewer bytes, but zlib state (~50 KB) per connection.",
    )
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_limit_per_s: float = Field(default=30.0, gt=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    user_rate_limit_per_s: float = Field(
        default=60.0, gt=0, description="Events/s of one user over all their connections here."
    )
    user_rate_limit_burst: int = Field(default=120, ge=1)
    max_connections_per_user: int = Field(
        default=10, ge=1, description="More sockets for one user are refused with close 4429."
    )
    max_pending_connects: int = Field(
        default=4096,
        ge=1,
        description="Sockets set up at once (token, binding, announcement); more are closed "
        "with 1013 and retry_after_ms, spread out at the measured set-up rate. A refusal costs "
        "the gateway a handshake, as much as an admission: the limit is for storms beyond it.",
    )
    max_undelivered_per_conversation: int = Field(
        default=1000,
        ge=1,
        description="A conversation may run this many messages ahead of what its recipient "
        "has had delivered; more get conflict (bounds a flood to a user who never connects).",
    )
    request_timeout_s: float = Field(default=10.0, gt=0)
    send_queue_limit: int = Field(
        default=2048, ge=16, description="Frames queued for one client before it is dropped."
    )
    gateway_heartbeat_s: float = Field(
        default=5.0, gt=0, description="How often a gateway tells presence it is alive."
    )
    gateway_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="Silence after which presence declares a gateway dead (only silence "
        "presence could hear: never sooner than this after its own broker connection came back).",
    )
    connection_batch_ms: float = Field(
        default=5.0,
        ge=0,
        description="Connections opened/closed within this are announced to the services as "
        "one fact (a further batch gathers while one is being confirmed).",
    )
    repeat_window_s: float = Field(
        default=300.0,
        ge=0,
        description="A push a service sends again (it ran a redelivered command) is dropped "
        "when this gateway delivered the same frame within this long.",
    )
    repeat_memory: int = Field(
        default=50_000, ge=1, description="Frames remembered for that, at most (~100 B each)."
    )

    # Services
    data_dir: Path = Path("./data")
    reconnect_grace_s: float = Field(default=10.0, ge=0)
    status_coalesce_ms: int = Field(
        default=250, ge=1, description="Per mentor, at most one status broadcast per this."
    )
    call_ring_timeout_s: float = Field(default=30.0, gt=0)
    help_expiry_s: float = Field(default=900.0, gt=0)
    max_open_help_requests: int = Field(
        default=5, ge=1, description="Open help requests one student may have at once."
    )
    typing_timeout_s: float = Field(default=6.0, gt=0)
    edit_window_s: float = Field(
        default=86_400.0, gt=0, description="A message may be edited this long after sent_at."
    )
    help_repush_after_s: float = Field(
        default=60.0,
        ge=0,
        description="A mentor turning available again is re-pushed only the open help "
        "requests not shown to them within this (status flapping must not flood them).",
    )
    catchup_limit: int = Field(
        default=100,
        ge=1,
        description="Items of each kind a connection is pushed on connect at most (the newest);"
        " the client fetches the rest with sync / get_history / list_help_requests.",
    )
    presence_db_url: str | None = None
    chat_db_url: str | None = None
    calls_db_url: str | None = None
    help_db_url: str | None = None
    presence_db_pool_size: int = _db_pool_size(
        "Connections a presence process keeps to its database (and its database "
        "threads: presence and chat run each unit of work whole in one)."
    )
    chat_db_pool_size: int = _db_pool_size("The same for chat.")
    calls_db_pool_size: int = _db_pool_size("The same for calls.")
    help_db_pool_size: int = _db_pool_size("The same for help.")
    db_writes_on_loop: bool = Field(
        default=True,
        description="On a SQLite file, chat and presence run their write transactions on the "
        "event loop (no thread hop; a write waiting for another process's lock still goes to "
        "a database thread). False: every write in a database thread, as on PostgreSQL.",
    )

    health_file: Path | None = Field(
        default=None, description="Touched every few seconds while the process has the broker."
    )

    metrics_token: str | None = Field(
        default=None,
        description="When set, /metrics answers only requests bearing this token (401 else).",
    )

    # Logging
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _replica_index_in_range(self) -> Settings:
        if self.replica_index is not None and self.replica_index >= self.replicas:
            raise ValueError("IM_REPLICA_INDEX must be below IM_REPLICAS")
        return self

    @model_validator(mode="after")
    def _dev_mode_stays_local(self) -> Settings:
        # Dev mode mints tokens for anyone who asks: only this machine may ask.
        if self.dev_mode and "gateway_host" not in self.model_fields_set:
            self.gateway_host = "127.0.0.1"
        return self

    def jwt_secret_problem(self) -> str | None:
        """Why the token secret is unfit outside dev mode (anyone could mint tokens), if so."""
        if self.dev_mode:
            return None
        if self.jwt_secret == DEV_JWT_SECRET:
            return "IM_JWT_SECRET is the development secret published in this repository"
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            return f"IM_JWT_SECRET is shorter than {MIN_JWT_SECRET_BYTES} bytes"
        return None

    def broker_urls(self) -> list[str]:
        """Where the broker is: every URL of ``IM_AMQP_URLS``, else ``IM_AMQP_URL``; each
        with ``heartbeat=IM_AMQP_HEARTBEAT_S`` unless it sets its own."""
        urls = [url.strip() for url in self.amqp_urls.split(",") if url.strip()]
        return [with_heartbeat(url, self.amqp_heartbeat_s) for url in urls or [self.amqp_url]]

    def db_url(self, service: str) -> str:
        """The database of ``service``: its ``IM_<SERVICE>_DB_URL`` or a SQLite file in data_dir."""
        explicit: str | None = getattr(self, f"{service}_db_url", None)
        if explicit:
            return explicit
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def partitions(self, service: str) -> int:
        """How many partitions ``service``'s durable commands have (0: one shared queue)."""
        return self.chat_partitions if service == "chat" else 0

    def db_pool_size(self, service: str) -> int:
        """How many connections ``service`` keeps to its database: ``IM_<SERVICE>_DB_POOL_SIZE``."""
        size: int = getattr(self, f"{service}_db_pool_size")
        return size


def with_heartbeat(url: str, heartbeat_s: int) -> str:
    """``url`` with the query parameter ``heartbeat``, unless it has one already."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "heartbeat" for name, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("heartbeat", str(heartbeat_s))])))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
