"""``/metrics`` under ``serve --workers``: each worker process counts what it served, and the one that
answers a scrape reports the sum over all of them, for its own service only.

Real processes with ``PROMETHEUS_MULTIPROC_DIR`` set, as ``serve`` sets it for its workers
(prometheus_client picks its multi-process value store when it is imported, so this cannot be
switched on inside the test process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import sys
from qmtl.services.metrics import GatewayMetrics, WorldServiceMetrics
gw, ws = GatewayMetrics(), WorldServiceMetrics()
n = int(sys.argv[1])
gw.submissions.labels(result="created").inc(n)
gw.http_requests.labels(service="gateway", route="/strategies", method="POST", status="201").inc(n)
ws.http_requests.labels(service="worldservice", route="/worlds", method="GET", status="200").inc(10 * n)
ws.evaluations.inc(n)
"""

SCRAPE = """
import sys
from qmtl.services.metrics import GatewayMetrics
sys.stdout.write(GatewayMetrics().render().decode())
"""


def _python(code: str, *args: str, metrics_dir: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True,
                          text=True, timeout=60).stdout


def test_a_scrape_sums_every_worker_and_keeps_to_its_service(tmp_path: Path) -> None:
    for n in ("3", "4"):  # two worker processes, each with its own share of the traffic
        _python(WORKER, n, metrics_dir=tmp_path)
    families = {f.name: f for f in text_string_to_metric_families(_python(SCRAPE, metrics_dir=tmp_path))}
    created = [s.value for s in families["qmtl_gateway_submissions"].samples
               if s.name.endswith("_total") and s.labels == {"result": "created"}]
    assert created == [7.0]
    http = [s for s in families["qmtl_http_requests"].samples if s.name.endswith("_total")]
    assert {s.labels["service"] for s in http} == {"gateway"}
    assert sum(s.value for s in http) == 7.0
    assert not any(name.startswith("qmtl_worldservice_") for name in families)
