"""Code inside model formats is read as code (issue 20, point 3).

TorchScript programs from their syntax tree, Keras configs in HDF5 as JSON (escapes decoded),
chat templates with jinja2's parser, and zip archives found by their end-of-central-directory
record wherever they start.
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import struct
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tracemark.supply import scan_bytes
from tracemark.supply._code import chat_template_issues, torchscript_issues


def rules(data: bytes, name: str) -> list[str]:
    return sorted(finding.rule_id for finding in scan_bytes(data, name).findings)


def torchscript_archive(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({}, protocol=2))
        archive.writestr("model/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("model/code/__torch__.py", code)
        archive.writestr("model/version", "8\n")
    return buffer.getvalue()


BENIGN_PROGRAM = textwrap.dedent(
    """\
    class M(Module):
      __parameters__ = []
      def forward(self: __torch__.M, x: Tensor) -> Tensor:
        _0 = torch.add(torch.mul(x, 2), 1)
        return torch.relu(_0)
    """
)


@pytest.mark.parametrize(
    "call",
    [
        'torch.from_file("/etc/passwd", None, 4)',
        'torch.save(x, "/tmp/stolen.pt")',
        'torch.load("/tmp/other.pt")',
        'ops.aten.from_file("/etc/shadow", None, 8)',
        'torch.ops.load_library("/tmp/evil.so")',
        'open("/etc/passwd")',
    ],
)
def test_torchscript_file_and_library_calls_are_findings(call: str) -> None:
    program = BENIGN_PROGRAM.replace("return torch.relu(_0)", f"_1 = {call}\n    return torch.relu(_0)")
    data = torchscript_archive(program)
    report = scan_bytes(data, "model.pt")
    assert [(f.rule_id, f.severity.value) for f in report.findings] == [("torchscript.code-io", "critical")]
    assert report.files[0].format == "torchscript"


def test_a_torchscript_program_that_only_computes_passes() -> None:
    assert rules(torchscript_archive(BENIGN_PROGRAM), "model.pt") == []
    assert torchscript_issues("def f(:\n", "code/x.py")[0][0] == "torchscript.unparsable"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_real_torch_jit_save_archive(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    source = tmp_path / "leaky_module.py"
    source.write_text(
        textwrap.dedent(
            """\
            import torch

            class Leaky(torch.nn.Module):
                def forward(self, x: torch.Tensor) -> torch.Tensor:
                    torch.save(x, "/tmp/leak.pt")
                    return x + 1
            """
        )
    )
    spec = importlib.util.spec_from_file_location("leaky_module", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["leaky_module"] = module
    try:
        spec.loader.exec_module(module)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(module.Leaky()), buffer)
    finally:
        del sys.modules["leaky_module"]
    assert rules(buffer.getvalue(), "leaky.pt") == ["torchscript.code-io"]


def hdf5_with(config: str) -> bytes:
    # An HDF5 signature, then the model_config attribute's JSON string among other bytes.
    return b"\x89HDF\r\n\x1a\n" + b"\x00" * 200 + config.encode() + b"\x00" * 100


def _sequential(*layers: dict[str, object]) -> dict[str, object]:
    return {"class_name": "Sequential", "config": {"layers": list(layers)}}


def _activation(module: str, name: str) -> dict[str, object]:
    function = {"module": module, "class_name": "function", "config": name}
    return {"class_name": "Dense", "config": {"activation": function}}


def test_keras_configs_in_hdf5_are_read_as_json() -> None:
    lambda_layer = json.dumps(_sequential({"class_name": "Lambda", "config": {"name": "l"}}))
    escaped = lambda_layer.replace('"Lambda"', '"\\u004cambda"')
    assert "Lambda" not in escaped
    assert rules(hdf5_with(escaped), "model.h5") == ["keras.lambda-layer"]
    foreign = json.dumps(_sequential(_activation("os", "system")))
    assert rules(hdf5_with(foreign), "model.h5") == ["keras.foreign-function"]
    dense = json.dumps(_sequential(_activation("keras.activations", "relu")))
    assert rules(hdf5_with(dense), "model.h5") == []


def keras_archive(config: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    return buffer.getvalue()


def test_a_zip_is_found_by_its_end_record_behind_a_prefix() -> None:
    lambda_model = _sequential({"class_name": "Lambda", "config": {}})
    prefixed = b"this is not a zip header\n" * 40 + keras_archive(lambda_model)
    report = scan_bytes(prefixed, "model.keras")
    assert report.files[0].format == "zip"
    assert [f.rule_id for f in report.findings] == ["keras.lambda-layer"]
    assert zipfile.ZipFile(io.BytesIO(prefixed)).read("config.json")  # what a loader opens


def test_text_that_merely_mentions_the_end_record_stays_data() -> None:
    assert rules(b"notes: PK\x05\x06 appears here\n" + b"x" * 30, "notes.txt") == []


def gguf_with_template(template: str) -> bytes:
    raw = template.encode()
    key = b"tokenizer.chat_template"
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    body += struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", len(raw)) + raw
    return body + b"\x00" * (-len(body) % 32) + b"\x00" * 64


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
INJECTIONS = {
    "escaped-dunder": '{{ messages["\\x5f\\x5fclass\\x5f\\x5f"] }}',
    "attr-filter-concat": '{{ messages|attr("__cl" ~ "ass__") }}',
    "attr-filter-variable": "{% set n = name %}{{ messages|attr(n) }}",
    "plus-built-name": '{% set n = "__glo" + "bals__" %}{{ n }}',
    "computed-subscript": "{{ messages[a ~ b] }}",
    "unicode-escape": '{{ messages["\\u005f\\u005fmro\\u005f\\u005f"] }}',
    "plain-dunder": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
}


@pytest.mark.parametrize("name", sorted(INJECTIONS))
def test_chat_template_injection_is_found_after_jinja_decodes_it(name: str) -> None:
    assert rules(gguf_with_template(INJECTIONS[name]), "model.gguf") == ["gguf.template-code"]


def test_ordinary_chat_templates_pass() -> None:
    assert rules(gguf_with_template(CHATML), "model.gguf") == []
    llama = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
        "{{ '[INST] ' + m['content'] | trim + ' [/INST]' }}"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
    )
    assert chat_template_issues(llama, "t") == []


def test_tokenizer_config_chat_templates_are_checked_too() -> None:
    config = {
        "chat_template": [
            {"name": "default", "template": CHATML},
            {"name": "tool", "template": INJECTIONS["escaped-dunder"]},
        ]
    }
    assert rules(json.dumps(config).encode(), "tokenizer_config.json") == ["gguf.template-code"]
    assert rules(json.dumps({"chat_template": CHATML}).encode(), "tokenizer_config.json") == []


def test_reading_json_out_of_hdf5_bytes_has_a_bounded_cost() -> None:
    import os
    import time

    started = time.perf_counter()
    weights = hdf5_with(json.dumps(_sequential({"class_name": "Dense", "config": {}}))) + os.urandom(8 << 20)
    assert rules(weights, "model.h5") == []
    hostile = b"\x89HDF\r\n\x1a\n" + b'{"' * (4 << 20)
    assert rules(hostile, "model.h5") == ["keras.config-unreadable"]
    assert time.perf_counter() - started < 30
