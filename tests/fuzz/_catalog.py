"""The fuzz targets as data: what each one measures coverage over, its input bound and its test budget.

Kept free of tracemark imports so ``run_all.py`` can start coverage.py before any parser is imported.
A scope entry is a module (``tracemark.supply._pickle``) or a module and the functions of it the
target exercises (``tracemark.supply._formats:check_gguf,_gguf_value``), named as coverage.py
names them (``Class.method``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    #: Where coverage is measured (the parser under test).
    scope: tuple[str, ...]
    #: Largest input the coverage-guided fuzzer generates (bytes).
    max_len: int
    #: Examples per hypothesis run in ``make test`` (sized so the whole set takes about a minute).
    examples: int


_NOTE_KEYS = (
    "tracemark.tlog._note:b64decode_strict,note_key_id,check_key_name,_ed25519_public,NoteVerifier.__post_init__,"
    "NoteVerifier.from_vkey,NoteVerifier.vkey,NoteSigner.__init__,NoteSigner.from_skey,NoteSigner.skey"
)

CATALOG: dict[str, Entry] = {
    "pickle": Entry(("tracemark.supply._pickle",), 16384, 600),
    "scan": Entry(("tracemark.supply._scan",), 65536, 300),
    "safetensors": Entry(("tracemark.supply._formats:looks_like_safetensors,_no_duplicates,check_safetensors",),
                         4096, 400),
    "gguf": Entry(("tracemark.supply._formats:_Reader.__init__,_Reader.unpack,_Reader.string,check_gguf,_gguf_value",),
                  4096, 400),
    "onnx": Entry(("tracemark.supply._formats:_fields,_fields.varint,onnx_external_locations,_graph_locations,"
                   "_attribute_locations,_tensor_locations,location_escapes",), 4096, 400),
    "npy": Entry(("tracemark.supply._formats:parse_npy_header,npy_has_objects",), 4096, 400),
    "asar": Entry(("tracemark.electron._asar:AsarArchive.header_sha256,AsarArchive.read,_u32,open_asar,_walk,"
                   "check_integrity,_check_entry",), 8192, 300),
    "fuses": Entry(("tracemark.electron._fuses:FuseWire.state,decode_fuse_wire,find_fuse_wires,read_fuses,"
                    "encode_fuse_wire",), 4096, 400),
    "html": Entry(("tracemark.electron._html:HtmlPage.__init__,HtmlPage._index,HtmlPage.find,HtmlPage.csp_policies,"
                   "_tag",), 8192, 300),
    "csp": Entry(("tracemark.electron._html:parse_csp,csp_weaknesses",), 2048, 500),
    "js": Entry(("tracemark.electron._js",), 8192, 250),
    "receipt": Entry(("tracemark.tlog._receipt",
                      "tracemark.tlog._checkpoint:parse_decimal,Checkpoint.parse,verify_checkpoint"), 8192, 400),
    "note": Entry(("tracemark.tlog._note:b64decode_strict,check_key_name,NoteVerifier.verify,SignedNote.parse,"
                   "SignedNote.to_text,_parse_signature_line,open_note",
                   "tracemark.tlog._checkpoint:parse_decimal,Checkpoint.__post_init__,Checkpoint.body,Checkpoint.parse,"
                   "verify_checkpoint",
                   "tracemark.tlog._witness:AddCheckpointRequest.to_text,AddCheckpointRequest.parse"), 4096, 400),
    "record": Entry(("tracemark.tlog._records:ProvenanceRecord.from_json,ProvenanceRecord.from_dict,"
                     "ProvenanceRecord.__post_init__,ProvenanceRecord.to_json,_no_duplicates,_no_constant,parse_kind,"
                     "_check_key_id,_check_model_id,_check_time",), 4096, 500),
    "note-keys": Entry((_NOTE_KEYS,), 512, 500),
    "osv": Entry(("tracemark.advisories._osv", "tracemark.advisories._versions"), 8192, 250),
    "image": Entry(("tracemark.media._image_io:decode_image,_split_alpha,encode_image",), 16384, 400),
    "key-record": Entry(("tracemark.keys._records:TextKey.commitment,TextKey.public_record,TextKey.to_json,"
                         "TextKey.from_json,compute_key_id,canonical_json,_frozen",), 4096, 500),
}  # fmt: skip
