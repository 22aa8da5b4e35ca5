"""Prometheus metrics of a gateway (served at ``/metrics``)."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, looked up once: ``labels`` takes a lock and builds tuples,
    a measurable cost when it runs for every frame. (Label values come from small fixed
    sets: event names, error codes, services.)"""
    child = _children.get((metric, values))
    if child is None:
        child = _children[(metric, values)] = metric.labels(*values)
    return cast(M, child)


CONNECTIONS = Gauge("im_gateway_connections", "Open client connections (/ws and /socket.io/)")
USERS = Gauge("im_gateway_users", "Users with at least one connection here")
FRAMES_IN = Counter("im_gateway_frames_in_total", "Client frames accepted", ["event"])
FRAMES_OUT = Counter("im_gateway_frames_out_total", "Frames sent to clients")
ERRORS = Counter("im_gateway_errors_total", "Error frames sent", ["code"])
REQUEST_SECONDS = Histogram(
    "im_gateway_request_seconds",
    "Time from a client frame to its ack/error",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BROKER_UP = Gauge("im_gateway_broker_connected", "1 while the broker connection is up")
SHED = Counter(
    "im_gateway_shed_total",
    "Commands refused at once because their service is behind",
    ["service", "kind"],
)
TIMEOUTS = Counter(
    "im_gateway_timeouts_total", "Commands answered unavailable: no reply in time", ["service"]
)
OVERLOADED = Counter(
    "im_gateway_queue_full_total", "Commands refused by a full service queue", ["service"]
)
REPEATS_DROPPED = Counter(
    "im_gateway_repeats_dropped_total", "Pushes a service sent again that had gone out here"
)
SLOW_CLOSES = Counter("im_gateway_slow_consumer_closes_total", "Connections closed for not reading")
CONNECTS_REFUSED = Counter(
    "im_gateway_connects_refused_total",
    "New sockets closed with 1013 + retry_after_ms: too many connections being set up",
)
COMMANDS_PER_MESSAGE = Histogram(
    "im_gateway_commands_per_message",
    "Commands sent to a service in one broker message (a batch, under load)",
    ["service"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
COMMAND_PUBLISH_SECONDS = Histogram(
    "im_gateway_command_publish_seconds",
    "From a command's arrival to the broker's confirm of the message carrying it",
    ["service"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
