"""``tracemark comply``: check a deployment against Article 50 and 12, label outputs, verify a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from tracemark.cli._common import add_json_flag, emit, read_file_bytes, read_text_input
from tracemark.errors import InvalidInputError

#: Exit status of ``check`` by verdict: a failing row (a red line) is 1, a row not assessed 0 (it is in the report).
CHECK_EXIT = {"meets": 0, "incomplete": 0, "fails": 1}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``comply`` and its verbs."""
    parser = subparsers.add_parser(
        "comply", help="EU AI Act: Article 50 marking and labelling, Article 12 logs, signed report"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    check = verbs.add_parser("check", help="run the deployment's layers on real samples; write the signed report")
    check.add_argument("--deployment", required=True, metavar="TOML", help="the deployment file")
    check.add_argument(
        "--out",
        metavar="DIR",
        default="comply-report",
        help="folder for the report and its evidence (default: comply-report)",
    )
    add_json_flag(check)
    check.set_defaults(handler=_check)

    label = verbs.add_parser("label", help="add a visible AI disclosure to an image or a text; check the marks stay")
    label.add_argument("input", help="image (JPEG, PNG, WebP) or, with --text, a UTF-8 text file")
    label.add_argument("output", help="labelled image (PNG) or text; with --text, OUTPUT.html gets the HTML snippet")
    label.add_argument("--text", action="store_true", help="the input is text")
    label.add_argument("--label", help="the disclosure (default: the language's 'AI-generated')")
    label.add_argument("--language", default="en", help="language of the default disclosure (default en)")
    label.add_argument("--corner", default="bottom-right", help="bottom-right, bottom-left, top-right or top-left")
    label.add_argument("--model", help="model directory giving the tokenizer, for text (default: reference model)")
    label.add_argument(
        "--model-id", help="the model that produced the output, named in the label (default: the image's manifest's)"
    )
    add_json_flag(label)
    label.set_defaults(handler=_label)

    authority = verbs.add_parser(
        "authority-key", help="mint a detection key for an authority, fact-checker or researcher (higher limits)"
    )
    authority.add_argument("--label", required=True, help="who holds it, e.g. 'EU AI Office'")
    authority.add_argument("--days", type=int, default=365, help="lifetime in days (default 365)")
    add_json_flag(authority)
    authority.set_defaults(handler=_authority_key)

    verify = verbs.add_parser("verify-report", help="check a report folder against its signature and log entry")
    verify.add_argument("folder", help="the folder comply check wrote")
    verify.add_argument("--log-key", metavar="VKEY", help="the log's verifier key (default: the local log's)")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify_report)


def _check(args: argparse.Namespace) -> int:
    from tracemark.comply import load_deployment, run_check

    result = run_check(load_deployment(args.deployment), Path(args.out))
    report = result.report
    lines = [f"{row.status.value:<15} {row.obligation.id:<30} {row.summary}" for row in report.rows]
    lines += [f"RED LINE: {line}" for line in report.red_lines()]
    lines.append(
        f"verdict: {report.verdict}; report {result.folder / 'report.html'} and report.json, signed and logged as "
        f"entry {result.signed.log_index} of {result.signed.origin}"
    )
    payload = {
        "folder": str(result.folder),
        "verdict": report.verdict,
        "log_index": result.signed.log_index,
        "report_json_sha256": result.signed.report_json_sha256,
        "report": report.to_json(),
    }
    emit(args, payload, "\n".join(lines))
    return CHECK_EXIT[report.verdict]


def _label(args: argparse.Namespace) -> int:
    from tracemark.comply import disclosure

    label = disclosure(args.language, args.label)
    return _label_text(args, label) if args.text else _label_image(args, label)


def _label_image(args: argparse.Namespace, label: str) -> int:
    from tracemark._fs import atomic_write_bytes
    from tracemark.comply import label_image
    from tracemark.errors import UnknownKeyError
    from tracemark.keys import Keyring, load_media_certificate
    from tracemark.media import MAX_IMAGE_BYTES, media_key, signer_for

    if not args.output.lower().endswith(".png"):
        raise InvalidInputError("the labelled image is written as PNG: name the output .png")
    data = read_file_bytes(args.input, MAX_IMAGE_BYTES)
    keyring = Keyring()
    keys, signer, anchors = [], None, None
    if keyring.exists():
        keys = [media_key(keyring)]
        try:
            certificate = load_media_certificate(keyring)
            signer = signer_for(certificate.chain_pem, certificate.private_key_pem)
            anchors = certificate.root_pem
        except UnknownKeyError:
            pass
    result = label_image(data, label=label, corner=args.corner, keys=keys, signer=signer, trust_anchors_pem=anchors,
                         model_id=args.model_id)  # fmt: skip
    atomic_write_bytes(Path(args.output), result.data)
    payload = {
        "output": args.output,
        "label": result.label,
        "corner": result.corner,
        "outcome": result.outcome,
        "watermark_found": result.watermark_found,
        "manifest_id": result.manifest_id,
        "parent_manifest_id": result.parent_manifest_id,
        "model_id": result.model_id,
        "model_not_recorded": result.model_not_recorded,
    }
    kept = "marks kept" if result.watermark_found else "NO watermark found in the labelled image"
    unrecorded = f"; --model-id NOT recorded: {result.model_not_recorded}" if result.model_not_recorded else ""
    emit(
        args,
        payload,
        f"labelled {args.output} with {label!r}: outcome {result.outcome}, {kept}; parent manifest "
        f"{result.parent_manifest_id or '-'}{unrecorded}",
    )
    return 0 if result.watermark_found else 1


def _label_text(args: argparse.Namespace, label: str) -> int:
    from tracemark._fs import atomic_write_bytes
    from tracemark.comply import label_text
    from tracemark.keys import Keyring
    from tracemark.text import TextTokenizer, reference_model_dir, select_text_key

    text = read_text_input(args.input)
    tokenizer = TextTokenizer(args.model or str(reference_model_dir()))
    key = select_text_key(Keyring(), tokenizer)
    result = label_text(text, label=label, key=key, tokenizer=tokenizer, model_id=args.model_id)
    atomic_write_bytes(Path(args.output), result.text.encode("utf-8"))
    atomic_write_bytes(Path(args.output + ".html"), result.html.encode("utf-8"))
    payload = {
        "output": args.output,
        "html": args.output + ".html",
        "label": label,
        "still_marked": result.still_marked,
        "p_value": result.p_value,
        "model_id": result.model_id,
    }
    emit(
        args,
        payload,
        f"labelled {args.output} (and {args.output}.html) with {label!r}; watermark "
        f"{'still detected' if result.still_marked else 'NOT detected'} (p = {result.p_value:.3g})",
    )
    return 0 if result.still_marked else 1


def _verify_report(args: argparse.Namespace) -> int:
    from tracemark.comply import log_verifier, verify_report
    from tracemark.tlog import NoteVerifier

    key = NoteVerifier.from_vkey(args.log_key) if args.log_key else log_verifier()
    verified = verify_report(Path(args.folder), key)
    payload = {
        "valid": True,
        "report_json_sha256": verified.report_json_sha256,
        "report_html_sha256": verified.report_html_sha256,
        "log_index": verified.log_index,
        "tree_size": verified.tree_size,
        "origin": verified.origin,
    }
    emit(
        args,
        payload,
        f"valid: the report in {args.folder} is the one signed and logged as entry "
        f"{verified.log_index} of {verified.origin} (tree size {verified.tree_size})",
    )
    return 0


def _authority_key(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from tracemark.keys import Keyring, mint_api_token

    if not 1 <= args.days <= 3650:
        raise InvalidInputError("--days must lie in 1..3650")
    keyring = Keyring()
    if not keyring.exists():
        raise keyring.missing_error()
    key = mint_api_token(keyring, label=args.label, lifetime=timedelta(days=args.days), tier="authority")
    payload = {"authority_key": key, "label": args.label, "days": args.days}
    emit(
        args,
        payload,
        f"{key}\n(shown once; send it as 'Authorization: Bearer <key>' to the detection routes; "
        "it lifts their rate limits and writes nothing)",
    )
    return 0
