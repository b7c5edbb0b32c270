"""Inflating applies the ratio, size and memory limits while it runs, not after (issue 20, point 4)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
import textwrap
import zipfile

from tracemark.supply import ScanLimits, scan_bytes

#: 1 MB of gzip members that inflate to 1,000 MiB of zeros; peak RSS of the scan in a fresh process.
_PEAK_SCRIPT = textwrap.dedent(
    """
    import gzip, json, resource
    from tracemark.supply import scan_bytes
    data = gzip.compress(bytes(10 << 20), compresslevel=9) * 100
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = scan_bytes(data, "bomb.gz")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"size": len(data), "rules": [f.rule_id for f in report.findings],
                      "before_mib": before // 1024, "after_mib": after // 1024}))
    """
)


def test_a_gzip_bomb_is_stopped_at_its_ratio_without_inflating_it() -> None:
    run = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(run.stdout)
    assert result["size"] < 1_100_000
    assert result["rules"] == ["archive.bomb"]
    # At most max_ratio (200) times the 1 MB input is ever held: about 200 MiB, not 1,000 MiB (2.2 GB before).
    assert result["after_mib"] < result["before_mib"] + 400, result


def _bomb(size: int) -> bytes:
    return gzip.compress(bytes(size), compresslevel=9)


def test_the_ratio_applies_to_concatenated_members_as_a_whole() -> None:
    # Each 1 MiB member alone is under the 1 MiB floor; together they expand past the ratio.
    data = _bomb(1 << 20) * 40
    assert [f.rule_id for f in scan_bytes(data, "many.gz").findings] == ["archive.bomb"]


def test_a_highly_compressed_but_small_stream_is_still_inspected() -> None:
    payload = b"\x80\x04N." + bytes(512 * 1024)
    report = scan_bytes(gzip.compress(payload), "small.gz")
    assert [f.rule_id for f in report.findings] == ["pickle.trailing-data"]


def test_nested_layers_share_the_resident_memory_limit() -> None:
    # The tar (3 MiB of data + a gzip) stays in memory while its gzip member inflates 2 MiB: 5 MiB at once.
    members = {"data.bin": bytes(3 << 20), "weights.bin.gz": gzip.compress(bytes(2 << 20), compresslevel=9)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    outer = gzip.compress(buffer.getvalue())
    limits = ScanLimits(max_resident_bytes=4 << 20, max_ratio=10_000)
    report = scan_bytes(outer, "model.tar.gz", limits=limits)
    assert [(f.rule_id, f.locations[0].path.rpartition("!")[2]) for f in report.findings] == [
        ("archive.bomb", "weights.bin.gz")
    ], report.findings
    assert "memory limit" in report.findings[0].message
    assert scan_bytes(outer, "model.tar.gz", limits=ScanLimits(max_ratio=10_000)).findings == ()


def test_a_zip_member_is_read_under_the_ratio_limit() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", bytes(8 << 20))
    report = scan_bytes(buffer.getvalue(), "model.zip", limits=ScanLimits(max_ratio=50))
    assert [f.rule_id for f in report.findings] == ["archive.bomb"]
