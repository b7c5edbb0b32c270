#!/usr/bin/env python3
"""Train tracemark's bundled reference model from text available offline.

Tests and the demo need a small GPT-2-style causal language model and a byte-level BPE
tokenizer that the repository builds itself, without downloading any model or data set.
This script does all of it, seeded and in a fixed order:

1. gathers an English-prose corpus from documentation on a Debian machine: the help topics
   of ``pydoc_data`` and the standard library's docstrings (read from source with :mod:`ast`,
   so no module is imported for them), the Python HTML documentation, Debian manuals and FAQ,
   the common licences and the man pages shipped by those same packages (never man pages of
   whatever else happens to be installed, so the corpus is the same on every machine with
   the same Debian release). Missing Debian packages are installed with
   ``apt-get install --no-install-recommends``; their versions go into ``training.json``;
2. cleans the text into paragraphs, keeps those that read like English prose, removes
   duplicate paragraphs and holds back about 2% of the documents for evaluation;
3. trains a byte-level BPE tokenizer (GPT-2 style) with the ``tokenizers`` library;
4. trains a ``GPT2LMHeadModel`` from scratch on the CPU (AdamW, warm-up then cosine decay);
5. measures the held-out perplexity, draws sample generations and writes the model folder
   (``model.safetensors``, configs, tokenizer, ``README.md`` model card, ``training.json``).

Reproduce the committed model with::

    python scripts/train_reference_model.py --out models/reference --work /tmp/refmodel-work
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import gzip
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

END_OF_TEXT = "<|endoftext|>"
CORPUS_FORMAT_VERSION = 1

DEFAULT_APT_PACKAGES: tuple[str, ...] = (
    "python3.11-doc",
    "debian-reference-en",
    "debian-faq",
    "debian-handbook",
    "developers-reference",
    "debian-policy",
    "maint-guide",
    "man-db",
    "manpages",
)

MODEL_FOLDER_FILES = frozenset(
    {
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "training.json",
    }
)

SAMPLE_PROMPTS: tuple[str, ...] = (
    "The Python programming language",
    "In this chapter, we",
    "When the system starts,",
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Frequent English function words; the share of them among a paragraph's words tells prose
# (typically 35-50%) from code, tables and option lists (typically under 10%).
ENGLISH_STOPWORDS = _word_set(
    """
    a about above after again all also an and any are as at be because been before being
    between both but by can could did do does doing down during each either for from further
    had has have having he her here his how however i if in into is it its itself may might
    more most must no nor not now of off on once only or other our out over own same she
    should since so some such than that the their them then there these they this those
    through to too under until up us very was we were what when where whether which while
    who whom why will with within without would you your
    """
)


@dataclasses.dataclass(frozen=True)
class Document:
    """One source document, reduced to the prose paragraphs kept for training."""

    source: str
    name: str
    paragraphs: tuple[str, ...]

    @property
    def key(self) -> str:
        """A stable identifier, used to assign the document to the training or held-out split."""
        return f"{self.source}:{self.name}"

    @property
    def text(self) -> str:
        """The document's text, one paragraph a line, paragraphs separated by a blank line."""
        return "\n\n".join(self.paragraphs)


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything that decides the result; written to ``training.json``."""

    out: Path
    work: Path
    seed: int
    threads: int
    apt: bool
    apt_packages: tuple[str, ...]
    man_sections: tuple[str, ...]
    eval_fraction: float
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    batch_size: int
    steps: int
    learning_rate: float
    min_lr_ratio: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    log_every: int
    eval_max_tokens: int
    sample_new_tokens: int
    max_model_bytes: int
    reuse_work: bool


# --------------------------------------------------------------------------------------------
# Corpus: sources
# --------------------------------------------------------------------------------------------


def log(message: str) -> None:
    """Print a timestamped progress line to stderr."""
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def _is_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "install ok installed"


def ensure_debian_packages(packages: Sequence[str]) -> list[str]:
    """Install the missing documentation packages; return the packages that are installed.

    Runs ``apt-get update`` only if a first install attempt fails. A package that cannot be
    installed (absent from this release, no root, no network) is reported and skipped; its
    source then contributes nothing to the corpus.
    """
    if shutil.which("dpkg-query") is None:
        log("not a Debian system (no dpkg-query): skipping documentation packages")
        return []
    missing = [package for package in packages if not _is_installed(package)]
    if missing:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            log(f"cannot install {missing} (need root and apt-get); continuing without them")
        else:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            install = ["apt-get", "install", "-y", "--no-install-recommends"]
            log(f"installing {' '.join(missing)}")
            if subprocess.run([*install, *missing], env=env, check=False).returncode != 0:
                subprocess.run(["apt-get", "update"], env=env, check=False)
                for package in missing:
                    if subprocess.run([*install, package], env=env, check=False).returncode:
                        log(f"could not install {package}; continuing without it")
    return [package for package in packages if _is_installed(package)]


def package_files(packages: Sequence[str]) -> frozenset[Path]:
    """Every file the given Debian packages ship (``dpkg -L``)."""
    files: set[Path] = set()
    for package in packages:
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
        if listed.returncode == 0:
            files.update(Path(line) for line in listed.stdout.splitlines() if line.startswith("/"))
    return frozenset(files)


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """Installed version of each package (absent packages are left out)."""
    versions = {}
    for package in packages:
        shown = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        if shown.returncode == 0 and shown.stdout.strip():
            versions[package] = shown.stdout.strip()
    return versions


def python_topic_documents() -> Iterator[Document]:
    """The help topics of ``pydoc`` (language reference sections shipped as plain text)."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Document("python-pydoc-topics", name, tuple(split_plain_paragraphs(topics[name])))


def python_docstring_documents() -> Iterator[Document]:
    """Module, class and function docstrings of the standard library, read with :mod:`ast`."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skipped_parts = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if skipped_parts.intersection(relative.parts):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue
        paragraphs: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node, clean=True)
                if docstring:
                    paragraphs.extend(split_plain_paragraphs(docstring))
        yield Document("python-docstrings", relative.as_posix(), tuple(paragraphs))


def html_documents(source: str, root: Path, patterns: Sequence[str]) -> Iterator[Document]:
    """Prose paragraphs of every HTML file under ``root`` that matches one of ``patterns``."""
    if not root.is_dir():
        log(f"{source}: {root} is missing, skipped")
        return
    paths = sorted({path for pattern in patterns for path in root.glob(pattern)})
    for path in paths:
        name = path.relative_to(root).as_posix()
        if not path.is_file() or re.search(r"(^|/)(genindex|py-modindex|search)[^/]*$", name):
            continue
        yield Document(source, name, tuple(html_paragraphs(path.read_bytes())))


def license_documents() -> Iterator[Document]:
    """The licence texts in ``/usr/share/common-licenses`` (symbolic links resolved)."""
    root = Path("/usr/share/common-licenses")
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            yield Document("common-licenses", path.name, tuple(split_plain_paragraphs(text)))


def man_page_documents(sections: Sequence[str], shipped: frozenset[Path]) -> Iterator[Document]:
    """English man pages of the given sections that ``shipped`` holds, rendered to plain text by ``man``."""
    if shutil.which("man") is None:
        log("man is not installed: man pages skipped")
        return
    env = dict(os.environ, MANWIDTH="100", GROFF_NO_SGR="1", MANPAGER="cat", PAGER="cat")
    env.pop("MANOPT", None)
    for section in sections:
        directory = Path("/usr/share/man") / f"man{section}"
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not path.is_file() or path.is_symlink() or path not in shipped:
                continue
            try:
                result = subprocess.run(
                    ["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-l", str(path)],
                    capture_output=True,
                    env=env,
                    timeout=60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                continue
            if result.returncode != 0:
                continue
            text = re.sub(r".\x08", "", result.stdout.decode("utf-8", errors="replace"))
            # Section headings (NAME, DESCRIPTION, ...) start at column 0: make them their own
            # paragraph, which the prose filter then drops.
            text = re.sub(r"(?m)^[A-Z][A-Z0-9 ()/,_-]*$", "\n", text)
            yield Document(f"man{section}", path.name, tuple(split_plain_paragraphs(text)))


# --------------------------------------------------------------------------------------------
# Corpus: cleaning
# --------------------------------------------------------------------------------------------


class _HtmlProseParser(HTMLParser):
    """Collects the text of block elements, skipping navigation, code listings and scripts."""

    BLOCK_TAGS = _word_set(
        "p li dd dt h1 h2 h3 h4 h5 h6 blockquote td th div section article caption figcaption table tr ul ol dl br hr"
    )
    SKIPPED_TAGS = _word_set("head script style pre nav textarea svg math form button")
    SKIPPED_CLASSES = _word_set(
        "sphinxsidebar related footer highlight headerlink navheader navfooter toc "
        "breadcrumbs programlisting screen synopsis literallayout cmdsynopsis funcsynopsis "
        "mobile-nav menu"
    )
    VOID_TAGS = _word_set("area base br col embed hr img input link meta source track wbr")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._stack: list[tuple[str, bool]] = []
        self._buffer: list[str] = []
        self.blocks: list[str] = []

    @property
    def _skipping(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def _flush(self) -> None:
        text = " ".join("".join(self._buffer).split())
        if text:
            self.blocks.append(text)
        self._buffer = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCK_TAGS:
            self._flush()
        if tag in self.VOID_TAGS:
            return
        classes = set()
        for attribute, value in attrs:
            if attribute == "class" and value:
                classes.update(value.split())
            if attribute == "role" and value == "navigation":
                classes.add("related")
        skipping = self._skipping or tag in self.SKIPPED_TAGS or bool(classes & self.SKIPPED_CLASSES)
        self._stack.append((tag, skipping))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCK_TAGS:
            self._flush()
        # Pop up to the matching open tag; unmatched end tags (sloppy HTML) are ignored.
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                del self._stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_paragraphs(raw: bytes) -> list[str]:
    """The prose paragraphs of an HTML page."""
    parser = _HtmlProseParser()
    parser.feed(raw.decode("utf-8", errors="replace"))
    parser.close()
    return [paragraph for block in parser.blocks if (paragraph := clean_paragraph(block))]


def split_plain_paragraphs(text: str) -> list[str]:
    """Split plain text on blank lines, reflow each paragraph and keep the prose ones."""
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        paragraph = clean_paragraph(block)
        if paragraph:
            paragraphs.append(paragraph)
    return paragraphs


_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": " - ",
        "\u2010": "-",
        "\u2011": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u00ad": "",
        "\u00b6": "",
        "\u200b": "",
    }
)


def clean_paragraph(block: str) -> str | None:
    """Normalise one paragraph to a single line; return None unless it reads as English prose."""
    text = unicodedata.normalize("NFKC", block.translate(_TYPOGRAPHY))
    text = " ".join(text.split())
    words = text.split()
    if len(words) < 8 or len(text) > 5000 or ">>>" in text:
        return None
    if sum(ord(character) < 128 for character in text) < 0.99 * len(text):
        return None
    if sum(character.isalpha() or character == " " for character in text) < 0.8 * len(text):
        return None
    function_words = sum(word.strip(".,;:()\"'!?").lower() in ENGLISH_STOPWORDS for word in words)
    if function_words < 0.2 * len(words):
        return None
    first = text[0].lower()
    if not ("a" <= first <= "z" or first.isdigit() or first in "\"'("):
        return None
    return text


def gather_documents(options: Options) -> list[Document]:
    """All documents in a fixed order, every paragraph kept only at its first occurrence."""
    if options.apt:
        installed = ensure_debian_packages(options.apt_packages)
        log(f"documentation packages installed: {', '.join(installed) or 'none'}")
    python_html_roots = sorted(Path("/usr/share/doc").glob("python3*/html"))
    sources: list[Iterable[Document]] = [
        python_topic_documents(),
        python_docstring_documents(),
        *(html_documents("python-docs", root, ["**/*.html"]) for root in python_html_roots),
        html_documents("debian-reference", Path("/usr/share/debian-reference"), ["*.en.html"]),
        html_documents("debian-faq", Path("/usr/share/doc/debian/FAQ"), ["*.en.html"]),
        html_documents("debian-handbook", Path("/usr/share/doc/debian-handbook/html/en-US"), ["*.html"]),
        html_documents("developers-reference", Path("/usr/share/developers-reference"), ["*.html"]),
        html_documents("debian-policy", Path("/usr/share/doc/debian-policy"), ["**/*.html"]),
        html_documents("maint-guide", Path("/usr/share/doc/maint-guide/html"), ["*.en.html"]),
        license_documents(),
        man_page_documents(options.man_sections, package_files(options.apt_packages)),
    ]
    seen: set[bytes] = set()
    documents: list[Document] = []
    for source in sources:
        for document in source:
            kept = []
            for paragraph in document.paragraphs:
                digest = hashlib.sha1(paragraph.lower().encode()).digest()
                if digest not in seen:
                    seen.add(digest)
                    kept.append(paragraph)
            if kept:
                documents.append(dataclasses.replace(document, paragraphs=tuple(kept)))
    return documents


def split_documents(
    documents: Sequence[Document], eval_fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Hold back whole documents, in an order fixed by a keyed hash, up to ``eval_fraction``."""
    total = sum(len(document.text) for document in documents)

    def rank(document: Document) -> str:
        return hashlib.sha256(f"{seed}:{document.key}".encode()).hexdigest()

    held_out_keys: set[str] = set()
    held_out_chars = 0
    for document in sorted(documents, key=rank):
        if held_out_chars >= eval_fraction * total:
            break
        held_out_keys.add(document.key)
        held_out_chars += len(document.text)
    train = [document for document in documents if document.key not in held_out_keys]
    held_out = [document for document in documents if document.key in held_out_keys]
    return train, held_out


def write_documents(path: Path, documents: Sequence[Document]) -> str:
    """Write documents as gzipped JSON lines; return the SHA-256 of the uncompressed content."""
    digest = hashlib.sha256()
    with gzip.GzipFile(path, "wb", mtime=0) as stream:
        for document in documents:
            line = json.dumps(
                {"source": document.source, "name": document.name, "paragraphs": document.paragraphs},
                ensure_ascii=False,
            ).encode()
            digest.update(line + b"\n")
            stream.write(line + b"\n")
    return digest.hexdigest()


def read_documents(path: Path) -> list[Document]:
    """Read documents written by :func:`write_documents`."""
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return [
            Document(record["source"], record["name"], tuple(record["paragraphs"]))
            for record in map(json.loads, stream)
        ]


def corpus_statistics(documents: Sequence[Document]) -> dict[str, dict[str, int]]:
    """Documents, paragraphs and characters per source."""
    statistics: dict[str, dict[str, int]] = {}
    for document in documents:
        entry = statistics.setdefault(document.source, {"documents": 0, "paragraphs": 0, "characters": 0})
        entry["documents"] += 1
        entry["paragraphs"] += len(document.paragraphs)
        entry["characters"] += len(document.text)
    return statistics


def prepare_corpus(options: Options) -> dict[str, Any]:
    """Gather, clean and split the corpus into the work folder (or reuse it); return its summary."""
    summary_path = options.work / "corpus.json"
    settings = {
        "format": CORPUS_FORMAT_VERSION,
        "seed": options.seed,
        "eval_fraction": options.eval_fraction,
        "man_sections": list(options.man_sections),
    }
    if options.reuse_work and summary_path.is_file():
        summary: dict[str, Any] = json.loads(summary_path.read_text())
        if all(summary.get(key) == value for key, value in settings.items()):
            log(f"reusing the corpus in {options.work}")
            return summary
    started = time.monotonic()
    documents = gather_documents(options)
    train, held_out = split_documents(documents, options.eval_fraction, options.seed)
    summary = {
        **settings,
        "train_sha256": write_documents(options.work / "train.jsonl.gz", train),
        "eval_sha256": write_documents(options.work / "eval.jsonl.gz", held_out),
        "train_documents": len(train),
        "eval_documents": len(held_out),
        "train_characters": sum(len(document.text) for document in train),
        "eval_characters": sum(len(document.text) for document in held_out),
        "sources": corpus_statistics(documents),
        "seconds": round(time.monotonic() - started, 1),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    log(
        f"corpus: {summary['train_characters']:,} training and {summary['eval_characters']:,}"
        f" held-out characters in {summary['seconds']} s"
    )
    return summary


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


def train_tokenizer(documents: Sequence[Document], vocab_size: int) -> Any:
    """Train a GPT-2-style byte-level BPE tokenizer with ``<|endoftext|>`` as its only special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((document.text for document in documents), trainer, len(documents))
    return tokenizer


def save_tokenizer(tokenizer: Any, out: Path, n_positions: int) -> Any:
    """Save the tokenizer for both ``tokenizers`` and ``transformers.AutoTokenizer``."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=n_positions,
        clean_up_tokenization_spaces=False,
    )
    wrapped.save_pretrained(str(out))
    # transformers 5 names its own generic class here; the older generic name loads in 4.x and 5.x.
    config_path = out / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")
    return wrapped


def encode_documents(tokenizer: Any, documents: Sequence[Document], eos_id: int) -> Any:
    """Token ids of the documents, each followed by ``<|endoftext|>``, as a uint16 array."""
    import numpy as np

    encodings = tokenizer.encode_batch([document.text for document in documents])
    pieces = [np.asarray([*encoding.ids, eos_id], dtype=np.uint16) for encoding in encodings]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint16)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python, NumPy and torch; make torch deterministic and single-threaded by default."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN to expose reads of uninitialised
    # memory; that costs a tenth of the training time and does not change any result.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


def build_model(options: Options, vocab_size: int, eos_id: int) -> Any:
    """A freshly initialised GPT-2 with tied embeddings and no dropout (it sees under one epoch)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=options.n_positions,
        n_embd=options.n_embd,
        n_layer=options.n_layer,
        n_head=options.n_head,
        activation_function="gelu_pytorch_tanh",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def learning_rate_factor(step: int, options: Options) -> float:
    """Linear warm-up, then cosine decay down to ``min_lr_ratio`` of the peak."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return options.min_lr_ratio + (1.0 - options.min_lr_ratio) * cosine


def train_model(model: Any, tokens: Any, options: Options) -> dict[str, Any]:
    """Train on random windows of the token stream; return the loss curve and timings."""
    import numpy as np
    import torch
    import torch.nn.functional as functional

    decay = [parameter for parameter in model.parameters() if parameter.dim() >= 2]
    no_decay = [parameter for parameter in model.parameters() if parameter.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": options.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=options.learning_rate,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, options))
    generator = np.random.default_rng(options.seed)
    window = options.n_positions + 1
    stream = torch.from_numpy(tokens.astype(np.int64))
    offsets = np.arange(window)
    losses: list[tuple[int, float]] = []
    running = 0.0
    model.train()
    started = time.monotonic()
    for step in range(options.steps):
        starts = generator.integers(0, len(tokens) - window, size=options.batch_size)
        batch = stream[torch.from_numpy(starts[:, None] + offsets)]
        logits = model(input_ids=batch[:, :-1]).logits
        loss = functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        if (step + 1) % options.log_every == 0 or step + 1 == options.steps:
            count = (step % options.log_every) + 1
            average = running / count
            running = 0.0
            losses.append((step + 1, round(average, 4)))
            elapsed = time.monotonic() - started
            seen = (step + 1) * options.batch_size * options.n_positions
            log(
                f"step {step + 1}/{options.steps} loss {average:.4f}"
                f" lr {scheduler.get_last_lr()[0]:.2e} {seen / elapsed:,.0f} tokens/s"
                f" elapsed {elapsed / 60:.1f} min"
            )
    seconds = time.monotonic() - started
    return {
        "loss_curve": losses,
        "seconds": round(seconds, 1),
        "tokens_seen": options.steps * options.batch_size * options.n_positions,
    }


def evaluate_perplexity(model: Any, tokens: Any, options: Options) -> dict[str, float | int]:
    """Perplexity over non-overlapping windows of the held-out token stream."""
    import numpy as np
    import torch
    import torch.nn.functional as functional

    window = options.n_positions + 1
    usable = min(len(tokens), options.eval_max_tokens + 1)
    count = max(1, (usable - 1) // options.n_positions)
    stream = torch.from_numpy(tokens[: count * options.n_positions + 1].astype(np.int64))
    total_loss = 0.0
    total_tokens = 0
    model.eval()
    with torch.no_grad():
        for first in range(0, count, options.batch_size):
            rows = [
                stream[index * options.n_positions : index * options.n_positions + window]
                for index in range(first, min(count, first + options.batch_size))
            ]
            batch = torch.stack(rows)
            logits = model(input_ids=batch[:, :-1]).logits
            total_loss += functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
            ).item()
            total_tokens += batch[:, 1:].numel()
    mean_loss = total_loss / total_tokens
    return {
        "loss": round(mean_loss, 4),
        "perplexity": round(math.exp(mean_loss), 2),
        "tokens": total_tokens,
    }


def sample_generations(model: Any, tokenizer: Any, options: Options) -> list[dict[str, str]]:
    """Sample a continuation of each prompt at temperature 1.0 with no top-k or top-p cut."""
    import torch

    samples = []
    model.eval()
    for index, prompt in enumerate(SAMPLE_PROMPTS):
        torch.manual_seed(options.seed + index)
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=options.sample_new_tokens,
            )
        text = tokenizer.decode(output[0], skip_special_tokens=True)
        samples.append({"prompt": prompt, "text": text})
    return samples


def save_model(model: Any, out: Path, eos_id: int) -> None:
    """Save weights as safetensors, the config and a sampling generation config."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
    )
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "model.safetensors").chmod(0o644)


# --------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------

SOURCE_DESCRIPTIONS: dict[str, str] = {
    "python-pydoc-topics": "`pydoc_data.topics` (language reference help topics shipped with Python)",
    "python-docstrings": "docstrings of the Python standard library, read from its source with `ast`",
    "python-docs": "Python HTML documentation (Debian package `python3.11-doc`)",
    "debian-reference": "Debian Reference (`debian-reference-en`)",
    "debian-faq": "Debian FAQ (`debian-faq`)",
    "debian-handbook": "The Debian Administrator's Handbook, en-US (`debian-handbook`)",
    "developers-reference": "Debian Developer's Reference (`developers-reference`)",
    "debian-policy": "Debian Policy Manual and related documents (`debian-policy`)",
    "maint-guide": "Debian New Maintainers' Guide (`maint-guide`)",
    "common-licenses": "licence texts in `/usr/share/common-licenses`",
}


def describe_source(source: str) -> str:
    """A human description of one corpus source."""
    if source.startswith("man"):
        return f"man pages, section {source[3:]}, rendered to text with `man`"
    return SOURCE_DESCRIPTIONS.get(source, source)


def reproduce_command(options: Options) -> str:
    """The command line that reproduces this run."""
    return (
        "python scripts/train_reference_model.py"
        f" --out {options.out} --work {options.work} --seed {options.seed}"
        f" --threads {options.threads} --steps {options.steps}"
    )


def model_card(report: dict[str, Any]) -> str:
    """The README.md of the model folder."""
    model = report["model"]
    corpus = report["corpus"]
    evaluation = report["evaluation"]
    training = report["training"]
    options = report["options"]
    architecture = (
        f"`GPT2LMHeadModel`, {model['n_layer']} layers, {model['n_head']} heads, width {model['n_embd']},"
        f" context {model['n_positions']} tokens, tied input/output embeddings"
    )
    tokenizer = (
        f"byte-level BPE (GPT-2 pre-tokenizer and decoder), {model['vocab_size']:,} tokens;"
        f" `{END_OF_TEXT}` (id {model['eos_token_id']}) is bos, eos, unk and pad"
    )
    split = (
        f"{corpus['train_characters']:,} characters ({corpus['train_tokens']:,} tokens) in"
        f" {corpus['train_documents']:,} documents for training; {corpus['eval_characters']:,} characters"
        f" ({corpus['eval_tokens']:,} tokens) in {corpus['eval_documents']:,} whole documents held back"
        f" for evaluation (about {options['eval_fraction']:.0%})"
    )
    optimiser = (
        f"AdamW (betas 0.9/0.95, weight decay {options['weight_decay']} on matrices), peak learning rate"
        f" {options['learning_rate']}, {options['warmup_steps']} warm-up steps then cosine decay to"
        f" {options['min_lr_ratio']:.0%} of the peak; gradient clipping at {options['grad_clip']}; no dropout"
    )
    schedule = (
        f"{training['steps']:,} steps of {options['batch_size']} random windows of {model['n_positions'] + 1}"
        f" tokens ({training['tokens_seen']:,} tokens seen) on the CPU with {options['threads']} thread(s):"
        f" {training['seconds'] / 60:.1f} minutes of training, {report['total_seconds'] / 60:.1f} minutes"
        f" for the whole script, on {report['environment']['machine']}"
    )
    rows = "\n".join(
        f"| {describe_source(source)} | {entry['documents']:,} | {entry['characters']:,} |"
        for source, entry in corpus["sources"].items()
    )
    samples = "\n\n".join(
        f"**Prompt:** `{sample['prompt']}`\n\n> {sample['text'].replace(chr(10), ' ')}" for sample in report["samples"]
    )
    return f"""# tracemark reference model

A small GPT-2-style causal language model with a byte-level BPE tokenizer, trained from scratch by
`scripts/train_reference_model.py` on documentation available offline on a Debian machine. tracemark's
tests and demo use it to exercise text watermarking end to end without downloading a model. It writes
English-like text about Python and Debian; it is not useful for anything else, and it knows nothing
beyond its small training corpus.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("models/reference")
tokenizer = AutoTokenizer.from_pretrained("models/reference")
```

`tokenizers.Tokenizer.from_file("models/reference/tokenizer.json")` loads the tokenizer without torch.
`generation_config.json` asks for pure sampling (temperature 1.0, no top-k, no top-p).

## Model

| | |
|---|---|
| architecture | {architecture} |
| parameters | {model["parameters"]:,} |
| weights | `model.safetensors`, float32, {model["safetensors_bytes"]:,} bytes |
| tokenizer | {tokenizer} |

## Training

- Corpus: {split}.
- Cleaning: HTML reduced to paragraph text with `html.parser` (navigation, code listings and scripts
  dropped); each paragraph reflowed to one line and kept only when it looks like English prose (at least
  8 words, ASCII, mostly letters, at least 20% English function words); duplicate paragraphs removed.
- Tokenizer: trained on the training split only.
- Optimiser: {optimiser}.
- Schedule: {schedule}.
- Final training loss {training["final_loss"]:.3f} nats/token.

## Evaluation

Held-out perplexity **{evaluation["perplexity"]:.2f}** (mean loss {evaluation["loss"]:.4f} nats/token over
{evaluation["tokens"]:,} tokens in non-overlapping windows of {model["n_positions"]} tokens).

## Samples

Temperature 1.0, `top_k=0`, {options["sample_new_tokens"]} new tokens, seeded:

{samples}

## Data sources

| source | documents | characters |
|---|---:|---:|
{rows}

Checksums of the cleaned splits (SHA-256 of their JSON lines): training `{corpus["train_sha256"]}`,
held-out `{corpus["eval_sha256"]}`. They depend on the versions of Python and of the Debian packages.

## Reproduce

```sh
{report["reproduce"]}
```

Everything is seeded, torch runs single-threaded in deterministic mode, and the corpus is read in a
sorted order, so the same machine image gives the same files. Other package versions, another thread
count or another torch build change the corpus or the floating-point rounding, and so the weights.

## Licence of the training data

- The Python documentation, `pydoc_data` and the standard-library docstrings are copyright the Python
  Software Foundation and distributed under the PSF License Agreement (examples in the documentation
  under the Zero-Clause BSD licence).
- The Debian documentation keeps its own licences: Debian Reference (GPL-2+), Debian FAQ (GPL-2+),
  The Debian Administrator's Handbook (GPL-2+ or CC BY-SA 3.0), Developer's Reference (GPL-2+), Debian
  Policy (GPL-2+ and others per document), New Maintainers' Guide (MIT-style); see
  `/usr/share/doc/<package>/copyright`.
- Man pages are under the licences of the packages that ship them (see their `copyright` files); the
  texts in `/usr/share/common-licenses` are the licences themselves, which permit verbatim copying.

The weights are a statistical summary of this text made by the tracemark project; treat them as derived
from the sources above when redistributing them.
"""


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def prepare_output_folder(out: Path) -> None:
    """Empty the model folder of a previous run; refuse a folder that holds anything else."""
    out.mkdir(parents=True, exist_ok=True)
    unexpected = sorted(path.name for path in out.iterdir() if path.name not in MODEL_FOLDER_FILES)
    if unexpected:
        raise SystemExit(f"{out} holds files this script did not write: {', '.join(unexpected)}")
    for path in out.iterdir():
        path.unlink()


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("models/reference"), help="model folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/refmodel-work"), help="folder for intermediate data")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-apt", dest="apt", action="store_false", help="never run apt-get")
    parser.add_argument("--apt-packages", default=",".join(DEFAULT_APT_PACKAGES))
    parser.add_argument("--man-sections", default="5,7,8", help="man sections to include")
    parser.add_argument("--eval-fraction", type=float, default=0.02)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--n-positions", type=int, default=256)
    parser.add_argument("--n-embd", type=int, default=192)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--min-lr-ratio", type=float, default=0.1)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-max-tokens", type=int, default=131072)
    parser.add_argument("--sample-new-tokens", type=int, default=60)
    parser.add_argument("--max-model-bytes", type=int, default=20_000_000)
    parser.add_argument("--reuse-work", action="store_true", help="reuse a corpus already gathered in --work")
    arguments = parser.parse_args(argv)
    return Options(
        out=arguments.out,
        work=arguments.work,
        seed=arguments.seed,
        threads=arguments.threads,
        apt=arguments.apt,
        apt_packages=tuple(filter(None, arguments.apt_packages.split(","))),
        man_sections=tuple(filter(None, arguments.man_sections.split(","))),
        eval_fraction=arguments.eval_fraction,
        vocab_size=arguments.vocab_size,
        n_positions=arguments.n_positions,
        n_embd=arguments.n_embd,
        n_layer=arguments.n_layer,
        n_head=arguments.n_head,
        batch_size=arguments.batch_size,
        steps=arguments.steps,
        learning_rate=arguments.learning_rate,
        min_lr_ratio=arguments.min_lr_ratio,
        warmup_steps=arguments.warmup_steps,
        weight_decay=arguments.weight_decay,
        grad_clip=arguments.grad_clip,
        log_every=arguments.log_every,
        eval_max_tokens=arguments.eval_max_tokens,
        sample_new_tokens=arguments.sample_new_tokens,
        max_model_bytes=arguments.max_model_bytes,
        reuse_work=arguments.reuse_work,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Build the corpus, train tokenizer and model, evaluate and write the model folder."""
    options = parse_options(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", str(options.threads))
    started = time.monotonic()
    options.work.mkdir(parents=True, exist_ok=True)

    corpus = prepare_corpus(options)
    train_documents = read_documents(options.work / "train.jsonl.gz")
    eval_documents = read_documents(options.work / "eval.jsonl.gz")
    # Documents go into the training stream in a seeded order so every window mixes sources.
    random.Random(options.seed).shuffle(train_documents)

    import torch
    import transformers

    seed_everything(options.seed, options.threads)
    log(f"training the tokenizer on {len(train_documents):,} documents")
    tokenizer = train_tokenizer(train_documents, options.vocab_size)
    eos_id = tokenizer.token_to_id(END_OF_TEXT)
    train_tokens = encode_documents(tokenizer, train_documents, eos_id)
    eval_tokens = encode_documents(tokenizer, eval_documents, eos_id)
    corpus = {**corpus, "train_tokens": len(train_tokens), "eval_tokens": len(eval_tokens)}
    log(f"{len(train_tokens):,} training and {len(eval_tokens):,} held-out tokens")

    prepare_output_folder(options.out)
    hf_tokenizer = save_tokenizer(tokenizer, options.out, options.n_positions)

    model = build_model(options, tokenizer.get_vocab_size(), eos_id)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    log(f"model: {parameters:,} parameters")
    training = train_model(model, train_tokens, options)
    training["steps"] = options.steps
    training["final_loss"] = training["loss_curve"][-1][1]
    evaluation = evaluate_perplexity(model, eval_tokens, options)
    log(f"held-out perplexity {evaluation['perplexity']} over {evaluation['tokens']:,} tokens")
    samples = sample_generations(model, hf_tokenizer, options)
    for sample in samples:
        log(f"sample: {sample['text']!r}")

    save_model(model, options.out, eos_id)
    weights_bytes = (options.out / "model.safetensors").stat().st_size
    if weights_bytes > options.max_model_bytes:
        raise SystemExit(f"model.safetensors is {weights_bytes:,} bytes, over {options.max_model_bytes:,}")

    report: dict[str, Any] = {
        "name": "tracemark reference model",
        "options": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in dataclasses.asdict(options).items()
            if key != "reuse_work"
        },
        "model": {
            "architecture": "GPT2LMHeadModel",
            "parameters": parameters,
            "safetensors_bytes": weights_bytes,
            "dtype": "float32",
            "vocab_size": tokenizer.get_vocab_size(),
            "n_positions": options.n_positions,
            "n_embd": options.n_embd,
            "n_layer": options.n_layer,
            "n_head": options.n_head,
            "eos_token_id": eos_id,
        },
        "corpus": corpus,
        "training": training,
        "evaluation": evaluation,
        "samples": samples,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": __import__("tokenizers").__version__,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "debian_packages": package_versions(options.apt_packages),
        },
        "reproduce": reproduce_command(options),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    (options.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    (options.out / "README.md").write_text(model_card(report))
    log(f"wrote {options.out} in {report['total_seconds'] / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
