"""Prometheus text exposition, written by hand (the format is small; no client library needed).

Counters and histograms are declared up front so ``/metrics`` lists them at zero before the first
request — a dashboard can tell "no traffic" from "metric missing".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
DEFAULT_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.n += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta: dict[str, tuple[str, str]] = {}  # name -> (type, help)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}

    def counter(self, name: str, help_: str) -> None:
        self._meta[name] = ("counter", help_)
        self._counters.setdefault(name, {})

    def histogram(self, name: str, help_: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS_MS) -> None:
        self._meta[name] = ("histogram", help_)
        self._histograms.setdefault(name, {})
        self._buckets[name] = buckets

    def inc(self, name: str, by: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + by

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._histograms[name]
            if key not in series:
                series[key] = _Histogram(self._buckets[name])
            series[key].observe(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 when never incremented); tests and health checks read it."""
        with self._lock:
            return self._counters.get(name, {}).get(_labels(labels), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_) in self._meta.items():
                lines.append(f"# HELP {name} {help_}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "counter":
                    lines += self._render_counter(name)
                else:
                    lines += self._render_histogram(name)
        return "\n".join(lines) + "\n"

    def _render_counter(self, name: str) -> list[str]:
        series = self._counters[name]
        if not series:
            return [f"{name} 0"]
        return [f"{name}{_fmt_labels(k)} {_num(v)}" for k, v in sorted(series.items())]

    def _render_histogram(self, name: str) -> list[str]:
        out: list[str] = []
        series = self._histograms[name] or {(): _Histogram(self._buckets[name])}
        for key, h in sorted(series.items()):
            for bound, count in zip(h.buckets, h.counts):
                out.append(f"{name}_bucket{_fmt_labels(key + (('le', _num(bound)),))} {count}")
            out.append(f"{name}_bucket{_fmt_labels(key + (('le', '+Inf'),))} {h.n}")
            out.append(f"{name}_sum{_fmt_labels(key)} {_num(h.total)}")
            out.append(f"{name}_count{_fmt_labels(key)} {h.n}")
        return out


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def gateway_metrics() -> Metrics:
    m = Metrics()
    m.counter("submissions_total", "Strategy submissions answered, by result.")
    m.counter("nodeid_mismatch_total", "Submitted nodes whose NodeID did not match the recomputation.")
    m.counter("nodeid_checksum_mismatch_total", "Submissions whose DAG checksum did not match.")
    m.histogram("diff_duration_ms", "Time to diff a submission against the GSG and persist it (ms).")
    m.counter("http_requests_total", "HTTP requests by route template, method and status.")
    m.histogram("http_request_duration_ms", "HTTP request latency by route template (ms).")
    return m
