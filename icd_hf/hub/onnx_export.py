"""ONNX (fp32) and int8 copies of an exported student, verified and measured when they are written.

``export_for_hub(..., onnx=True, int8=True)`` (``icd-hf export RUN --out DIR --onnx --int8``) calls
``export_onnx_files`` once the PyTorch files are in the folder:

1. ``model.onnx``: the student's inference forward, logits only (``LogitsOnly``), exported by ``torch.onnx.export``
   (the ``torch.export`` based exporter, onnxscript's translations) at opset ``OPSET`` with a dynamic batch axis.
   The same code serves zoo, timm and ``transformers`` students: all three load from the folder with
   ``AutoModelForImageClassification`` and take ``pixel_values``.
2. Verification: onnxruntime on ``model.onnx`` against PyTorch on the same evaluation images; a max absolute logit
   difference above ``LOGIT_TOLERANCE`` fails the export (``OnnxExportError``).
3. ``model_int8.onnx`` (``int8=True``): onnxruntime's static quantization (QDQ, int8 weights per output channel and
   int8 activations), its activation ranges calibrated (min/max) on ``CALIBRATION_IMAGES`` training images drawn
   uniformly without replacement with ``CALIBRATION_SEED``, preprocessed as for evaluation (no augmentation). When
   static quantization cannot apply (no training images, or the quantizer or onnxruntime rejects the model) it falls
   back to dynamic quantization (int8 weights, activations quantized at run time) and the record and card say why.
4. Measurement: PyTorch, ``model.onnx`` and ``model_int8.onnx`` on the run's evaluation set (rebuilt from
   ``results.json``, each format on the very same preprocessed batches): top-1 / top-5, file size, and CPU latency
   at batch 1 and 64 (median of timed runs after warm-up, the thread count stated).

The record goes into the exported ``results.json`` under ``hub_export.onnx``; ``onnx_table_rows`` formats it for
the card (``card.py``) and the README (``recipes/render_export.py``). onnx, onnxruntime and onnxscript are an
optional extra (``pip install 'icd-hf[onnx]'``): this module imports them only inside its functions, and
``require_onnx`` names the missing ones in one line before anything is loaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..runs import RunResults, device_name

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
INT8_NAME = "model_int8.onnx"
PYTORCH_WEIGHTS = "model.safetensors"
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"
# The opset torch.onnx's exporter translates to natively (onnxscript's torchlib); onnxruntime runs it everywhere.
OPSET = 18
# Float32 graphs that compute the same function differ by rounding only (~1e-5 on logits of order 10).
LOGIT_TOLERANCE = 1e-3
VERIFY_IMAGES = 8
CALIBRATION_IMAGES = 300
CALIBRATION_SEED = 0
EVAL_BATCH_SIZE = 64
LATENCY_BATCH_SIZES = (1, 64)
# The conventions of export.measure_latency_report: median of 20 runs after 3 warm-up runs, one thread.
LATENCY_RUNS, LATENCY_WARMUP, LATENCY_THREADS = 20, 3, 1
# A top-1 drop (points) that the card and the README call out.
INT8_LOSS_TO_REPORT = 1.0
REQUIRED_MODULES = ("onnx", "onnxruntime", "onnxscript")
ONNX_SECTION_TEMPLATE = Path(__file__).resolve().parent / "templates" / "onnx_section.md"


class OnnxDependencyError(ImportError, ValueError):
    """onnx / onnxruntime / onnxscript are not installed. Also a ``ValueError``: to the command line it is bad input
    (a missing option of the install), reported as one line like the others."""


class OnnxExportError(ValueError):
    """The student cannot be exported to ONNX, or the exported graph does not compute what PyTorch computes."""


def require_onnx() -> None:
    """Fail in one line, naming what is missing and how to install it, when an ONNX export cannot run here."""
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise OnnxDependencyError(
            f"--onnx needs {', '.join(missing)}, not installed here: pip install 'icd-hf[onnx]' (or "
            f"pip install -r requirements.txt, which pins them)."
        )


def check_onnx_options(onnx: bool, int8: bool) -> None:
    """The option checks every entry point runs before loading anything: ``int8`` needs ``onnx``, and the
    packages."""
    if int8 and not onnx:
        raise ValueError("--int8 quantizes the ONNX export: add --onnx (the int8 model is written next to model.onnx).")
    if onnx:
        require_onnx()


class LogitsOnly(nn.Module):
    """The student's inference forward as the ONNX graph has it: ``pixel_values`` in, ``logits`` out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def _first_line(err: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, colour codes and runs of spaces removed, cut at ``limit``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    line = " ".join((text[0] if text else "").split())
    return f"{type(err).__name__}: {line[:limit]}{'…' if len(line) > limit else ''}".strip()


def _root_cause(err: BaseException) -> BaseException:
    """The innermost exception of the chain: the exporter wraps the reason (a data-dependent guard, an operator
    without a translation) in generic "step 1/3 failed" errors."""
    seen = {id(err)}
    while (inner := err.__cause__ or err.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        err = inner
    return err


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter: it prints its progress, and torch.export logs pages of tracing detail (warnings
    included) before a failure that this module reports in one line anyway."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def export_onnx(model: nn.Module, path: str | Path, image_size: int, *, opset: int = OPSET) -> dict[str, Any]:
    """Write ``model``'s logits-only forward to ``path`` (one file, dynamic batch axis); returns what was exported.

    Raises:
        OnnxExportError: the exporter cannot trace or translate the model (data-dependent control flow, an
            operator without an ONNX translation...), in one line naming the reason.
    """
    import onnx

    wrapper = LogitsOnly(model).eval()
    # A batch of 2: torch.export specialises dimensions of size 1, which would pin the batch axis.
    example = torch.randn(2, 3, image_size, image_size)
    path = Path(path)
    try:
        with torch.no_grad(), _quiet():
            torch.onnx.export(
                wrapper, (), str(path), kwargs={INPUT_NAME: example}, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes={INPUT_NAME: {0: "batch"}}, opset_version=opset,
                dynamo=True, external_data=False,
            )
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as err:  # noqa: BLE001 - whatever the exporter raises, the user gets one line
        path.unlink(missing_ok=True)
        raise OnnxExportError(
            f"{type(model).__name__} cannot be exported to ONNX ({_first_line(_root_cause(err))}); export without "
            f"--onnx, or make its forward traceable by torch.export (no data-dependent Python control flow)."
        ) from err
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return {
        "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "exporter": f"torch.onnx.export (dynamo), torch {torch.__version__.split('+')[0]}",
        "input": {"name": INPUT_NAME, "shape": dims},
        "output": OUTPUT_NAME,
    }


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session; ``threads`` sets its intra-op threads (``None``: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime warns about every unused initializer
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(session: Any, pixel_values: np.ndarray) -> np.ndarray:
    """The logits ``session`` gives for a float32 NCHW batch."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(pixel_values, dtype=np.float32)})[0]


def verify_onnx(wrapper: nn.Module, session: Any, pixel_values: torch.Tensor,
                tolerance: float = LOGIT_TOLERANCE) -> float:
    """Max absolute difference of the logits of onnxruntime and PyTorch on ``pixel_values``.

    Raises:
        OnnxExportError: above ``tolerance`` (or not a number): the ONNX graph is not the model.
    """
    with torch.no_grad():
        expected = wrapper(pixel_values).float().numpy()
    got = onnx_logits(session, pixel_values.numpy())
    if got.shape != expected.shape:
        raise OnnxExportError(f"model.onnx gives logits of shape {got.shape}, PyTorch {expected.shape}.")
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        raise OnnxExportError(
            f"model.onnx does not reproduce the PyTorch model: max abs logit difference {diff:.3g} on "
            f"{len(pixel_values)} evaluation images, above the tolerance {tolerance:g}. The export was not written."
        )
    return diff


# ---- data: the run's evaluation set and calibration images, as the exported student takes them


def _student_input(folder: Path, record: RunResults) -> Any:
    """The ``InputSpec`` the exported student takes (its ``preprocessor_config.json``), resolved with the data's."""
    import json

    from ..input_spec import spec_from_processor_config

    dataset = record.dataset
    processor = folder / "preprocessor_config.json"
    spec = spec_from_processor_config(json.loads(processor.read_text()), str(processor))
    return spec.resolved(record.image_size, dataset["mean"], dataset["std"])


def run_datasets(record: RunResults, data_dir: str | None = None) -> tuple[Any, Any, Any]:
    """The run's train and evaluation splits, rebuilt from its ``results.json`` as training built them (its
    dataset, split, size, normalisation and sample limits), without augmentation.

    Raises:
        FileNotFoundError: the data cannot be read here (one line naming ``--data_dir``).
        ValueError: what was rebuilt is not what the run evaluated on (another number of images or classes).
    """
    from ..data import build_datasets

    config, dataset = record.config, record.dataset
    name = config.get("dataset") or dataset.get("source") or record.dataset_name
    data_dir = data_dir or config.get("data_dir")
    eval_split = config.get("validation_split") or "test"
    # Training's size: the config's resize; else the stored size, or (images of varying size) the size it chose.
    image_size = config.get("image_size") or (None if dataset.get("native_image_size") else dataset.get("image_size"))
    try:
        train_ds, eval_ds, info = build_datasets(
            name, data_dir=data_dir, image_size=image_size,
            train_augment=False, max_train_samples=config.get("max_train_samples"),
            max_eval_samples=config.get("max_eval_samples"), eval_split=eval_split,
            mean=tuple(dataset["mean"]), std=tuple(dataset["std"]), image_column=config.get("image_column"),
            label_column=config.get("label_column"), validation_size=config.get("validation_size"),
        )
    except (OSError, ValueError, KeyError, ConnectionError) as err:
        raise FileNotFoundError(
            f"--onnx evaluates on the run's evaluation set, and {name!r} could not be loaded here "
            f"({_first_line(err)}): pass --data_dir with the copy of the data the run used."
        ) from err
    expected = (dataset.get("num_eval"), dataset.get("num_classes"))
    got = (info.num_eval, info.num_classes)
    if any(e is not None and e != g for e, g in zip(expected, got, strict=True)):
        raise ValueError(
            f"The evaluation set rebuilt from {name!r} has {got[0]} images of {got[1]} classes but the run evaluated "
            f"on {expected[0]} of {expected[1]}: pass --data_dir with the copy of the data the run used."
        )
    return train_ds, eval_ds, info


def _batches(dataset: Any, adapter: nn.Module, batch_size: int,
             indices: Sequence[int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(pixel_values as the student takes them, labels)`` batches of ``dataset`` (rows ``indices``, in order)."""
    from ..data import collate_batch

    rows = list(range(len(dataset))) if indices is None else list(indices)
    for start in range(0, len(rows), batch_size):
        batch = collate_batch([dataset[i] for i in rows[start:start + batch_size]])
        with torch.no_grad():
            yield adapter(batch["pixel_values"].float()).contiguous(), batch["labels"]


def calibration_indices(num_rows: int, count: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED) -> list[int]:
    """The training rows static quantization calibrates on: ``count`` drawn uniformly without replacement with
    ``seed`` (all rows when there are fewer), in row order."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.permutation(num_rows)[: min(count, num_rows)])


# ---- int8


def quantize_int8(onnx_path: Path, out_path: Path, calibration: list[np.ndarray] | None,
                  calibration_error: str | None = None) -> dict[str, Any]:
    """Write ``out_path``: static int8 quantization of ``onnx_path`` calibrated on the ``calibration`` batches,
    else (no batches, or static quantization fails) dynamic quantization; returns how it was quantized."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self, batches: list[np.ndarray]) -> None:
            self._items = iter([{INPUT_NAME: b} for b in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    reason = calibration_error
    with tempfile.TemporaryDirectory() as tmp:
        source = onnx_path
        prepared = Path(tmp) / "prepared.onnx"
        try:
            # Shape inference and graph fusions first (Conv+BN...), as onnxruntime recommends before quantizing.
            quant_pre_process(str(onnx_path), str(prepared))
            source = prepared
        except Exception as err:  # noqa: BLE001 - optional step: quantize the graph as exported
            logger.info("int8: quantizing model.onnx without pre-processing (%s).", _first_line(err))
        if calibration:
            try:
                quantize_static(
                    str(source), str(out_path), _Reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )
                onnx_session(out_path)  # onnxruntime must run what it wrote
                return {
                    "method": "static", "format": "QDQ", "weights": "int8, per output channel",
                    "activations": "int8, ranges calibrated (min/max)",
                    "calibration": {"images": sum(len(b) for b in calibration), "split": "train",
                                    "seed": CALIBRATION_SEED, "sampling": "uniform without replacement",
                                    "method": "MinMax"},
                    "fallback_reason": None,
                }
            except Exception as err:  # noqa: BLE001 - any failure of the static path falls back, and says why
                reason = f"static quantization failed ({_first_line(err)})"
                out_path.unlink(missing_ok=True)
        reason = reason or "no calibration images"
        logger.warning("int8: %s; writing dynamic quantization instead (activations quantized at run time).", reason)
        quantize_dynamic(str(source), str(out_path), weight_type=QuantType.QInt8)
        onnx_session(out_path)
    return {"method": "dynamic", "format": "QOperator", "weights": "int8",
            "activations": "quantized at run time", "calibration": None, "fallback_reason": reason}


# ---- measurement


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float | None]:
    top = np.argsort(-logits, axis=1)
    hits = top == labels[:, None]
    top1 = 100.0 * float(hits[:, 0].mean())
    top5 = 100.0 * float(hits[:, :5].any(axis=1).mean()) if logits.shape[1] >= 5 else None
    return top1, top5


def _median_ms(run_once: Callable[[], Any], runs: int, warmup: int) -> float:
    for _ in range(warmup):
        run_once()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_once()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def latency_ms(model_or_path: nn.Module | Path, image_size: int, batch_size: int, *, runs: int = LATENCY_RUNS,
               warmup: int = LATENCY_WARMUP, threads: int = LATENCY_THREADS) -> float:
    """Median milliseconds of one run of ``batch_size`` images after ``warmup`` runs, on ``threads`` CPU threads:
    onnxruntime for an ``.onnx`` path, PyTorch (no grad) for a module. One protocol for every format."""
    x = np.random.default_rng(0).standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32)
    if isinstance(model_or_path, nn.Module):
        module, tensor = model_or_path.eval(), torch.from_numpy(x)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                return _median_ms(lambda: module(tensor), runs, warmup)
        finally:
            torch.set_num_threads(previous)
    session = onnx_session(model_or_path, threads)
    return _median_ms(lambda: onnx_logits(session, x), runs, warmup)


def _file_size(path: Path) -> int:
    """Bytes on disk: the file, or for the PyTorch weights every ``model*.safetensors`` shard beside it."""
    if path.name == PYTORCH_WEIGHTS:
        return sum(p.stat().st_size for p in path.parent.glob("model*.safetensors"))
    return path.stat().st_size


def export_onnx_files(
    folder: str | Path,
    results: RunResults,
    model: nn.Module,
    *,
    int8: bool = False,
    data_dir: str | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    measure_latency: bool = True,
    latency_runs: int = LATENCY_RUNS,
    latency_warmup: int = LATENCY_WARMUP,
    threads: int = LATENCY_THREADS,
    tolerance: float = LOGIT_TOLERANCE,
) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model_int8.onnx``) into ``folder``, an export holding the student's PyTorch files,
    verify and measure them; returns the record stored under ``hub_export.onnx``.

    Args:
        folder: the export being assembled (``model.safetensors``, ``config.json``, ``preprocessor_config.json``).
        results: the run's record: where its evaluation set and training images come from.
        model: the student loaded from ``folder`` (what ``AutoModelForImageClassification`` gives).
        int8: also write the int8 model.
        data_dir: where the run's data is, when not where ``results.json`` says.
        calibration_images: training images that calibrate static quantization.
        measure_latency: time every format on this CPU (else the latency cells are empty).
        latency_runs / latency_warmup / threads: the timing protocol.
        tolerance: the largest max-abs logit difference between onnxruntime and PyTorch that passes.
    """
    import onnx
    import onnxruntime

    from ..models.modeling_hf_adapter import InputAdapter

    folder = Path(folder)
    spec = _student_input(folder, results)
    train_ds, eval_ds, info = run_datasets(results, data_dir)
    adapter = InputAdapter(info.mean, info.std, spec).eval()
    model = model.eval().float()
    wrapper = LogitsOnly(model).eval()

    onnx_path = folder / ONNX_NAME
    exported = export_onnx(model, onnx_path, spec.image_size)
    session = onnx_session(onnx_path)
    first = next(_batches(eval_ds, adapter, VERIFY_IMAGES))[0]
    max_diff = verify_onnx(wrapper, session, first, tolerance)
    logger.info("model.onnx: opset %s, max abs logit difference to PyTorch %.3g.", exported["opset"], max_diff)

    formats: list[tuple[str, Path, Callable[[np.ndarray], np.ndarray]]] = [
        ("PyTorch fp32", folder / PYTORCH_WEIGHTS, lambda x: wrapper(torch.from_numpy(x)).float().numpy()),
        ("ONNX fp32", onnx_path, lambda x: onnx_logits(session, x)),
    ]
    quantization = None
    if int8:
        int8_path = folder / INT8_NAME
        calibration, calibration_error = None, None
        if calibration_images > 0 and len(train_ds):
            rows = calibration_indices(len(train_ds), calibration_images)
            calibration = [x.numpy() for x, _ in _batches(train_ds, adapter, 32, rows)]
        else:
            calibration_error = "no training images to calibrate on"
        quantization = quantize_int8(onnx_path, int8_path, calibration, calibration_error)
        int8_session = onnx_session(int8_path)
        formats.append((f"ONNX int8 ({quantization['method']})", int8_path, lambda x: onnx_logits(int8_session, x)))

    # Every format sees the same preprocessed batches: the differences are the formats'.
    logits: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in formats}
    labels = []
    with torch.no_grad():
        for x, y in _batches(eval_ds, adapter, EVAL_BATCH_SIZE):
            arr = x.numpy()
            for name, _, predict in formats:
                logits[name].append(predict(arr))
            labels.append(y.numpy())
    label_arr = np.concatenate(labels)
    reference = np.concatenate(logits["PyTorch fp32"]).argmax(1)
    rows = []
    for name, path, _ in formats:
        out = np.concatenate(logits[name])
        top1, top5 = _accuracy(out, label_arr)
        row: dict[str, Any] = {
            "format": name, "file": path.name, "top1": round(top1, 4),
            "top5": None if top5 is None else round(top5, 4), "size_bytes": _file_size(path),
            "agreement": round(100.0 * float((out.argmax(1) == reference).mean()), 4),
        }
        for batch_size in LATENCY_BATCH_SIZES:
            ms = latency_ms(path if path.suffix == ".onnx" else wrapper, spec.image_size, batch_size,
                            runs=latency_runs, warmup=latency_warmup, threads=threads) if measure_latency else None
            row[f"latency_ms_batch{batch_size}"] = None if ms is None else round(ms, 3)
        rows.append(row)
    return {
        **exported,
        "input": {**exported["input"], "image_size": spec.image_size, "mean": list(spec.mean), "std": list(spec.std)},
        "verification": {"max_abs_logit_diff": max_diff, "tolerance": tolerance, "images": len(first)},
        "evaluation": {"split": info.eval_split, "images": int(len(label_arr))},
        "latency": {
            "measured": measure_latency, "runs": latency_runs, "warmup": latency_warmup, "threads": threads,
            "batch_sizes": list(LATENCY_BATCH_SIZES), "device": device_name("cpu"),
            # Timings on a shared machine mean little without what else ran.
            "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        } if measure_latency else {"measured": False},
        "versions": {"torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "int8": quantization,
        "formats": rows,
    }


# ---- presentation (card and README): formatting only, no onnx import


def _human_size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "–"
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}" if num_bytes < 100 * scale else f"{num_bytes / scale:.0f} {unit}"
    return f"{num_bytes} B"


def _ms(value: float | None) -> str:
    return "–" if value is None else (f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms")


def onnx_table_rows(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``formats`` of an ONNX record as table cells: format, top-1, top-5, size, latency at batch 1 and 64."""
    return [
        {
            "format": row["format"],
            "file": row["file"],
            "top1": f"{row['top1']:.2f}",
            "top5": "–" if row.get("top5") is None else f"{row['top5']:.2f}",
            "size": _human_size(row.get("size_bytes")),
            "latency_1": _ms(row.get("latency_ms_batch1")),
            "latency_64": _ms(row.get("latency_ms_batch64")),
        }
        for row in record["formats"]
    ]


def onnx_table(record: Mapping[str, Any]) -> str:
    """The Markdown table of ``onnx_table_rows`` (the card's and the README's)."""
    lines = ["| Format | Top-1 | Top-5 | Size | CPU latency, batch 1 | CPU latency, batch 64 |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in onnx_table_rows(record):
        lines.append(f"| {row['format']} (`{row['file']}`) | {row['top1']} | {row['top5']} | {row['size']} | "
                     f"{row['latency_1']} | {row['latency_64']} |")
    return "\n".join(lines)


def int8_loss(record: Mapping[str, Any]) -> dict[str, float] | None:
    """``{"points": top-1 drop, "changed": % of images whose top-1 changed}`` of the int8 model against PyTorch
    when the drop exceeds ``INT8_LOSS_TO_REPORT``; ``None`` otherwise (or without an int8 model)."""
    rows = {row["format"].split(" (")[0]: row for row in record.get("formats", [])}
    pytorch, int8 = rows.get("PyTorch fp32"), rows.get("ONNX int8")
    if not pytorch or not int8:
        return None
    drop = float(pytorch["top1"]) - float(int8["top1"])
    if drop <= INT8_LOSS_TO_REPORT:
        return None
    return {"points": round(drop, 2), "changed": round(100.0 - float(int8.get("agreement", 100.0)), 2)}


def onnx_snippet(record: Mapping[str, Any], file: str = ONNX_NAME) -> str:
    """Five lines that run ``file`` with onnxruntime on one image, with the model's own preprocessing (square
    bilinear resize, [0, 1], its normalisation): what the processor does, without PyTorch or transformers."""
    inp = record["input"]
    size = int(inp["image_size"])

    def floats(values: Sequence[float]) -> str:
        return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"

    return "\n".join([
        "import numpy as np, onnxruntime as ort",
        "from PIL import Image",
        f'image = Image.open("image.png").convert("RGB").resize(({size}, {size}), Image.Resampling.BILINEAR)',
        f"x = ((np.asarray(image, np.float32) / 255 - np.array({floats(inp['mean'])}, np.float32)) "
        f"/ np.array({floats(inp['std'])}, np.float32)).transpose(2, 0, 1)[None]",
        f'logits = ort.InferenceSession("{file}").run(["{OUTPUT_NAME}"], {{"{INPUT_NAME}": x}})[0]',
    ])


def _int8_description(int8: Mapping[str, Any] | None) -> str | None:
    if not int8:
        return None
    if int8["method"] == "static":
        cal = int8["calibration"]
        return (f"static int8 quantization by onnxruntime (QDQ, weights per output channel, activation ranges "
                f"calibrated by min/max on {cal['images']} {cal['split']}ing images drawn at random with seed "
                f"{cal['seed']})")
    return (f"dynamic int8 quantization by onnxruntime (int8 weights, activations quantized at run time): static "
            f"quantization could not apply ({int8.get('fallback_reason') or 'no reason recorded'})")


def onnx_card_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the card's ONNX section shows, from the ``hub_export.onnx`` record."""
    latency = record.get("latency") or {}
    versions = record.get("versions") or {}
    return {
        "opset": record["opset"],
        "table": onnx_table(record),
        "split": record["evaluation"]["split"],
        "images": record["evaluation"]["images"],
        "max_diff": f"{float(record['verification']['max_abs_logit_diff']):.1e}",
        "verify_images": record["verification"]["images"],
        "latency": latency if latency.get("measured") else None,
        "onnxruntime_version": versions.get("onnxruntime", "?"),
        "torch_version": versions.get("torch", "?"),
        "int8": _int8_description(record.get("int8")),
        "int8_loss": int8_loss(record),
        "snippet": onnx_snippet(record),
    }


def onnx_card_section(record: Mapping[str, Any]) -> str:
    """The card's "ONNX and int8" section (``templates/onnx_section.md``, shared by the student and teacher cards)."""
    import jinja2

    return jinja2.Template(ONNX_SECTION_TEMPLATE.read_text()).render(**onnx_card_context(record)).strip()
