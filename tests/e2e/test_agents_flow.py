"""End to end: the MCP proxy in front of a real MCP server (the ``mcp`` SDK on both sides), and an
agent configuration certified, logged and verified offline, all through the ``tracemark`` command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("mcp", reason="the agents extra (mcp SDK) is not installed")

from mcp import Client
from mcp.client.stdio import StdioServerParameters

SERVER = REPO / "tests" / "unit" / "agents" / "mcp_bank_server.py"
POLICY = REPO / "examples" / "agents" / "banking-policy.toml"
TRACEMARK = [sys.executable, "-m", "tracemark"]


def _tracemark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRACEMARK, *args], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)


def _list_tools_json(path: Path) -> None:
    async def run() -> list[dict[str, object]]:
        async with Client(StdioServerParameters(command=sys.executable, args=[str(SERVER)])) as client:
            listed = await client.list_tools()
            return [{"name": t.name, "description": t.description, "inputSchema": t.input_schema} for t in listed.tools]

    path.write_text(json.dumps({"tools": asyncio.run(run())}))


def _proxied(lock: Path, trace: Path, *server_args: str) -> StdioServerParameters:
    args = ["-m", "tracemark", "agents", "proxy", "--policy", str(POLICY), "--lock", str(lock)]
    args += ["--server-name", "bank", "--user-prompt", "Pay the bill in bills/december.txt", "--trace", str(trace)]
    return StdioServerParameters(
        command=sys.executable, args=[*args, "--", sys.executable, str(SERVER), *server_args], env=dict(os.environ)
    )


def test_proxy_enforces_the_policy_in_front_of_a_real_mcp_server(tmp_path: Path) -> None:
    _list_tools_json(tmp_path / "tools.json")
    pinned = _tracemark(
        "agents", "pin", "--tools", f"bank={tmp_path / 'tools.json'}", "-o", str(tmp_path / "lock.json")
    )
    assert pinned.returncode == 0, pinned.stderr

    async def session() -> list[tuple[bool, str]]:
        out = []
        async with Client(_proxied(tmp_path / "lock.json", tmp_path / "trace.jsonl"), mode="legacy") as client:
            await client.list_tools()
            calls: list[tuple[str, dict[str, object]]] = [
                (
                    "send_money",
                    {"recipient": "DE89370400440532013000", "amount": 98.7},
                ),  # before reading the bill: denied
                ("read_file", {"path": "bills/december.txt"}),
                ("get_balance", {}),
                ("send_money", {"recipient": "DE89370400440532013000", "amount": 98.7}),  # the bill: allowed
                ("send_money", {"recipient": "FR7630006000011234567890189", "amount": 500}),  # made up: denied
            ]
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                out.append((result.is_error, " ".join(getattr(c, "text", "") for c in result.content)))
        return out

    results = asyncio.run(session())
    assert [error for error, _ in results] == [True, False, False, False, True]
    assert "send_money deny" in results[0][1]  # nothing vouches for the IBAN yet, nor was the balance read
    assert "sent 98.7 to DE89370400440532013000" in results[3][1]
    assert "tools.send_money.args.recipient" in results[4][1]
    checked = _tracemark("agents", "verify-trace", str(tmp_path / "trace.jsonl"), "--json")
    assert checked.returncode == 0, checked.stderr


def test_proxy_fails_closed_on_a_rug_pull(tmp_path: Path) -> None:
    _list_tools_json(tmp_path / "tools.json")
    _tracemark("agents", "pin", "--tools", f"bank={tmp_path / 'tools.json'}", "-o", str(tmp_path / "lock.json"))

    async def session() -> tuple[str, bool, str]:
        async with Client(_proxied(tmp_path / "lock.json", tmp_path / "t.jsonl", "--drift"), mode="legacy") as client:
            try:
                await client.list_tools()
                listed = "listed"
            except Exception as exc:
                listed = str(exc)
            result = await client.call_tool("get_balance", {})
            return listed, result.is_error, " ".join(getattr(c, "text", "") for c in result.content)

    listed, is_error, text = asyncio.run(session())
    assert "tool pin drift: edited send_money" in listed
    assert is_error
    assert "drifted" in text


def test_certify_and_verify_offline(tmp_path: Path) -> None:
    _list_tools_json(tmp_path / "tools.json")
    lock = tmp_path / "lock.json"
    _tracemark("agents", "pin", "--tools", f"bank={tmp_path / 'tools.json'}", "-o", str(lock))
    cert, receipt, db = tmp_path / "cert.json", tmp_path / "cert.receipt", tmp_path / "log.sqlite3"
    assert _tracemark("keys", "init").returncode == 0
    issued = _tracemark(
        "agents", "certify", "--policy", str(POLICY), "--lock", str(lock), "--db", str(db),
        "-o", str(cert), "--receipt", str(receipt), "--json",
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    log_key = json.loads(issued.stdout)["log_key"]
    verify = ["agents", "verify-cert", str(cert), "--receipt", str(receipt), "--log-key", log_key]
    ok = _tracemark(*verify, "--policy", str(POLICY), "--lock", str(lock), "--json")
    assert ok.returncode == 0, ok.stderr
    document = json.loads(ok.stdout)
    probes = next(s for s in document["suites"] if s["name"] == "tracemark-injection-probes/v1")
    assert probes["trials"] > 0
    assert 0 <= probes["interval"][0] <= probes["rate"] <= probes["interval"][1] <= 1
    changed = tmp_path / "policy.toml"
    changed.write_text(POLICY.read_text().replace("max = 1000", "max = 100000"))
    refused = _tracemark(*verify, "--policy", str(changed))
    assert refused.returncode == 16
    assert "policy changed" in refused.stderr
    envelope = json.loads(cert.read_text())
    envelope["payload"] = envelope["payload"][:-8] + "AAAAAAA="
    cert.write_text(json.dumps(envelope))
    assert _tracemark(*verify).returncode == 16


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.parametrize("drift", [False, True])
def test_http_proxy_in_front_of_a_streamable_http_server(tmp_path: Path, drift: bool) -> None:
    _list_tools_json(tmp_path / "tools.json")
    _tracemark("agents", "pin", "--tools", f"bank={tmp_path / 'tools.json'}", "-o", str(tmp_path / "lock.json"))
    port = _free_port()
    server_args = [sys.executable, str(SERVER), "--http", str(port), *(["--drift"] if drift else [])]
    server = subprocess.Popen(server_args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy_args = [*TRACEMARK, "agents", "proxy", "--policy", str(POLICY), "--lock", str(tmp_path / "lock.json")]
    proxy_args += ["--server-name", "bank", "--user-prompt", "Pay the bill in bills/december.txt"]
    proxy_args += ["--upstream", f"http://127.0.0.1:{port}/mcp", "--trace", str(tmp_path / "trace.jsonl")]
    proxy = subprocess.Popen(proxy_args, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        _wait_for_port(port)
        assert proxy.stdout is not None
        url = proxy.stdout.readline().split()[2]

        async def session() -> list[tuple[bool, str]]:
            out = []
            async with Client(url) as client:
                try:
                    await client.list_tools()
                except Exception as exc:
                    out.append((True, str(exc)))
                calls: list[tuple[str, dict[str, object]]] = [
                    ("read_file", {"path": "bills/december.txt"}),
                    ("get_balance", {}),
                    ("send_money", {"recipient": "GB29NWBK60161331926819", "amount": 500}),
                    ("send_money", {"recipient": "DE89370400440532013000", "amount": 98.7}),
                ]
                for name, arguments in calls:
                    result = await client.call_tool(name, arguments)
                    out.append((result.is_error, " ".join(getattr(c, "text", "") for c in result.content)))
            return out

        results = asyncio.run(session())
    finally:
        proxy.terminate()
        server.terminate()
        proxy.wait(timeout=30)
        server.wait(timeout=30)
    if drift:
        assert "tool pin drift: edited send_money" in results[0][1]
        assert all(error and "drifted" in text for error, text in results[1:])
    else:
        assert [error for error, _ in results] == [False, False, True, False]
        assert "taint.no-injected-values" in results[2][1]
        assert "sent 98.7 to DE89370400440532013000" in results[3][1]
