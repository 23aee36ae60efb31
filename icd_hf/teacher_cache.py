"""The frozen teacher's outputs cached per training view: a sweep pays for the teacher's forward pass once.

A fast-path view is a pure function of ``(seed, epoch, sample index)`` (``icd_hf.fast.view_crop_flip_params``), so
the teacher's output on it is too: the first run that uses a cache computes each ``(epoch, index)`` it trains on
and writes it, and every later run with the same teacher, data, views, seed and precision reads it instead of
running the teacher. Teacher and student still see the same view (Beyer et al., CVPR 2022), and a cached run is
the same run as a live one: the same numbers come back.

What is cached is what the losses that do not read feature maps use: each teacher's ``logits`` and pooled feature
(``pooler_output``) of ``DistillationModelOutput``, for one teacher or each of an ensemble. Which methods can use
the cache is read from the loss classes (``needs_hidden_states``, ``needs_spatial_maps``, ``init_epochs``), never
from a list: ``teacher_cache_refusal``.

Layout under the cache folder (the ``teacher_cache`` setting)::

    <folder>/<key>/meta.json                          the fingerprint, each tensor's shape and dtype
    <folder>/<key>/epoch_00003/rank0of1.n50000.index.npy      (P,) int64: the sample index at each position, -1: none
    <folder>/<key>/epoch_00003/rank0of1.n50000.t0.logits.npy  (P, classes), in the teacher's compute precision
    <folder>/<key>/epoch_00003/rank0of1.n50000.t0.pooled.npy  (P, features)

``<key>`` is a digest of the fingerprint (``teacher_cache_fingerprint``: the teacher's weights and structure, the
training images, the view generator, the seed, the precision and the device type), so a change of any of them is
a new cache, never a silent reuse. Each process writes its own shard (its rank and the number of processes in the
name, ``P`` its samples per epoch, rows in its batch order); a reader merges every shard of an epoch by sample
index, so a run with another number of processes reuses them too. The files are ``.npy`` (bf16 as int16 bits)
that ``numpy.load(mmap_mode="r")`` maps without reading them.

A run reads an epoch's rows into one device table when the epoch starts; which of its batches are covered is one
host read per epoch, so a cached step makes no host synchronisation. A building step writes into that table and
the rows reach the files when the epoch ends, at each checkpoint and at the end of training (``flush``): a run
that dies loses at most the rows since its last checkpoint, which its resume computes again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import TrainerCallback

from .fast import VIEW_GENERATOR
from .losses import get_loss_class, list_losses
from .losses.ensemble import EnsembleOutput
from .models.modeling_outputs import DistillationModelOutput

if TYPE_CHECKING:
    from .losses.presets import MethodSpec

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
META_NAME = "meta.json"
# The .npy dtype each torch dtype is stored as: numpy has no bfloat16, so its 16 bits are kept as int16.
_STORAGE = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16, torch.float64: np.float64}
_DTYPE_NAMES = {dtype: str(dtype).removeprefix("torch.") for dtype in _STORAGE}
_FIELDS = ("logits", "pooled")

TeacherValues = list[tuple[torch.Tensor, torch.Tensor]]  # (logits, pooled) per teacher


# ---------------------------------------------------------------------------------------------- which methods
def _reads_only_cached_outputs(name: str) -> bool:
    cls = get_loss_class(name)
    # An initialisation stage (AB, FT, FSP) runs the teacher for its feature maps too.
    return not (cls.needs_hidden_states or cls.needs_spatial_maps or cls.init_epochs > 0)


def cacheable_losses() -> list[str]:
    """The registered losses that read only a teacher's logits and pooled feature, i.e. what a cache holds."""
    return [name for name in list_losses() if _reads_only_cached_outputs(name)]


def teacher_cache_refusal(method: MethodSpec) -> str | None:
    """Why ``method`` cannot use a teacher cache, in one sentence naming the fix; ``None`` when it can."""
    if not method.needs_teacher:
        return (f"method {method.name!r} distils from no teacher, so there are no teacher outputs to cache: drop "
                f"teacher_cache")
    reading = [t.name for t in method.terms if not _reads_only_cached_outputs(t.name)]
    if reading:
        return (f"method {method.name!r} reads the teacher's feature maps ({', '.join(reading)}), which a teacher "
                f"cache does not hold (it keeps each view's logits and pooled feature only): drop teacher_cache, or "
                f"use losses that read only those ({', '.join(cacheable_losses())})")
    return None


# ---------------------------------------------------------------------------------------------- fingerprint
def _tensor_bytes(t: torch.Tensor) -> memoryview:
    # Contiguous in NCHW whatever the memory format (channels_last copies give the same bytes); any dtype as bytes.
    return memoryview(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())


def module_digest(module: nn.Module) -> str:
    """sha256 of a module's structure (its ``repr``) and every parameter and buffer (names, dtypes, shapes, bytes),
    non-persistent buffers included (an input adapter's normalisation)."""
    h = hashlib.sha256(repr(module).encode())
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def teacher_cache_fingerprint(
    teacher: nn.Module,
    images: torch.Tensor | np.ndarray,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    padding: int,
    flip: bool,
    seed: int,
    precision: str,
    device: torch.device | str,
) -> dict[str, Any]:
    """What decides a teacher's output on every training view: the cache's key.

    Args:
        teacher: the module the ``Distiller`` runs as its teacher (one model, or a ``TeacherEnsemble``).
        images: the uint8 training split as given to the fast path (its layout is part of the digest).
        mean, std, padding, flip: the normalisation and augmentation of the fast path's views.
        seed: the views' seed (``training.seed``).
        precision: the teacher's numeric mode (``"fp32"``, ``"bf16"``...): outputs are stored in it.
        device: where the teacher runs; its type is part of the key (CPU and CUDA kernels round differently).
    """
    members = list(getattr(teacher, "members", [teacher]))
    pixels = torch.as_tensor(images)
    h = hashlib.sha256(f"{pixels.dtype} {tuple(pixels.shape)}".encode())
    h.update(_tensor_bytes(pixels))
    return {
        "format": CACHE_FORMAT,
        "teachers": [module_digest(m) for m in members],
        "images": h.hexdigest(),
        "normalisation": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "views": {"generator": VIEW_GENERATOR, "padding": int(padding), "flip": bool(flip)},
        "seed": int(seed),
        "precision": precision,
        "device": torch.device(device).type,
    }


def fingerprint_key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:20]


def prepare_cache_root(path: str | os.PathLike[str]) -> Path:
    """Create the cache folder and check it can be written, before anything heavy loads.

    Raises:
        ValueError: a path that is a file or cannot be created or written, named with the fix.
    """
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"teacher_cache {str(path)!r} is a file, not a folder: point it at a folder (it is created).")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"teacher_cache {str(path)!r} cannot be written ({err.strerror or err}): choose a "
                         f"writable folder.") from None
    return root


# ---------------------------------------------------------------------------------------------- outputs
def split_teacher_output(out: DistillationModelOutput | EnsembleOutput) -> TeacherValues:
    """``[(logits, pooled)]`` of one teacher's output, or of each teacher of an ensemble, in order."""
    members = out.members if isinstance(out, EnsembleOutput) else [out]
    return [(m.logits, m.pooler_output) for m in members]


def join_teacher_output(values: TeacherValues, teacher: nn.Module) -> DistillationModelOutput | EnsembleOutput:
    """The teacher output the losses read, from cached values: logits and pooled feature, no hidden states."""
    members = [DistillationModelOutput(logits=logits, pooler_output=pooled) for logits, pooled in values]
    if isinstance(getattr(teacher, "members", None), nn.ModuleList):  # a TeacherEnsemble
        return EnsembleOutput(members, list(teacher.names), teacher.weighting)
    return members[0]


def cache_use(summary: dict[str, Any] | None) -> str:
    """How a run got its teacher outputs, from its record's ``teacher_cache``: ``live``, ``cache read``,
    ``cache built`` or ``cache read+built``."""
    if not summary:
        return "live"
    read, computed = summary.get("batches_read", 0), summary.get("batches_computed", 0)
    if read and computed:
        return "cache read+built"
    return "cache read" if read else "cache built"


# ---------------------------------------------------------------------------------------------- the cache
@dataclass(frozen=True)
class CachedTeacher:
    """The shape of one teacher's cached outputs."""

    num_classes: int
    pooled_dim: int


def _open_npy(path: Path, shape: tuple[int, ...], dtype: Any, fill: int | None = None) -> np.memmap:
    """A writable memory map of ``path``; created (atomically, filled with ``fill``) when it is missing."""
    if path.is_file():
        array = np.load(path, mmap_mode="r+")
        if array.shape == shape and array.dtype == np.dtype(dtype):
            return array
        del array  # written by an incompatible version of this format: rebuilt
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    if fill is not None:
        array[:] = fill
    array.flush()
    os.replace(tmp, path)
    return array


class TeacherOutputCache:
    """The teacher's outputs of every ``(epoch, sample index)`` a run trains on, read or written under ``root``.

    The ``Distiller`` asks ``lookup`` before running its teacher and hands the outputs it computed to ``store``;
    the ``DeviceDataLoader`` calls ``begin_epoch`` with this process's sample order before each epoch's first batch.
    ``flush`` writes the stored rows (at each epoch's end, checkpoint and the end of training).

    Args:
        root: the cache folder; this cache lives in ``root/<key of fingerprint>``.
        fingerprint: ``teacher_cache_fingerprint(...)``.
        num_images: samples in the training split.
        teachers: the output shape of each teacher.
        device: where the run's tensors live.
        rank, world_size: this process, and how many train together (each writes its own shard).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: dict[str, Any],
        *,
        num_images: int,
        teachers: Sequence[CachedTeacher],
        device: torch.device | str,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.fingerprint = fingerprint
        self.key = fingerprint_key(fingerprint)
        self.directory = Path(root).expanduser() / self.key
        self.num_images = int(num_images)
        self.teachers = list(teachers)
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta = self._read_meta()
        self.epochs_at_start = len(self.cached_epochs())
        self.batches_read = 0
        self.batches_computed = 0
        self._epoch: int | None = None
        self._tables: list[list[torch.Tensor]] | None = None  # per teacher [logits (N, C), pooled (N, D)]
        self._filled = torch.zeros(self.num_images, dtype=torch.bool, device=self.device)
        self._order: torch.Tensor | None = None
        self._covered = np.zeros(0, dtype=bool)  # per position of the order: its row is in the table
        self._new = np.zeros(0, dtype=bool)  # per position: stored since the last flush
        self._shard: dict[str, np.memmap] | None = None

    # ---------------------------------------------------------------- description
    def cached_epochs(self) -> list[int]:
        """The epochs with at least one shard in the cache."""
        return sorted(int(p.name.split("_")[1]) for p in self.directory.glob("epoch_*") if any(p.glob("*.index.npy")))

    @property
    def dtypes(self) -> list[str] | None:
        """The stored dtype of each tensor (logits, pooled per teacher), once the first rows were written."""
        return [d for t in self.meta["teachers"] for d in (t["logits_dtype"], t["pooled_dtype"])] if self.meta else None

    @property
    def bytes_per_epoch(self) -> int | None:
        """Bytes one full epoch takes on disk (every sample's outputs), once the stored dtypes are known."""
        if not self.meta:
            return None
        return sum(self.num_images * (t["num_classes"] * np.dtype(_np_dtype(t["logits_dtype"])).itemsize
                                      + t["pooled_dim"] * np.dtype(_np_dtype(t["pooled_dtype"])).itemsize)
                   for t in self.meta["teachers"])

    def describe(self) -> str:
        size = self.bytes_per_epoch
        dtypes = "/".join(sorted(set(self.dtypes or [])))
        stored = (f"{size / 2**20:.1f} MiB per epoch of {self.num_images:,} views in {dtypes}" if size
                  else "its size per epoch is known once its first rows are written")
        return (f"teacher cache {self.directory}: {self.epochs_at_start} epoch(s) cached when the run started, "
                f"{stored}")

    def summary(self) -> dict[str, Any]:
        """What the run record keeps (``RunResults.teacher_cache``): where, how big, and what this run did."""
        return {
            "dir": str(self.directory),
            "precision": self.fingerprint["precision"],
            "dtypes": self.dtypes,
            "bytes_per_epoch": self.bytes_per_epoch,
            "epochs_cached_at_start": self.epochs_at_start,
            "batches_read": self.batches_read,
            "batches_computed": self.batches_computed,
        }

    # ---------------------------------------------------------------- meta
    def _read_meta(self) -> dict[str, Any] | None:
        path = self.directory / META_NAME
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        if meta.get("fingerprint") != self.fingerprint or meta.get("num_images") != self.num_images:
            raise ValueError(f"{path} describes another cache than its folder's name says: delete {self.directory} "
                             f"(it is rebuilt on the next run).")
        return meta

    def _write_meta(self, values: TeacherValues) -> None:
        meta = {
            "format": CACHE_FORMAT,
            "fingerprint": self.fingerprint,
            "num_images": self.num_images,
            "teachers": [{"num_classes": logits.shape[1], "pooled_dim": pooled.shape[1],
                          "logits_dtype": _DTYPE_NAMES[logits.dtype], "pooled_dtype": _DTYPE_NAMES[pooled.dtype]}
                         for logits, pooled in values],
        }
        path = self.directory / META_NAME
        tmp = path.with_name(f".{META_NAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, path)  # processes that race here write the same content
        self.meta = meta

    # ---------------------------------------------------------------- epochs
    def _epoch_dir(self, epoch: int) -> Path:
        return self.directory / f"epoch_{epoch:05d}"

    def _allocate(self) -> None:
        assert self.meta is not None
        self._tables = [
            [torch.empty(self.num_images, t["num_classes"], dtype=_torch_dtype(t["logits_dtype"]), device=self.device),
             torch.empty(self.num_images, t["pooled_dim"], dtype=_torch_dtype(t["pooled_dtype"]), device=self.device)]
            for t in self.meta["teachers"]
        ]

    def _load(self, epoch: int) -> None:
        """Every shard of ``epoch`` (any rank, any number of processes) into the device tables."""
        self._epoch, self._shard = epoch, None
        self._filled.zero_()
        if self.meta is None:
            self.meta = self._read_meta()  # another process of this run may have written the first rows
        if self.meta is None:
            return
        if self._tables is None:
            self._allocate()  # then reused: a row is read only where _filled says this epoch wrote it
        assert self._tables is not None
        for index_file in sorted(self._epoch_dir(epoch).glob("*.index.npy")):
            index = np.load(index_file, mmap_mode="r")
            valid = np.flatnonzero(index >= 0)
            if not valid.size:
                continue
            rows = torch.from_numpy(np.asarray(index[valid])).to(self.device)
            stem = index_file.name.removesuffix(".index.npy")
            for k, tables in enumerate(self._tables):
                for name, table in zip(_FIELDS, tables, strict=True):
                    stored = np.load(index_file.with_name(f"{stem}.t{k}.{name}.npy"), mmap_mode="r")
                    table[rows] = _from_storage(np.asarray(stored[valid]), table.dtype).to(self.device)
            self._filled[rows] = True

    def begin_epoch(self, epoch: int, order: torch.Tensor) -> None:
        """This process is about to train on ``order`` (its samples of ``epoch``, in batch order): load the epoch
        and note which positions are cached (one host read per epoch)."""
        self.flush()
        if epoch != self._epoch:
            self._load(epoch)
        self._order = order
        self._covered = self._filled[order].cpu().numpy()
        self._new = np.zeros(order.shape[0], dtype=bool)

    def lookup(self, epoch: int, start: int, index: torch.Tensor) -> TeacherValues | None:
        """The cached outputs of the batch at positions ``start...`` of ``epoch`` (sample ``index``), or ``None`` when
        one of them is not cached. No host synchronisation."""
        self._check_epoch(epoch)
        stop = start + index.shape[0]
        if self._tables is None or not self._covered[start:stop].all():
            return None
        self.batches_read += 1
        return [(logits[index], pooled[index]) for logits, pooled in self._tables]

    @torch.no_grad()
    def store(self, epoch: int, start: int, index: torch.Tensor, values: TeacherValues) -> None:
        """Keep the outputs the teacher computed for the batch at positions ``start...`` of ``epoch``."""
        self._check_epoch(epoch)
        if self.meta is None:
            self._write_meta(values)
            logger.info("%s", self.describe())
        if self._tables is None:
            self._allocate()
        assert self._tables is not None
        if len(values) != len(self._tables):
            raise ValueError(f"{len(values)} teacher outputs for a cache of {len(self._tables)} teachers.")
        for (logits, pooled), tables in zip(values, self._tables, strict=True):
            for value, table in ((logits, tables[0]), (pooled, tables[1])):
                if value.dtype != table.dtype or value.shape[1:] != table.shape[1:]:
                    raise ValueError(
                        f"The teacher gave {value.dtype} {tuple(value.shape[1:])} outputs where the cache holds "
                        f"{table.dtype} {tuple(table.shape[1:])}: {self.directory} was built in another precision; "
                        f"delete it.")
                table[index] = value
        self._filled[index] = True
        stop = start + index.shape[0]
        self._covered[start:stop] = True
        self._new[start:stop] = True
        self.batches_computed += 1

    def _check_epoch(self, epoch: int) -> None:
        if epoch != self._epoch or self._order is None:
            raise RuntimeError(f"The teacher cache was asked for epoch {epoch} before it began it: give the "
                               f"DeviceDataLoader on_epoch_start=cache.begin_epoch.")

    # ---------------------------------------------------------------- writing
    def _open_shard(self, positions: int) -> dict[str, np.memmap]:
        assert self.meta is not None and self._epoch is not None
        if self._shard is None:
            folder = self._epoch_dir(self._epoch)
            folder.mkdir(exist_ok=True)
            stem = f"rank{self.rank}of{self.world_size}.n{positions}"
            shard = {}
            for k, t in enumerate(self.meta["teachers"]):
                for name in _FIELDS:
                    width = t["num_classes"] if name == "logits" else t["pooled_dim"]
                    dtype = _np_dtype(t[f"{name}_dtype"])
                    shard[f"t{k}.{name}"] = _open_npy(folder / f"{stem}.t{k}.{name}.npy", (positions, width), dtype)
            # Created last: a reader trusts a row once its index is there.
            shard["index"] = _open_npy(folder / f"{stem}.index.npy", (positions,), np.int64, fill=-1)
            self._shard = shard
        return self._shard

    def flush(self) -> None:
        """Write the rows stored since the last flush into this process's shard of the current epoch (one copy
        from the device)."""
        if self._order is None or not self._new.any() or self._tables is None:
            return
        positions = np.flatnonzero(self._new)
        index = self._order[torch.from_numpy(positions).to(self._order.device)]
        shard = self._open_shard(self._order.shape[0])
        for k, (logits, pooled) in enumerate(self._tables):
            for name, table in zip(_FIELDS, (logits, pooled), strict=True):
                shard[f"t{k}.{name}"][positions] = _to_storage(table[index])
                shard[f"t{k}.{name}"].flush()
        # The values are flushed before their index marks them present, so a reader never takes an unwritten row
        # (short of the machine losing power between the two writes).
        shard["index"][positions] = index.cpu().numpy()
        shard["index"].flush()
        self._new[:] = False


def _np_dtype(name: str) -> Any:
    return _STORAGE[_torch_dtype(name)]


def _torch_dtype(name: str) -> torch.dtype:
    return {v: k for k, v in _DTYPE_NAMES.items()}[name]


def _to_storage(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()


def _from_storage(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t


class TeacherCacheFlush(TrainerCallback):
    """Write the cache's new rows whenever the Trainer saves a checkpoint and when training ends (every process:
    each writes its own shard)."""

    def __init__(self, cache: TeacherOutputCache) -> None:
        self.cache = cache

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
        self.cache.flush()

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self.cache.flush()
        logger.info("%s; this run read %d batch(es) from it and computed %d", self.cache.describe(),
                    self.cache.batches_read, self.cache.batches_computed)
