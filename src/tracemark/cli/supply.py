"""``tracemark supply``: scan model files, sign and verify model folders, bill of materials, dependency audit."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.cli._common import add_json_flag, emit
from tracemark.cli._report import add_report_options, threshold, write_report
from tracemark.errors import InvalidInputError
from tracemark.report import Finding, Report, Tool, count_at_least
from tracemark.supply import ScanReport, parse_allowed, scan_hugging_face, scan_path, sign_model, verify_model

#: Where the supply verbs' findings come from, as SARIF names the tool (code scanning keys alerts on ``name``).
_SCAN_TOOL = Tool("tracemark", "tracemark supply scan")
_DEPS_TOOL = Tool("tracemark", "tracemark supply deps")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``supply`` and its verbs."""
    parser = subparsers.add_parser("supply", help="model supply chain: scan, sign, verify, bom, deps")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    scan = verbs.add_parser("scan", help="scan model files or folders for code execution on load (never loads them)")
    scan.add_argument("paths", nargs="*", metavar="PATH", help="model file or folder")
    scan.add_argument(
        "--hf-repo",
        action="append",
        default=[],
        metavar="OWNER/NAME[@REVISION]",
        help="also scan this model's snapshot in the local Hugging Face cache (repeatable; nothing is downloaded)",
    )
    scan.add_argument(
        "--hf-cache", metavar="DIR", help="the hub cache (default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache)"
    )
    scan.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="also allow this pickle global (repeatable), e.g. argparse:Namespace",
    )
    scan.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help="in folders, scan only matching paths"
    )
    scan.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="in folders, skip matching paths")
    scan.add_argument(
        "--globals", action="store_true", help="list every global each pickle would import (for review), then the gate"
    )
    add_report_options(scan, fail_on="medium")
    scan.set_defaults(handler=_scan)

    decompile = verbs.add_parser("decompile", help="show what loading a pickle would do, as Python-like lines")
    decompile.add_argument("path", metavar="PATH", help="a pickle, or a zip checkpoint (each .pkl member)")
    add_json_flag(decompile)
    decompile.set_defaults(handler=_decompile)

    sign = verbs.add_parser("sign", help="sign every file of a model folder (OpenSSF model signing bundle)")
    sign.add_argument("model", help="model folder")
    sign.add_argument("--signature", required=True, metavar="PATH", help="where to write the signature bundle")
    sign.add_argument("--private-key", required=True, metavar="PEM", help="EC private key (PEM)")
    sign.add_argument("--certificate", metavar="PEM", help="signing certificate (certificate mode)")
    sign.add_argument("--certificate-chain", nargs="*", default=[], metavar="PEM", help="issuing certificates")
    add_json_flag(sign)
    sign.set_defaults(handler=_sign)

    verify = verbs.add_parser("verify", help="verify a model folder: valid signature, pinned signer, all files covered")
    verify.add_argument("model", help="model folder")
    verify.add_argument("--signature", required=True, metavar="PATH", help="the signature bundle")
    mode = verify.add_mutually_exclusive_group(required=True)
    mode.add_argument("--public-key", metavar="PEM", help="the signer's public key (key mode; the key is the pin)")
    mode.add_argument("--certificate-chain", nargs="+", metavar="PEM", help="trusted CA certificates (cert mode)")
    verify.add_argument("--signer", metavar="IDENTITY", help="pinned signer: certificate subject, CN, e-mail or URI")
    verify.add_argument("--signer-fingerprint", metavar="SHA256", help="pinned signer: leaf certificate SHA-256")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify)

    bom = verbs.add_parser("bom", help="write a CycloneDX 1.6 ML-BOM (model card, file digests, dependencies)")
    bom.add_argument("model", help="model folder")
    bom.add_argument("--out", "-o", metavar="PATH", help="write the BOM here (default: stdout)")
    bom.add_argument("--name", help="model name (default: the folder name)")
    bom.add_argument("--model-version", help="model version")
    bom.add_argument("--task", help="model task, e.g. text-generation")
    bom.add_argument("--dataset", action="append", default=[], help="training dataset name (repeatable)")
    bom.add_argument("--dependencies", nargs="*", default=[], metavar="PATH", help="requirements or lock files to list")
    bom.set_defaults(handler=_bom)

    deps = verbs.add_parser("deps", help="audit dependencies against an offline OSV database (fails closed)")
    deps.add_argument(
        "sources",
        nargs="*",
        metavar="PATH",
        help="requirements*.txt, pylock.toml, poetry.lock, uv.lock, package-lock.json or a site-packages folder "
        "(default: this interpreter's installed packages)",
    )
    deps.add_argument("--db", required=True, metavar="PATH", help="OSV database: a folder of records or all.zip")
    deps.add_argument(
        "--max-age-days", type=float, default=30.0, help="refuse a database older than this (default: 30)"
    )
    add_report_options(deps, fail_on="medium")
    deps.set_defaults(handler=_deps)


def _passes(args: argparse.Namespace, findings: tuple[Finding, ...]) -> bool:
    return count_at_least((finding.severity for finding in findings), threshold(args)) == 0


def _scan(args: argparse.Namespace) -> int:
    allow = parse_allowed(args.allow)
    if not args.paths and not args.hf_repo:
        raise InvalidInputError("give a PATH to scan or --hf-repo OWNER/NAME")
    reports = [scan_path(path, allow=allow, include=args.include, exclude=args.exclude) for path in args.paths]
    for spec in args.hf_repo:
        repo, _, revision = spec.partition("@")
        reports.append(
            scan_hugging_face(
                repo, revision or "main", cache=args.hf_cache, allow=allow, include=args.include, exclude=args.exclude
            )
        )
    if args.globals and not getattr(args, "json", False):
        sys.stdout.write(_globals_listing(reports, allow))
    findings = tuple(finding for report in reports for finding in report.findings)
    files = sum(len(report.files) for report in reports)
    passed = _passes(args, findings)
    document = {"reports": [report.to_json() for report in reports], "passed": passed, "fail_on": args.fail_on}
    summary = f"{'PASS' if passed else 'FAIL'}: {files} files scanned, {len(findings)} findings"
    subject = ", ".join([*args.paths, *(f"hf://{spec}" for spec in args.hf_repo)])
    report = Report(_SCAN_TOOL, findings, subject=subject, summary=(summary,), document=document)
    return write_report(args, report)


def _globals_listing(reports: list[ScanReport], allow: frozenset[tuple[str, str]]) -> str:
    """One line per global a pickle would import, marked allowed or refused, grouped by file."""
    from tracemark.supply import is_allowed_global

    lines = []
    for report in reports:
        for file in report.files:
            if not file.globals:
                continue
            lines.append(f"{report.target}: {file.location} ({file.format})")
            for name in file.globals:
                module, _, attribute = name.partition(":")
                allowed = (module, attribute) in allow or is_allowed_global(module, attribute)
                lines.append(f"  {'allowed' if allowed else 'REFUSED'}  {name}")
    return "\n".join(lines) + "\n" if lines else "no pickle globals\n"


def _decompile(args: argparse.Namespace) -> int:
    import zipfile

    from tracemark.cli._common import read_file_bytes
    from tracemark.supply import analyse_pickle

    data = read_file_bytes(args.path, 1 << 30)
    streams: list[tuple[str, bytes]] = [(args.path, data)]
    if data.startswith(b"PK") and zipfile.is_zipfile(args.path):
        with zipfile.ZipFile(args.path) as archive:
            streams = [
                (f"{args.path}!{info.filename}", archive.read(info))
                for info in archive.infolist()
                if info.filename.endswith(".pkl") and info.file_size <= 1 << 30
            ]
    sections = []
    payload = []
    for where, stream in streams:
        analysis = analyse_pickle(stream, decompile=True)
        issues = [
            f"# {issue.severity}: {issue.rule}: {issue.message} (offset {issue.offset})" for issue in analysis.issues
        ]
        sections.append("\n".join([f"# {where}", *analysis.program, *issues]))
        payload.append({"location": where, "program": analysis.program, "issues": [i.message for i in analysis.issues]})
    emit(args, {"streams": payload}, "\n\n".join(sections) or f"# {args.path}: no pickle")
    return 0


def _sign(args: argparse.Namespace) -> int:
    path = sign_model(
        args.model,
        args.signature,
        private_key=args.private_key,
        certificate=args.certificate,
        certificate_chain=args.certificate_chain,
    )
    emit(args, {"model": args.model, "signature": str(path)}, f"signed {args.model} -> {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    verified = verify_model(
        args.model,
        args.signature,
        public_key=args.public_key,
        certificate_chain=args.certificate_chain or (),
        signer_identity=args.signer,
        signer_fingerprint=args.signer_fingerprint,
    )
    payload = {
        "model": verified.model,
        "verified": True,
        "signer": verified.signer,
        "identities": list(verified.identities),
        "files": [{"name": f.name, "algorithm": f.algorithm, "digest": f.digest} for f in verified.files],
    }
    emit(args, payload, f"OK: {len(verified.files)} files covered by a valid signature from {verified.signer}")
    return 0


def _deps(args: argparse.Namespace) -> int:
    import datetime

    from tracemark.advisories import OsvDatabase
    from tracemark.supply import audit_dependencies, installed_dependencies, read_dependencies

    dependencies = []
    for source in args.sources:
        dependencies += read_dependencies(source)
    if not args.sources:
        dependencies = installed_dependencies()
    # Only records that can name an audited package are parsed in full (the rest are dated).
    wanted = {(dep.ecosystem, dep.name) for dep in dependencies}
    database = OsvDatabase.open(args.db, max_age=datetime.timedelta(days=args.max_age_days), packages=wanted)
    audit = audit_dependencies(dependencies, database)
    passed = _passes(args, audit.findings)
    document = {**audit.to_json(), "passed": passed, "fail_on": args.fail_on}
    summary = (
        f"{'PASS' if passed else 'FAIL'}: {len(audit.dependencies)} dependencies audited against "
        f"{audit.database} (data from {audit.database_freshness}), {len(audit.vulnerabilities)} vulnerabilities"
    )
    subject = ", ".join(args.sources) or "this interpreter's installed packages"
    report = Report(_DEPS_TOOL, audit.findings, subject=subject, summary=(summary,), document=document)
    return write_report(args, report)


def _bom(args: argparse.Namespace) -> int:
    from tracemark.supply import build_ml_bom, read_dependencies

    dependencies = [dep for source in args.dependencies for dep in read_dependencies(source)]
    bom = build_ml_bom(
        args.model,
        name=args.name,
        version=args.model_version,
        task=args.task,
        datasets=args.dataset,
        dependencies=dependencies,
    )
    text = json.dumps(bom, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
        files = len(bom["metadata"]["component"]["components"])
        sys.stdout.write(f"wrote {args.out}: CycloneDX 1.6 ML-BOM, {files} files, {len(dependencies)} dependencies\n")
    else:
        sys.stdout.write(text)
    return 0
