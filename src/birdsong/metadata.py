"""TFLite Model Metadata (``metadata_schema.fbs``) for birdsong audio classifiers.

:func:`add_metadata` writes the ``TFLITE_METADATA`` flatbuffer of tflite-support,
which MediaPipe Tasks' ``AudioClassifier`` reads: input tensor 0 has
``AudioProperties`` (sample rate, channels); output tensor 0 has the
``TENSOR_AXIS_LABELS`` file ``labels.txt``. birdsong's own JSON document (name,
version, labels, audio format, ``settings``) is the ``SubGraphMetadata.custom_metadata``
entry ``"birdsong"`` (schema 1.5.0) and also the associated file ``birdsong.json``;
``ModelMetadata.description`` stays human text. Associated files are an
uncompressed zip appended to the flatbuffer, as tflite-support does, so the
``.tflite`` is also a zip archive. Reading needs no TensorFlow (struct + zipfile);
writing re-packs the model with the TFLite schema module of ai-edge-litert/TF.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers

from birdsong._io import printable
from birdsong.errors import InvalidParameterError, MissingDependencyError, ModelError

__all__ = ["ModelInfo", "add_metadata", "has_metadata", "read_labels", "read_metadata"]

METADATA_NAME = "TFLITE_METADATA"
LABELS_FILE = "labels.txt"
SETTINGS_FILE = "birdsong.json"
CUSTOM_METADATA_NAME = "birdsong"
MIN_PARSER_VERSION = "1.5.0"  # CustomMetadata was added in metadata schema 1.5.0
FORMAT_VERSION = 1
_TFLITE_ID, _METADATA_ID = b"TFL3", b"M001"
# Enum values of metadata_schema.fbs.
_FEATURE_PROPERTIES, _AUDIO_PROPERTIES = 1, 4  # ContentProperties union tags
_UNKNOWN_FILE, _TENSOR_AXIS_LABELS = 0, 2  # AssociatedFileType


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a birdsong (or any audio-metadata) ``.tflite`` says about itself.

    Attributes
    ----------
    name : str
        Model name (``ModelMetadata.name``).
    version : str
        Model version string (``ModelMetadata.version``), ``""`` if absent.
    labels : tuple of str
        Class labels in the order of the output scores.
    sample_rate : int
        Sample rate in Hz the model expects.
    channels : int
        Number of audio channels (interleaved in the input tensor).
    num_samples : int
        Samples per channel in one input window.
    settings : dict
        birdsong's JSON settings (feature config etc.), ``{}`` if absent.
    """

    name: str
    version: str
    labels: tuple[str, ...]
    sample_rate: int
    channels: int
    num_samples: int
    settings: dict = field(default_factory=dict, hash=False)


# --------------------------------------------------------------------------- reading
class _Corrupt(Exception):
    """A flatbuffer offset points outside the data."""


def _get(buf: bytes, fmt: str, off: int) -> Any:
    if off < 0 or off + struct.calcsize(fmt) > len(buf):
        raise _Corrupt(f"offset {off} outside {len(buf)} bytes")
    return struct.unpack_from(fmt, buf, off)[0]


class _Table:
    """Bounds-checked reader of one flatbuffer table (field ``i`` is vtable slot ``4 + 2i``)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vt = pos - _get(buf, "<i", pos)
        self.vt_len = _get(buf, "<H", self.vt)

    def _off(self, fid: int) -> int:
        slot = 4 + 2 * fid
        return _get(self.buf, "<H", self.vt + slot) if slot + 2 <= self.vt_len else 0

    def _ref(self, fid: int) -> int | None:
        off = self._off(fid)
        return self.pos + off + _get(self.buf, "<I", self.pos + off) if off else None

    def _vector(self, fid: int, size: int) -> tuple[int, int]:
        start = self._ref(fid)
        n = 0 if start is None else _get(self.buf, "<I", start)
        if n and start + 4 + n * size > len(self.buf):
            raise _Corrupt(f"vector of {n} items overruns the data")
        return (start or 0) + 4, n

    def scalar(self, fid: int, fmt: str) -> int:
        off = self._off(fid)
        return _get(self.buf, fmt, self.pos + off) if off else 0

    def table(self, fid: int) -> _Table | None:
        pos = self._ref(fid)
        return None if pos is None else _Table(self.buf, pos)

    def bytes(self, fid: int) -> bytes | None:
        if self._ref(fid) is None:
            return None
        start, n = self._vector(fid, 1)
        return bytes(self.buf[start : start + n])

    def string(self, fid: int) -> str | None:
        raw = self.bytes(fid)
        return None if raw is None else raw.decode("utf-8")

    def ints(self, fid: int) -> list[int]:
        start, n = self._vector(fid, 4)
        return [_get(self.buf, "<i", start + 4 * i) for i in range(n)]

    def tables(self, fid: int) -> list[_Table]:
        start, n = self._vector(fid, 4)
        return [
            _Table(self.buf, p + _get(self.buf, "<I", p)) for p in range(start, start + 4 * n, 4)
        ]


def _load(model: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(model, bytes | bytearray | memoryview):
        return bytes(model), "model bytes"
    path = os.fspath(model)
    with open(path, "rb") as f:  # FileNotFoundError propagates as is
        return f.read(), f"model file {path!r}"


def _parse(buf: bytes, where: str) -> dict[str, Any]:
    """Parse what birdsong needs from a TFLite model; raise ModelError if it is not one."""
    if len(buf) < 8:
        raise ModelError(f"{where} is not a TFLite model: only {len(buf)} bytes")
    if buf[4:8] != _TFLITE_ID:
        hint = " (it is a zip archive)" if buf[:2] == b"PK" else ""
        raise ModelError(f"{where} is not a TFLite model: no 'TFL3' identifier{hint}")
    try:
        root = _Table(buf, _get(buf, "<I", 0))
        subgraphs = root.tables(2)
        if not subgraphs:
            raise _Corrupt("no subgraph")
        graph = subgraphs[0]
        tensors = graph.tables(0)
        inputs, outputs = graph.ints(1), graph.ints(2)
        shapes = [[tensors[i].ints(0) for i in ids] for ids in (inputs, outputs)]
        out: dict[str, Any] = {"subgraphs": len(subgraphs), "inputs": shapes[0]}
        out["outputs"], out["buffers"] = shapes[1], root.tables(4)
        out["metadata"] = None
        for entry in root.tables(6):
            if entry.string(0) == METADATA_NAME:
                buffer = out["buffers"][entry.scalar(1, "<I")]
                data, offset = buffer.bytes(0), buffer.scalar(1, "<Q")
                if not data and offset > 1:  # buffer stored outside the flatbuffer
                    data = buf[offset : offset + buffer.scalar(2, "<Q")]
                out["metadata"] = _parse_metadata(data or b"")
        return out
    except (_Corrupt, IndexError, UnicodeDecodeError, struct.error) as exc:
        raise ModelError(f"{where} is truncated or corrupt: {exc}") from exc


def _parse_metadata(data: bytes) -> dict[str, Any]:
    if data[4:8] != _METADATA_ID:
        raise _Corrupt(f"{METADATA_NAME} buffer lacks the 'M001' identifier")
    root = _Table(data, _get(data, "<I", 0))
    out: dict[str, Any] = {"name": root.string(0), "version": root.string(2)}
    graphs = root.tables(3)
    graph = graphs[0] if graphs else None
    inputs = graph.tables(2) if graph else []
    content = inputs[0].table(3) if inputs else None
    if content is not None and content.scalar(0, "<B") == _AUDIO_PROPERTIES:
        props = content.table(1)
        if props is not None:
            out["sample_rate"], out["channels"] = props.scalar(0, "<I"), props.scalar(1, "<I")
    outputs = graph.tables(3) if graph else []
    for item in outputs[0].tables(6) if outputs else []:
        if item.scalar(2, "<b") == _TENSOR_AXIS_LABELS and "labels_file" not in out:
            out["labels_file"] = item.string(0)
    for item in graph.tables(9) if graph else []:
        if item.string(0) == CUSTOM_METADATA_NAME:
            try:
                doc = json.loads((item.bytes(1) or b"").decode("utf-8"))
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise _Corrupt(
                    f"custom metadata {CUSTOM_METADATA_NAME!r} is not usable "
                    f"JSON ({type(exc).__name__})"
                ) from exc
            out["birdsong"] = doc
    return out


#: The most bytes read from one file inside a model's zip (labels.txt, birdsong.json):
#: a model is untrusted input, and a tiny compressed member can inflate to gigabytes.
MAX_MEMBER_BYTES = 1 << 20


def _zip_member(buf: bytes, name: str, where: str, *, cap: int = MAX_MEMBER_BYTES) -> bytes | None:
    """One file of the zip appended to the model, read with at most ``cap`` bytes;
    ``None`` when there is no zip, no such member, or a damaged one."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(buf))
    except Exception:  # no zip, or one too damaged to list: no usable files
        return None
    with zf:
        try:
            info = zf.getinfo(name)
        except KeyError:
            return None
        if info.file_size > cap:
            raise ModelError(
                f"{where}: its associated file {name!r} claims "
                f"{info.file_size} bytes; at most {cap} are read"
            )
        try:
            with zf.open(info) as fh:
                data = fh.read(cap + 1)
        except Exception:  # damaged, encrypted, an unknown compression: unusable
            return None
    if len(data) > cap:
        raise ModelError(
            f"{where}: its associated file {name!r} is larger than {cap} "
            "bytes (a zip bomb?); it is not read"
        )
    return data


def _zip_members(buf: bytes, where: str) -> dict[str, bytes]:
    """Every file of the zip appended to the model (each capped), ``{}`` when none."""
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            names = zf.namelist()
    except Exception:  # no zip, or a damaged one: either way there are no usable files
        return {}
    members = {name: _zip_member(buf, name, where) for name in names}
    return {name: data for name, data in members.items() if data is not None}


def _check_read_labels(labels: Sequence[str], where: str, source: str) -> tuple[str, ...]:
    """Labels read from a model: non-empty, unique (else ModelError naming file and source)."""
    empty = [i + 1 for i, x in enumerate(labels) if not x.strip()]
    if empty:
        raise ModelError(
            f"{where}: {source} has empty labels (at position(s) {', '.join(map(str, empty[:10]))})"
        )
    dupes = sorted(x for x, n in Counter(labels).items() if n > 1)
    if dupes:
        raise ModelError(
            f"{where}: {source} has duplicate labels {dupes[:10]!r}; each score needs its own label"
        )
    return tuple(labels)


def _labels(buf: bytes, meta: dict[str, Any] | None, where: str) -> tuple[str, ...] | None:
    if not meta:
        return None
    name = meta.get("labels_file")
    text = _zip_member(buf, name, where) if name else None
    if text is not None:
        lines = [line.rstrip("\r") for line in text.decode("utf-8", "replace").split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
        return _check_read_labels(lines, where, f"its {name!r}") if lines else None
    labels = meta.get("birdsong", {}).get("labels")
    if isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels):
        return _check_read_labels(labels, where, "its birdsong metadata 'labels'")
    return None


# ------------------------------------------------------------ the birdsong JSON, checked
# A checker returns None when a value is usable, else the requirement it fails
# ("a string"). A dict is a nested JSON object whose known keys follow that dict; keys
# not listed are kept unchecked (newer birdsong versions may add some).
Checker = Callable[[Any], "str | None"]


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a JSON object"


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "a positive integer"


def _text_list(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    return None if ok else "a list of strings"


def number_in(low: float, high: float) -> Checker:
    """A checker for a finite number in ``[low, high]``."""

    def check(value: Any) -> str | None:
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and low <= value <= high
        )
        return None if ok else f"a number in [{low:g}, {high:g}]"

    return check


#: What birdsong reads from ``settings`` (extend it when a new setting is read).
SETTINGS_SCHEMA: dict[str, Any] = {
    "features": _object,  # every field is then checked by FeatureConfig (Classifier)
    "train": {"min_activity": number_in(0.0, 1.0)},  # birdsong 0.1 models
    "windows": _object,  # then checked by WindowRules (Classifier)
    "training": _object,
    "output": _text,
    "thresholds": _object,  # then checked by Classifier: species -> number in [0, 1]
    "quantization": _text,
    "int8_recipe": _text,
    "agreement_with_float32": _object,
    "birdsong_version": _text,
}

#: The birdsong JSON document (custom metadata ``"birdsong"``).
DOCUMENT_SCHEMA: dict[str, Any] = {
    "name": _text,
    "version": _text,
    "labels": _text_list,
    "sample_rate": _positive_int,
    "channels": _positive_int,
    "num_samples": _positive_int,
    "settings": SETTINGS_SCHEMA,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_document(doc: Any, schema: Mapping[str, Any], where: str, *, prefix: str = "") -> None:
    """Raise ModelError naming ``where`` and the field (``settings.train.min_activity``)
    for the first value of ``doc`` that ``schema`` rejects."""
    for key, rule in schema.items():
        if not isinstance(doc, dict) or key not in doc:
            continue
        value, field_name = doc[key], f"{prefix}{key}"
        requirement = _object(value) if isinstance(rule, Mapping) else rule(value)
        if requirement is not None:
            raise ModelError(
                f"{where}: the {field_name!r} field of its birdsong metadata "
                f"must be {requirement}. Got {printable(_shown(value))} instead."
            )
        if isinstance(rule, Mapping):
            check_document(value, rule, where, prefix=f"{field_name}.")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_metadata(model: str | os.PathLike | bytes) -> ModelInfo:
    """Read labels, audio format and birdsong settings from a ``.tflite``.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        Path of the model file, or its contents.

    Returns
    -------
    ModelInfo
        Everything needed to run the classifier. Audio format comes from the
        input tensor's ``AudioProperties`` (falling back to birdsong's JSON),
        ``num_samples`` from the input tensor shape, labels from the
        ``TENSOR_AXIS_LABELS`` file (falling back to birdsong's JSON).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ModelError
        If the data is not a TFLite model, is corrupt, or lacks any of labels,
        sample rate, channels or window length (all missing ones are listed).
    """
    buf, where = _load(model)
    parsed = _parse(buf, where)
    meta = parsed["metadata"] or {}
    doc = meta.get("birdsong", {})
    if not isinstance(doc, dict):
        raise ModelError(
            f"{where}: its birdsong metadata must be a JSON object. Got "
            f"{type(doc).__name__} instead."
        )
    check_document(doc, DOCUMENT_SCHEMA, where)
    sample_rate = meta.get("sample_rate") or _count(doc.get("sample_rate"))
    channels = meta.get("channels") or _count(doc.get("channels"))
    shape = parsed["inputs"][0] if parsed["inputs"] else []
    num_samples = shape[-1] // channels if shape and channels and shape[-1] > 0 else None
    num_samples = num_samples or _count(doc.get("num_samples"))
    labels = _labels(buf, meta, where)
    values = {"labels": labels, "sample_rate": sample_rate}
    values |= {"channels": channels, "num_samples": num_samples}
    missing = [key for key, value in values.items() if not value]
    if missing:
        what = "has no TFLite Model Metadata" if not meta else "has incomplete model metadata"
        raise ModelError(
            f"{where} {what}: missing {', '.join(missing)}. Export it with birdsong "
            "(birdsong.metadata.add_metadata) or pass the labels and audio settings explicitly "
            "(e.g. labels=...)."
        )
    settings = doc.get("settings")
    return ModelInfo(
        name=meta.get("name") or str(doc.get("name") or ""),
        version=meta.get("version") or str(doc.get("version") or ""),
        labels=labels,
        sample_rate=int(sample_rate),
        channels=int(channels),
        num_samples=int(num_samples),
        settings=dict(settings or {}),
    )


def read_labels(model: str | os.PathLike | bytes) -> tuple[str, ...] | None:
    """Return the labels stored in a ``.tflite`` (path or bytes), ``None`` when it has none.

    Raises :class:`FileNotFoundError` for a missing path and :class:`ModelError`
    when the data is not a readable TFLite model.
    """
    buf, where = _load(model)
    meta = _parse(buf, where)["metadata"]
    if meta is not None and not isinstance(meta.get("birdsong", {}), dict):
        meta = {**meta, "birdsong": {}}
    return _labels(buf, meta, where)


def has_metadata(model: str | os.PathLike | bytes) -> bool:
    """Whether ``model`` is a TFLite model carrying readable TFLite Model Metadata."""
    buf, where = _load(model)
    try:
        return _parse(buf, where)["metadata"] is not None
    except ModelError:
        return False


# --------------------------------------------------------------------------- writing
def _byte_vector(b: flatbuffers.Builder, data: bytes, align: int) -> int:
    b.StartVector(1, len(data), align)
    b.head -= len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _write(b: flatbuffers.Builder, node: Any) -> int:
    """Serialise ``node``: str -> string, bytes -> 16-aligned ``[ubyte]``, list -> vector of
    tables, dict ``{field id: value}`` -> table with scalars given as ``(kind, value)``."""
    if isinstance(node, str):
        return b.CreateString(node)
    if isinstance(node, bytes):
        return _byte_vector(b, node, 16)
    if isinstance(node, list):
        items = [_write(b, item) for item in node]
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()
    refs = {
        k: _write(b, v) for k, v in node.items() if v not in (None, "", ()) and type(v) is not tuple
    }
    b.StartObject(max(node, default=-1) + 1)
    for fid, value in node.items():
        if type(value) is tuple:
            getattr(b, f"Prepend{value[0]}Slot")(fid, value[1], 0)
        elif fid in refs:
            b.PrependUOffsetTRelativeSlot(fid, refs[fid], 0)
    return b.EndObject()


def _metadata_buffer(doc: dict[str, Any], description: str, author: str, doc_json: bytes) -> bytes:
    """The ``ModelMetadata`` flatbuffer (field ids of metadata_schema.fbs, union = 2 ids)."""

    def file(name: str, text: str, kind: int) -> dict:  # AssociatedFile
        return {0: name, 1: text, 2: ("Int8", kind)}

    def tensor(name: str, text: str, kind: int, props: dict, files: list | None = None) -> dict:
        return {0: name, 1: text, 3: {0: ("Uint8", kind), 1: props}, 6: files}  # TensorMetadata

    audio = {0: ("Uint32", doc["sample_rate"]), 1: ("Uint32", doc["channels"])}  # AudioProperties
    labels = file(LABELS_FILE, "Labels of the output scores.", _TENSOR_AXIS_LABELS)
    graph = {  # SubGraphMetadata
        0: doc["name"],
        2: [tensor("audio_clip", "Audio window, samples in [-1, 1].", _AUDIO_PROPERTIES, audio)],
        3: [tensor("probability", "Scores of the labels.", _FEATURE_PROPERTIES, {}, [labels])],
        9: [{0: CUSTOM_METADATA_NAME, 1: doc_json}],  # CustomMetadata
    }
    root = {0: doc["name"], 1: description, 2: doc["version"], 3: [graph], 4: author}
    root |= {6: [file(SETTINGS_FILE, "birdsong settings (JSON).", _UNKNOWN_FILE)]}
    root |= {7: MIN_PARSER_VERSION}
    b = flatbuffers.Builder(1024 + 2 * len(doc_json))
    b.Finish(_write(b, root), file_identifier=_METADATA_ID)
    return bytes(b.Output())


def _schema() -> Any:
    """The generated TFLite schema module (object API) of ai-edge-litert or TensorFlow."""
    for module in (
        "ai_edge_litert.schema_py_generated",
        "tensorflow.lite.python.schema_py_generated",
    ):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module)
    raise MissingDependencyError("writing model metadata needs 'ai-edge-litert' or 'tensorflow'")


class _AlignedBuffer:
    """Stand-in for ``BufferT`` whose ``Pack`` keeps the schema's 16-byte data alignment."""

    def __init__(self, schema: Any, data: Any) -> None:
        self.schema, self.data = schema, data

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - generated-code protocol
        data = None if self.data is None else _byte_vector(builder, bytes(self.data), 16)
        self.schema.BufferStart(builder)
        if data is not None:
            self.schema.BufferAddData(builder, data)
        return self.schema.BufferEnd(builder)


def _embed(model: bytes, metadata: bytes, where: str) -> bytes:
    schema = _schema()
    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    tree.buffers, tree.metadata = tree.buffers or [], tree.metadata or []
    if any(buf.offset > 1 for buf in tree.buffers):
        raise ModelError(f"{where} stores tensor data outside the flatbuffer (>2 GB models)")
    buffers = [_AlignedBuffer(schema, buf.data) for buf in tree.buffers]
    for entry in tree.metadata:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            buffers[entry.buffer] = _AlignedBuffer(schema, metadata)
            break
    else:
        buffers.append(_AlignedBuffer(schema, metadata))
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(buffers) - 1
        tree.metadata.append(entry)
    tree.buffers = buffers
    builder = flatbuffers.Builder(len(model) + len(metadata) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=_TFLITE_ID)
    return bytes(builder.Output())


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise InvalidParameterError(f"labels must be a non-empty sequence of str, got {labels!r}")
    bad = [x for x in labels if not isinstance(x, str) or not x.strip() or {"\n", "\r"} & set(x)]
    if bad:
        raise InvalidParameterError(f"labels must be non-empty one-line strings, got {bad!r}")
    dupes = sorted(x for x, n in Counter(labels).items() if n > 1)
    if dupes:
        raise InvalidParameterError(f"labels must be unique, got duplicates {dupes!r}")
    return list(labels)


def add_metadata(
    model: bytes,
    *,
    labels: Sequence[str],
    sample_rate: int,
    num_samples: int,
    channels: int = 1,
    name: str = "birdsong classifier",
    version: str = "",
    description: str = "",
    author: str = "birdsong",
    settings: Mapping[str, Any] | None = None,
) -> bytes:
    """Return ``model`` with TFLite Model Metadata and associated files added.

    The result loads unmodified in MediaPipe Tasks' ``AudioClassifier`` and in
    birdsong (:func:`read_metadata`). Existing ``TFLITE_METADATA`` is replaced;
    other zip members already appended to ``model`` are kept.

    Parameters
    ----------
    model : bytes
        A TFLite flatbuffer with one subgraph, one float input of shape
        ``[num_samples * channels]`` or ``[1, num_samples * channels]`` and one
        score output of ``len(labels)`` classes.
    labels : sequence of str
        Unique one-line class labels, in score order.
    sample_rate : int
        Sample rate in Hz of the input audio.
    num_samples : int
        Samples per channel in one input window.
    channels : int, default 1
        Interleaved audio channels.
    name, version, description, author : str
        ``ModelMetadata`` texts; ``version`` is the model/birdsong version.
    settings : mapping, optional
        JSON-serialisable birdsong settings stored with the model.

    Returns
    -------
    bytes
        The new ``.tflite`` contents (a flatbuffer followed by a zip archive).

    Raises
    ------
    InvalidParameterError
        If an argument is unusable or disagrees with the model's tensor shapes.
    ModelError
        If ``model`` is not a TFLite model of the expected layout.
    """
    labels = _check_labels(labels)
    sample_rate, channels = _positive("sample_rate", sample_rate), _positive("channels", channels)
    num_samples = _positive("num_samples", num_samples)
    texts = {"name": name, "version": version, "description": description, "author": author}
    for key, text in texts.items():
        if not isinstance(text, str):
            raise InvalidParameterError(f"{key} must be a str, got {text!r}")
    if settings is not None and not isinstance(settings, Mapping):
        raise InvalidParameterError(f"settings must be a mapping, got {settings!r}")
    buf = bytes(model)
    parsed = _parse(buf, "model")
    if parsed["subgraphs"] != 1 or len(parsed["inputs"]) != 1 or len(parsed["outputs"]) != 1:
        raise ModelError(
            "model must have exactly one subgraph with one input and one output (audio "
            f"classifier), got {parsed['subgraphs']} subgraph(s), {len(parsed['inputs'])} "
            f"input(s), {len(parsed['outputs'])} output(s)"
        )
    (in_shape,), (out_shape,) = parsed["inputs"], parsed["outputs"]
    if len(in_shape) > 2 or not in_shape or in_shape[-1] != num_samples * channels:
        raise InvalidParameterError(
            f"num_samples={num_samples} x channels={channels} does not fit the model's input "
            f"shape {in_shape}; expected [{num_samples * channels}] or [1, {num_samples * channels}]"
        )
    if not out_shape or out_shape[-1] != len(labels):
        raise InvalidParameterError(
            f"labels has {len(labels)} entries but the model's output shape is {out_shape}"
        )
    doc = {"format": "birdsong.metadata", "format_version": FORMAT_VERSION, "name": name}
    doc |= {"version": version, "labels": labels, "sample_rate": sample_rate}
    doc |= {"channels": channels, "num_samples": num_samples, "settings": dict(settings or {})}
    try:
        doc_json = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"settings must be JSON-serialisable: {exc}") from exc
    metadata = _metadata_buffer(doc, description, author, doc_json)
    members = _zip_members(buf, "model")
    members |= {LABELS_FILE: "".join(x + "\n" for x in labels).encode(), SETTINGS_FILE: doc_json}
    out = io.BytesIO(_embed(buf, metadata, "model"))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as zf:  # appended after the flatbuffer, absolute offsets
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)  # MediaPipe needs stored
    return out.getvalue()
