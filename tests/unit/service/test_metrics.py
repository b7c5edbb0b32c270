"""``GET /metrics``: the Prometheus text format, parsed back line by line."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.unit.service.conftest import ClientFactory
from tracemark.keys import Keyring, mint_api_token

RECORD = {"content_sha256": "cd" * 32, "kind": "text", "key_id": "k", "model_id": "m"}
_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels) and each family's TYPE; fails on any line outside the format."""
    assert text.endswith("\n")
    samples: Samples = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE line before it"
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples, types


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_parse_and_count_requests(client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/v1/health").status_code == 200
    assert client.get("/v1/log/entries/7").status_code == 404
    assert client.get("/no/such/thing").status_code == 404
    assert client.post("/v1/text/detect", json={"text": "w1 w2 w3"}).status_code == 200
    token = {"Authorization": f"Bearer {mint_api_token(Keyring(), label='test')}"}
    assert client.post("/v1/log/entries", json=RECORD, headers=token).status_code == 200

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse(response.text)
    assert types["tracemark_http_requests_total"] == "counter"
    assert types["tracemark_http_request_duration_seconds"] == "histogram"
    count = "tracemark_http_requests_total"
    assert sample(samples, count, route="/v1/health", method="GET", status="200") == 3
    assert sample(samples, count, route="/v1/log/entries/{index}", method="GET", status="404") == 1
    assert sample(samples, count, route="unmatched", method="GET", status="404") == 1
    assert sample(samples, count, route="/v1/text/detect", method="POST", status="200") == 1
    assert sample(samples, "tracemark_log_appends_total") == 1
    assert sample(samples, "tracemark_log_tree_size") == 1
    assert sample(samples, "tracemark_log_up") == 1
    assert sample(samples, "tracemark_log_checkpoint_age_seconds") >= 0

    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "tracemark_http_request_duration_seconds_bucket" and dict(labels)["route"] == "/v1/health"
    )
    assert buckets[-1][0] == float("inf")
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative
    assert buckets[-1][1] == sample(samples, "tracemark_http_request_duration_seconds_count", route="/v1/health") == 3
    assert 0 < sample(samples, "tracemark_http_request_duration_seconds_sum", route="/v1/health") < 30


def test_metrics_count_rate_limit_refusals(make_client: ClientFactory, word_model: Path) -> None:
    client = make_client(word_model, rate_limit_per_second=0.01, rate_limit_burst=2)
    statuses = [client.get("/v1/health").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    client.app.state.context.limits.client.rate = 0  # type: ignore[attr-defined]
    samples, _ = parse(client.get("/metrics").text)
    assert sample(samples, "tracemark_rate_limited_total", limit="client") == 2
    assert sample(samples, "tracemark_rate_limited_total", limit="heavy") == 0
    assert sample(samples, "tracemark_http_requests_total", route="/v1/health", method="GET", status="429") == 2
    assert sample(samples, "tracemark_busy_total") == 0


def test_metrics_report_a_log_that_cannot_be_read(make_client: ClientFactory, tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"not a database" * 100)
    client = make_client(None, database=broken)
    samples, _ = parse(client.get("/metrics").text)
    assert sample(samples, "tracemark_log_up") == 0
    assert ("tracemark_log_tree_size", frozenset()) not in samples
