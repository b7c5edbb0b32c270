"""Image watermark and content credentials: robustness, quality, speed and false positives, beside invisible-watermark.

Corpus: the natural-image set of ``bench/media_corpus.json`` (47 pictures at native size, 0.12-8.3 MP:
scikit-image and scikit-learn photos, Debian's Plasma wallpapers, rendered text-heavy screenshots;
``media_corpus.py`` builds it and checks the hashes).  Our watermark carries 128 data bits (plus a
48-bit check code); the anchor, invisible-watermark 0.2.0 (dwtDctSvd), carries 32 bits and runs in its
own environment (``.bench-venv-media``, created here) on the same images and byte-identical attacks
(``bench_media_attacks.py``), smallest images first; ``--anchor-rows`` reuses a run's rows.  Timings are CPU time
of one thread (BLAS threads pinned to 1, ``time.process_time``), so a busy shared machine does not inflate them.

1. Quality: PSNR and SSIM (luma) of each marked image.
2. Robustness: exact payload recovery per attack (JPEG 30-90, WebP 50, resize 0.25-2x, blur,
   noise sigma 5, brightness and contrast +-20%, 0.5x then JPEG 50; crops of 10% and 20%, rotations).
3. Speed: embed and decode time per megapixel on one core; a full verify (search on) of the marked
   image and of the unmarked original.
4. False positives: unmarked inputs (crops, rescales and recompressions of the corpus, and synthetic
   images) through the detector; direct grid for all, the full rotation search for a subset.
5. Manifest recovery: mark + sign, strip the metadata, 0.5x, JPEG 50, verify -> recovered-via-soft-binding.

    nice -n 10 .venv/bin/python bench/bench_media.py [--quick] [--images N] [--unmarked 10000]
        [--unmarked-search 300] [--anchor-rows FILE.jsonl] [--skip-anchor]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from _common import REPO, temporary_home, write_result  # noqa: E402
from bench_media_attacks import ATTACKS, attack, psnr, ssim, synthetic_image  # noqa: E402
from media_corpus import CACHE, load  # noqa: E402
from tracemark.keys import Keyring, ensure_media_certificate  # noqa: E402
from tracemark.media import (  # noqa: E402
    ALGORITHM,
    MediaKey,
    Outcome,
    SoftBindingRepository,
    detect_watermark,
    embed_watermark,
    mark_image,
    signer_for,
    verify_image,
)
from tracemark.media._watermark import LIST_SIZE  # noqa: E402

VENV = REPO / ".bench-venv-media"
ANCHOR_PACKAGES = ["numpy", "scipy", "pillow==13.0.0", "scikit-image", "opencv-python-headless", "PyWavelets"]
GOALS = {"psnr_min": 42.0, "ssim_min": 0.98, "robust_rate": 0.99, "geometric_rate": 0.95, "embed_ms_per_mp": 200.0,
         "decode_ms_per_mp": 50.0, "false_positive_rate": 1e-6, "recovery_rate": 0.99}  # fmt: skip


def ensure_anchor_environment() -> Path:
    """Create ``.bench-venv-media`` with scikit-image and invisible-watermark (without torch) if missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", "invisible-watermark==0.2.0"], check=True
        )
    return python


def anchor(python: Path, *args: str) -> None:
    subprocess.run([str(python), str(REPO / "bench" / "bench_media_anchor.py"), *args], check=True,
                   cwd=REPO / "bench", env={**os.environ, "PYTHONPATH": str(REPO / "bench")})  # fmt: skip


def _rate(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    per_attack = {name: sum(bool(row["attacks"][name]["exact"]) for row in rows) / len(rows) for name in names}
    total = sum(sum(bool(row["attacks"][name]["exact"]) for row in rows) for name in names)
    return {"rate": total / (len(rows) * len(names)), "per_attack": per_attack}


def _verify_times(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if "verify_marked_s" not in rows[0]:
        return {}
    marked = [1000 * row["verify_marked_s"] / row["megapixels"] for row in rows]
    unmarked = [1000 * row["verify_unmarked_s"] / row["megapixels"] for row in rows]
    ratios = [row["verify_unmarked_s"] / max(row["verify_marked_s"], 1e-9) for row in rows]
    return {
        "verify_marked_ms_per_mp_median": statistics.median(marked),
        "verify_unmarked_ms_per_mp_median": statistics.median(unmarked),
        "verify_unmarked_over_marked_median": statistics.median(ratios),
        "verify_unmarked_over_marked_max": max(ratios),
        "verify_unmarked_s_max": max(row["verify_unmarked_s"] for row in rows),
        "wrong_payloads": sum(bool(a.get("wrong")) for row in rows for a in row["attacks"].values()),
        "decodes": sum(len(row["attacks"]) for row in rows),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    robust = [name for name, (group, _) in ATTACKS.items() if group == "robust"]
    geometric = [name for name, (group, _) in ATTACKS.items() if group == "geometric"]
    return {
        "images": len(rows),
        "psnr_min": min(row["psnr"] for row in rows),
        "psnr_median": statistics.median(row["psnr"] for row in rows),
        "ssim_min": min(row["ssim"] for row in rows),
        "ssim_median": statistics.median(row["ssim"] for row in rows),
        "embed_ms_per_mp_median": statistics.median(1000 * row["embed_s"] / row["megapixels"] for row in rows),
        "decode_ms_per_mp_median": statistics.median(1000 * row["decode_s"] / row["megapixels"] for row in rows),
        **_verify_times(rows),
        "robust": _rate(rows, robust),
        "geometric": _rate(rows, geometric),
    }


def run_ours(corpus: dict[str, np.ndarray], key: MediaKey, procs: int = 1) -> list[dict[str, Any]]:
    """One row per picture; with ``procs`` > 1 the pictures run in worker processes (same records, same
    attacks and seeds: the rows do not depend on how many processes ran them)."""
    rng = np.random.default_rng(2026)
    jobs = [(index, name, rng.bytes(12), key.secret) for index, name in enumerate(corpus)]
    if procs <= 1:
        rows = [_picture_row(job, corpus) for job in jobs]
    else:
        import multiprocessing

        _CORPUS.update(corpus)  # the workers fork with the pictures in memory
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            rows = pool.map(_forked_row, jobs, chunksize=1)
    return [row for row in rows if row is not None]


_CORPUS: dict[str, np.ndarray] = {}


def _forked_row(job: tuple[int, str, bytes, bytes]) -> dict[str, Any] | None:
    return _picture_row(job, _CORPUS)


def _picture_row(job: tuple[int, str, bytes, bytes], corpus: dict[str, np.ndarray]) -> dict[str, Any] | None:
    index, name, record, secret = job
    key = MediaKey.from_secret(secret)
    rgb = corpus[name]
    if min(rgb.shape[:2]) < 256:  # marking needs 256 px a side
        return None
    started = time.process_time()
    marked = embed_watermark(rgb, key, record)
    embed_s = time.process_time() - started
    started = time.process_time()
    detect_watermark(marked, [key], search=False)
    decode_s = time.process_time() - started
    started = time.process_time()
    verified = detect_watermark(marked, [key])
    verify_marked_s = time.process_time() - started
    started = time.process_time()
    unmarked = detect_watermark(rgb, [key])
    verify_unmarked_s = time.process_time() - started
    row: dict[str, Any] = {"image": name, "megapixels": rgb.shape[0] * rgb.shape[1] / 1e6, "embed_s": embed_s,
                           "decode_s": decode_s, "verify_marked_s": verify_marked_s,
                           "verify_unmarked_s": verify_unmarked_s, "unmarked_found": unmarked.found,
                           "unmarked_attempts": unmarked.attempts, "localisation": verified.localisation(),
                           "psnr": psnr(rgb, marked), "ssim": ssim(rgb, marked),
                           "attacks": {}}  # fmt: skip
    for attack_name in ATTACKS:
        found = detect_watermark(attack(attack_name, marked, index), [key])
        row["attacks"][attack_name] = {"exact": found.found and found.record_id == record.hex(),
                                       "wrong": found.found and found.record_id != record.hex(),
                                       "geometry": found.geometry}  # fmt: skip
    print(f"  ours {name}: psnr {row['psnr']:.1f} ssim {row['ssim']:.4f} embed {embed_s * 1000:.0f} ms, "
          f"failed: {[a for a, r in row['attacks'].items() if not r['exact']]}", flush=True)  # fmt: skip
    return row


def unmarked_inputs(corpus: dict[str, np.ndarray], count: int, seed: int) -> list[np.ndarray]:
    """Crops, rescales and recompressions of the unmarked corpus, and fresh synthetic images."""
    rng = np.random.default_rng(seed)
    images = list(corpus.values())
    inputs: list[np.ndarray] = []
    while len(inputs) < count:
        kind = len(inputs) % 4
        if kind == 3:
            inputs.append(synthetic_image(int(rng.integers(10**6, 10**9)), 320, 320))
            continue
        source = images[int(rng.integers(len(images)))]
        height, width = source.shape[:2]
        side_h, side_w = int(rng.integers(256, min(height, 768) + 1)), int(rng.integers(256, min(width, 768) + 1))
        top, left = int(rng.integers(0, height - side_h + 1)), int(rng.integers(0, width - side_w + 1))
        crop = source[top : top + side_h, left : left + side_w]
        if kind == 1:
            crop = attack("jpeg50", crop, 0)
        elif kind == 2:
            crop = attack("resize0.5", crop, 0) if min(side_h, side_w) >= 512 else attack("resize2", crop, 0)
        inputs.append(crop)
    return inputs


def _direct_found(job: tuple[bytes, list[np.ndarray]]) -> int:
    key = MediaKey.from_secret(job[0])
    return sum(detect_watermark(image, [key], search=False).found for image in job[1])


def false_positives(
    corpus: dict[str, np.ndarray], key: MediaKey, count: int, searched: int, procs: int = 1
) -> dict[str, Any]:
    inputs = unmarked_inputs(corpus, count, 7)
    if procs <= 1:
        direct = _direct_found((key.secret, inputs))
    else:
        import multiprocessing

        chunks = [(key.secret, inputs[start : start + 250]) for start in range(0, len(inputs), 250)]
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            direct = sum(pool.map(_direct_found, chunks, chunksize=1))
    started = time.process_time()
    results = [detect_watermark(image, [key]) for image in unmarked_inputs(corpus, searched, 8)]
    search_s = (time.process_time() - started) / max(searched, 1)
    full = sum(result.found for result in results)
    past_test = sum(result.attempts > _DIRECT_ATTEMPTS for result in results)  # the template test let the search run
    return {"direct_inputs": count, "direct_found": direct, "search_inputs": searched, "search_found": full,
            "search_ms_per_input": 1000 * search_s, "searched_past_template_test": past_test,
            "observed_rate": (direct + full) / (count + searched), "bound_per_attempt": 2.0**-48}  # fmt: skip


#: Messages checked before the template test: the direct grid and the best gain, each for the fine and the coarse
#: variant, and the list decoder's on the direct grid.
_DIRECT_ATTEMPTS = 4 + LIST_SIZE


def _task(job: tuple[str, Any]) -> tuple[str, Any]:
    """One unit of work for ``run_all``'s worker processes (they fork with the pictures in ``_CORPUS``)."""
    kind, payload = job
    if kind == "ours":
        return kind, _picture_row(payload, _CORPUS)
    if kind == "recovery":
        return kind, recovery(_CORPUS)
    if kind == "direct":
        return kind, _direct_found(payload)
    key = MediaKey.from_secret(payload[0])
    started = time.process_time()
    results = [detect_watermark(image, [key]) for image in payload[1]]
    elapsed = time.process_time() - started
    found = sum(result.found for result in results)
    return kind, (elapsed, found, sum(result.attempts > _DIRECT_ATTEMPTS for result in results))


def run_all(
    corpus: dict[str, np.ndarray], key: MediaKey, count: int, searched: int, procs: int
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Our rows, manifest recovery and false positives at once in ``procs`` worker processes (the same work,
    records and seeds as one after the other; each row's times are the CPU time of the process that ran it)."""
    import multiprocessing

    rng = np.random.default_rng(2026)
    pictures = [(index, name, rng.bytes(12), key.secret) for index, name in enumerate(corpus)]
    pictures.sort(key=lambda job: -corpus[job[1]].size)  # largest first, so the workers end together
    direct_inputs = unmarked_inputs(corpus, count, 7)
    search_inputs = unmarked_inputs(corpus, searched, 8)
    jobs: list[tuple[str, Any]] = [("recovery", None), *(("ours", job) for job in pictures)]
    jobs += [("direct", (key.secret, direct_inputs[i : i + 500])) for i in range(0, len(direct_inputs), 500)]
    jobs += [("search", (key.secret, search_inputs[i : i + 25])) for i in range(0, len(search_inputs), 25)]
    _CORPUS.update(corpus)
    rows: dict[str, dict[str, Any]] = {}
    recovered: dict[str, Any] = {}
    direct, search_s, full, past_test = 0, 0.0, 0, 0
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        for kind, value in pool.imap_unordered(_task, jobs):
            if kind == "ours" and value is not None:
                rows[value["image"]] = value
            elif kind == "recovery":
                recovered = value
                print(f"  manifest recovery: {value['recovered']}/{value['images']}", flush=True)
            elif kind == "direct":
                direct += value
            elif kind == "search":
                search_s, full, past_test = search_s + value[0], full + value[1], past_test + value[2]
    fp = {"direct_inputs": count, "direct_found": direct, "search_inputs": searched, "search_found": full,
          "search_ms_per_input": 1000 * search_s / max(searched, 1), "searched_past_template_test": past_test,
          "observed_rate": (direct + full) / (count + searched), "bound_per_attempt": 2.0**-48}  # fmt: skip
    return [rows[name] for name in corpus if name in rows], recovered, fp


def recovery(corpus: dict[str, np.ndarray]) -> dict[str, Any]:
    temporary_home()
    keyring = Keyring()
    keyring.create()
    certificate = ensure_media_certificate(keyring)
    signer = signer_for(certificate.chain_pem, certificate.private_key_pem)
    from tracemark.media import media_key

    key = media_key(keyring)
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder, SoftBindingRepository(Path(folder) / "r.sqlite3") as repository:
        for name, rgb in corpus.items():
            source = io.BytesIO()
            Image.fromarray(rgb).save(source, "PNG")
            marked = mark_image(source.getvalue(), key=key, signer=signer, model_id="bench/model",
                                output_format="JPEG", repository=repository)  # fmt: skip
            pixels = np.asarray(Image.open(io.BytesIO(marked.data)).convert("RGB"))
            laundered = io.BytesIO()
            Image.fromarray(attack("resize0.5", pixels, 0)).save(laundered, "JPEG", quality=50)  # no metadata kept
            verdict = verify_image(laundered.getvalue(), keys=[key], trust_anchors_pem=certificate.root_pem,
                                   repository=repository)  # fmt: skip
            outcomes[name] = verdict.outcome.value
    recovered = sum(value == Outcome.RECOVERED.value for value in outcomes.values())
    return {"images": len(outcomes), "recovered": recovered, "rate": recovered / len(outcomes), "outcomes": outcomes}


QUICK = ["skimage-astronaut", "skimage-chelsea", "skimage-gravel", "skimage-coins", "sklearn-china",
         "plasma-Path", "plasma-Flow", "screenshot-docs-1280x800", "screenshot-chat-390x844"]  # fmt: skip


def _anchor_rows(path: Path) -> dict[str, Any]:
    """The anchor's rows per method from its JSON-lines file (a run cut short still counts its images)."""
    anchors: dict[str, Any] = {}
    if not path.exists():
        return anchors
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        anchors.setdefault(entry["method"], {"bits": 32, "rows": []})["rows"].append(entry["row"])
    return anchors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, help="the first N pictures of the set (default: all)")
    parser.add_argument("--quick", action="store_true", help="nine pictures, 500 unmarked inputs, 20 searched")
    parser.add_argument("--unmarked", type=int, default=10_000)
    parser.add_argument("--unmarked-search", type=int, default=300)
    parser.add_argument("--anchor-rows", type=Path, help="reuse the anchor's rows (JSON lines) from a run")
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--procs", type=int, default=1, help="worker processes for our side (results do not change)")
    args = parser.parse_args()
    if args.quick:
        args.unmarked, args.unmarked_search = 500, 20

    python = ensure_anchor_environment()
    corpus = load(CACHE, names=QUICK) if args.quick else load(CACHE, limit=args.images)
    with tempfile.TemporaryDirectory() as folder:
        rows_file = args.anchor_rows or Path(folder) / "anchor.json.rows.jsonl"
        running = None
        if not args.skip_anchor and args.anchor_rows is None:  # the anchor runs in its own process, beside ours
            print("anchor: invisible-watermark dwtDctSvd", flush=True)
            running = subprocess.Popen([str(python), str(REPO / "bench" / "bench_media_anchor.py"), "run", str(CACHE),
                                        str(Path(folder) / "anchor.json"), *corpus], cwd=REPO / "bench",
                                       env={**os.environ, "PYTHONPATH": str(REPO / "bench")})  # fmt: skip

        key = MediaKey.from_secret(b"tracemark media benchmark key 32")
        print(f"ours on {len(corpus)} images", flush=True)
        if args.procs > 1:
            ours, recovered, fp = run_all(corpus, key, args.unmarked, args.unmarked_search, args.procs)
        else:
            ours = run_ours(corpus, key)
            print("manifest recovery", flush=True)
            recovered = recovery(corpus)
            print("false positives", flush=True)
            fp = false_positives(corpus, key, args.unmarked, args.unmarked_search)
        if running is not None and running.wait() != 0:
            raise SystemExit("the anchor run failed")
        anchors = {} if args.skip_anchor else _anchor_rows(rows_file)
        for result in anchors.values():
            result["rows"] = [row for row in result["rows"] if row["image"] in corpus]

    ours_label = f"tracemark {ALGORITHM.removeprefix('io.tracemark.')} (128 data bits)"
    summary = {ours_label: summarise(ours)}
    for method, result in anchors.items():
        summary[f"imwatermark.{method} ({result['bits']} bits)"] = summarise(result["rows"])
        names = {row["image"] for row in result["rows"]}
        summary[f"{ours_label}, on the anchor's {len(names)} images"] = summarise(
            [row for row in ours if row["image"] in names]
        )
    mine = summary[ours_label]
    checks = {
        "psnr": mine["psnr_min"] >= GOALS["psnr_min"],
        "ssim": mine["ssim_min"] >= GOALS["ssim_min"],
        "robust": mine["robust"]["rate"] >= GOALS["robust_rate"],
        "geometric": mine["geometric"]["rate"] >= GOALS["geometric_rate"],
        "embed_speed": mine["embed_ms_per_mp_median"] <= GOALS["embed_ms_per_mp"],
        "decode_speed": mine["decode_ms_per_mp_median"] <= GOALS["decode_ms_per_mp"],
        "false_positives": fp["direct_found"] + fp["search_found"] == 0
        and fp["direct_inputs"] + fp["search_inputs"] >= 10_000,
        "recovery": recovered["rate"] >= GOALS["recovery_rate"],
        "wrong_payloads": mine["wrong_payloads"] == 0,
    }
    ratios = {}
    for name, other in summary.items():
        if name.startswith("imwatermark"):
            ratios[name] = {
                "embed_speed_ratio": other["embed_ms_per_mp_median"] / mine["embed_ms_per_mp_median"],
                "decode_speed_ratio": other["decode_ms_per_mp_median"] / mine["decode_ms_per_mp_median"],
            }
    per_image = {"tracemark": ours, **{method: result["rows"] for method, result in anchors.items()}}
    corpus_info = {"manifest": "bench/media_corpus.json", "images": len(corpus),
                   "megapixels": sorted(round(row["megapixels"], 3) for row in ours), "quick": args.quick}  # fmt: skip
    path = write_result(
        "media-quick" if args.quick else "media",
        {"goals": GOALS, "met": checks, "corpus": corpus_info, "methods": summary, "anchor_over_ours": ratios,
         "false_positives": fp, "manifest_recovery": recovered, "per_image": per_image},
    )  # fmt: skip
    for name, values in summary.items():
        speed = (
            f"embed {values['embed_ms_per_mp_median']:.0f} ms/MP decode {values['decode_ms_per_mp_median']:.0f} ms/MP"
        )
        print(f"{name}: psnr min {values['psnr_min']:.1f} ssim min {values['ssim_min']:.4f} "
              f"robust {values['robust']['rate']:.3f} geometric {values['geometric']['rate']:.3f} {speed}")  # fmt: skip
    print(f"false positives: {fp}")
    print(f"recovery: {recovered['recovered']}/{recovered['images']}")
    print(f"goals met: {checks}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
