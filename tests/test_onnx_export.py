"""ONNX and int8 export (issue 21): round trips for a zoo, a timm and a transformers student, the int8 model's
recorded accuracy, the card's table and snippet, and the one-line errors.

Three exported runs on scikit-learn's digits (offline), each made through a different entry point:

- zoo (resnet8): a real tiny run of ``recipes/distill.py`` with ``--onnx --int8`` (the end-of-training export);
- timm (``timm/test_resnet``): a saved student and its results.json, exported with ``icd-hf export --onnx --int8
  --no_latency``;
- transformers (a tiny ``ResNetForImageClassification`` with its own 40-px, ImageNet-normalised processor, so the
  data is resized and renormalised for it): ``export_for_hub(onnx=True, int8=True)`` with a short latency protocol.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    ViTImageProcessor,
)

import icd_hf.hub.export as hub_export
from icd_hf.cli import main
from icd_hf.cli_utils import run_from_argv
from icd_hf.data import build_datasets, collate_batch
from icd_hf.hub import export_for_hub, render_model_card
from icd_hf.hub.onnx_export import (
    CALIBRATION_SEED,
    OPSET,
    OnnxExportError,
    calibration_indices,
    export_onnx,
    onnx_table,
    quantize_int8,
    verify_onnx,
)
from icd_hf.models import create_model
from icd_hf.models.modeling_hf_adapter import InputAdapter, InputSpec
from icd_hf.runs import RunResults

TRAIN, EVAL = 200, 48  # digits rows kept: calibration uses all 200 (fewer than 300), evaluation 48
DATA_CONFIG = {"dataset": "digits", "max_train_samples": TRAIN, "max_eval_samples": EVAL, "validation_size": 0.1}
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
SHORT_LATENCY = {"latency_runs": 2, "latency_warmup": 1}


def _load(folder: Path) -> torch.nn.Module:
    return AutoModelForImageClassification.from_pretrained(str(folder), trust_remote_code=True).eval()


def _saved_run(root: Path, model: torch.nn.Module, name: str, processor: ViTImageProcessor | None = None) -> Path:
    """A finished run as experiment.py leaves it: student/ (weights, code, processor) and results.json."""
    _, _, info = build_datasets("digits", max_train_samples=TRAIN, max_eval_samples=EVAL)
    run_dir = root / "run"
    model.save_pretrained(run_dir / "student")
    record = RunResults.from_dict({
        "method": "vanilla", "student": {"name": name, "num_parameters": sum(p.numel() for p in model.parameters())},
        "metrics": {"top1": 50.0, "top5": 90.0}, "dataset": info.to_dict(), "config": dict(DATA_CONFIG),
    })
    (processor or hub_export.build_image_processor(record)).save_pretrained(run_dir / "student")
    record.write(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> SimpleNamespace:
    """resnet8 trained 2 steps by recipes/distill.py --onnx --int8: its run and the export it wrote."""
    root = tmp_path_factory.mktemp("onnx_zoo")
    argv = [
        "--student", "resnet8", "--method", "vanilla", "--dataset", "digits", "--max_train_samples", str(TRAIN),
        "--max_eval_samples", str(EVAL), "--output_dir", str(root / "run"), "--resume", "never",
        "--training.max_steps", "2", "--training.per_device_train_batch_size", "16",
        "--training.eval_strategy", "no", "--training.save_strategy", "no", "--training.use_cpu", "true",
        "--training.report_to", "none", "--training.dataloader_num_workers", "0", "--training.disable_tqdm", "true",
        "--onnx", "--int8",
    ]
    assert run_from_argv(argv, prog="distill.py") == 0
    run_dir = root / "run"
    return SimpleNamespace(run_dir=run_dir, export_dir=run_dir / "hub_export")


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory) -> SimpleNamespace:
    """timm/test_resnet, exported by `icd-hf export --onnx --int8 --no_latency`."""
    root = tmp_path_factory.mktemp("onnx_timm")
    torch.manual_seed(0)
    run_dir = _saved_run(root, create_model("timm/test_resnet", num_classes=10).eval(), "timm/test_resnet")
    assert main(["export", str(run_dir), "--out", str(root / "export"), "--onnx", "--int8", "--no_latency"]) == 0
    return SimpleNamespace(run_dir=run_dir, export_dir=root / "export")


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory) -> SimpleNamespace:
    """A tiny transformers ResNet at 40 px with ImageNet statistics, exported with export_for_hub."""
    root = tmp_path_factory.mktemp("onnx_hf")
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    processor = ViTImageProcessor(size={"height": 40, "width": 40}, image_mean=IMAGENET[0], image_std=IMAGENET[1])
    run_dir = _saved_run(root, ResNetForImageClassification(config).eval(), "microsoft/resnet-tiny", processor)
    export_dir = export_for_hub(run_dir, root / "export", onnx=True, int8=True,
                                onnx_options={"calibration_images": 64, **SHORT_LATENCY})
    return SimpleNamespace(run_dir=run_dir, export_dir=export_dir)


KINDS = ["zoo", "timm_run", "hf_run"]


def _record(export_dir: Path) -> dict:
    return RunResults.read(export_dir).hub_export["onnx"]


def _eval_inputs(export_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation images as the exported model takes them, rebuilt here from the data and the processor."""
    record = RunResults.read(export_dir)
    _, eval_ds, info = build_datasets("digits", max_train_samples=TRAIN, max_eval_samples=EVAL)
    processor = json.loads((export_dir / "preprocessor_config.json").read_text())
    spec = InputSpec(processor["size"]["height"], tuple(processor["image_mean"]), tuple(processor["image_std"]))
    batch = collate_batch([eval_ds[i] for i in range(len(eval_ds))])
    assert len(eval_ds) == record.dataset["num_eval"] == EVAL
    with torch.no_grad():
        x = InputAdapter(info.mean, info.std, spec)(batch["pixel_values"])
    return x.numpy(), batch["labels"].numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_logits_are_pytorch_logits(kind, request):
    export_dir = request.getfixturevalue(kind).export_dir
    proto = onnx.load(str(export_dir / "model.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert proto.graph.input[0].name == "pixel_values" and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch axis is symbolic
    record = _record(export_dir)
    assert record["verification"]["max_abs_logit_diff"] <= record["verification"]["tolerance"]
    # A batch size the exporter never saw, on a model loaded afresh from the exported folder.
    x = _eval_inputs(export_dir)[0][:3]
    with torch.no_grad():
        expected = _load(export_dir)(pixel_values=torch.from_numpy(x)).logits.numpy()
    got = ort.InferenceSession(str(export_dir / "model.onnx")).run(["logits"], {"pixel_values": x})[0]
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_accuracies_are_the_accuracies_measured(kind, request):
    export_dir = request.getfixturevalue(kind).export_dir
    record = _record(export_dir)
    x, labels = _eval_inputs(export_dir)
    with torch.no_grad():
        pytorch = _load(export_dir)(pixel_values=torch.from_numpy(x)).logits.numpy()
    outputs = {"model.safetensors": pytorch}
    for name in ("model.onnx", "model_int8.onnx"):
        outputs[name] = ort.InferenceSession(str(export_dir / name)).run(["logits"], {"pixel_values": x})[0]
    assert [row["file"] for row in record["formats"]] == list(outputs)
    assert record["evaluation"]["images"] == EVAL
    for row in record["formats"]:
        logits = outputs[row["file"]]
        top1 = 100 * (logits.argmax(1) == labels).mean()
        top5 = 100 * (np.argsort(-logits, 1)[:, :5] == labels[:, None]).any(1).mean()
        assert row["top1"] == pytest.approx(top1, abs=1e-3) and row["top5"] == pytest.approx(top5, abs=1e-3)
        assert row["agreement"] == pytest.approx(100 * (logits.argmax(1) == pytorch.argmax(1)).mean(), abs=1e-3)
        assert row["size_bytes"] == (export_dir / row["file"]).stat().st_size
    # Static int8 really is int8: the quantized graph holds int8 weights and is smaller than the fp32 one.
    int8 = onnx.load(str(export_dir / "model_int8.onnx"))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in int8.graph.initializer)
    assert record["int8"]["method"] == "static" and record["int8"]["fallback_reason"] is None
    assert record["formats"][2]["format"] == "ONNX int8 (static)"


def test_calibration_images_and_latency_are_recorded(zoo, timm_run, hf_run):
    # digits keeps 200 training rows here: all of them calibrate unless fewer are asked for.
    assert _record(zoo.export_dir)["int8"]["calibration"]["images"] == TRAIN
    assert _record(hf_run.export_dir)["int8"]["calibration"] == {
        "images": 64, "split": "train", "seed": CALIBRATION_SEED, "sampling": "uniform without replacement",
        "method": "MinMax"}
    zoo_latency = _record(zoo.export_dir)["latency"]
    assert zoo_latency["runs"] == 20 and zoo_latency["warmup"] == 3 and zoo_latency["threads"] == 1
    assert _record(hf_run.export_dir)["latency"]["runs"] == 2
    for export_dir in (zoo.export_dir, hf_run.export_dir):
        for row in _record(export_dir)["formats"]:
            assert row["latency_ms_batch1"] > 0 and row["latency_ms_batch64"] > 0
    assert _record(timm_run.export_dir)["latency"] == {"measured": False}
    assert all(row["latency_ms_batch1"] is None for row in _record(timm_run.export_dir)["formats"])


def test_calibration_draws_a_fixed_random_sample():
    rows = calibration_indices(1500)
    assert rows == calibration_indices(1500) and len(set(rows)) == 300 and rows == sorted(rows)
    assert rows != list(range(300)) and rows != calibration_indices(1500, seed=1)
    assert calibration_indices(120) == list(range(120))


@pytest.mark.parametrize("kind", KINDS)
def test_card_shows_the_table_of_the_record(kind, request):
    export_dir = request.getfixturevalue(kind).export_dir
    card = (export_dir / "README.md").read_text()
    record = _record(export_dir)
    assert "## ONNX and int8" in card and onnx_table(record) in card
    assert f"the same {EVAL} images" in card and "static int8 quantization" in card
    assert ("Latency was not measured" in card) is (kind == "timm_run")


def _hand_record(int8_top1: float, method: str = "static") -> dict:
    def row(fmt: str, file: str, top1: float, size: int, ms: tuple[float, float] | None) -> dict:
        return {"format": fmt, "file": file, "top1": top1, "top5": 99.5, "size_bytes": size, "agreement": 97.25,
                "latency_ms_batch1": ms and ms[0], "latency_ms_batch64": ms and ms[1]}

    return {
        "opset": 18, "input": {"name": "pixel_values", "shape": ["batch", 3, 32, 32], "image_size": 32,
                               "mean": [0.5, 0.25, 0.125], "std": [0.2, 0.2, 0.2]},
        "verification": {"max_abs_logit_diff": 2.5e-6, "tolerance": 1e-3, "images": 8},
        "evaluation": {"split": "test", "images": 297},
        "latency": {"measured": True, "runs": 20, "warmup": 3, "threads": 1, "batch_sizes": [1, 64],
                    "device": "CPU (test)"},
        "versions": {"torch": "2.14.1", "onnx": "1.23.2", "onnxruntime": "1.32.0"},
        "int8": {"method": method, "calibration": {"images": 300, "split": "train", "seed": 0} if method == "static"
                 else None, "fallback_reason": None if method == "static" else "static quantization failed (X: y)"},
        "formats": [row("PyTorch fp32", "model.safetensors", 97.98, 318_000, (1.234, 45.6)),
                    row("ONNX fp32", "model.onnx", 97.98, 330_123, (0.51, 20.0)),
                    row(f"ONNX int8 ({method})", "model_int8.onnx", int8_top1, 99_000, (0.75, 123.4))],
    }


def test_card_table_is_rendered_from_a_record():
    results = json.loads((Path(__file__).parent.parent / "benchmarks/results/quickstart.json").read_text())
    distilled = results["runs"]["distilled"]
    card = str(render_model_card(distilled, onnx=_hand_record(97.31)))
    assert ("| Format | Top-1 | Top-5 | Size | CPU latency, batch 1 | CPU latency, batch 64 |\n"
            "|---|---:|---:|---:|---:|---:|\n"
            "| PyTorch fp32 (`model.safetensors`) | 97.98 | 99.50 | 318 kB | 1.23 ms | 45.60 ms |\n"
            "| ONNX fp32 (`model.onnx`) | 97.98 | 99.50 | 330 kB | 0.51 ms | 20.00 ms |\n"
            "| ONNX int8 (static) (`model_int8.onnx`) | 97.31 | 99.50 | 99.0 kB | 0.75 ms | 123 ms |") in card
    flat = " ".join(card.split())  # the prose wraps; the facts are what counts
    assert "match PyTorch's to 2.5e-06 (max absolute difference)" in flat
    assert ("median of 20 timed runs after 3 warm-up runs, on CPU (test) with 1 thread(s) (onnxruntime 1.32.0, "
            "PyTorch 2.14.1)") in flat
    assert "calibrated by min/max on 300 training images drawn at random with seed 0" in flat
    assert "int8 loses" not in card  # 0.67 points: within the point the card lets pass silently
    lossy = " ".join(str(render_model_card(distilled, onnx=_hand_record(95.5, method="dynamic"))).split())
    assert "**int8 loses 2.48 points of top-1** against PyTorch (its top-1 differs on 2.75 % of the images)" in lossy
    assert "dynamic int8 quantization by onnxruntime (int8 weights, activations quantized at run time): static " \
           "quantization could not apply (static quantization failed (X: y))" in lossy
    # Without an ONNX record, the card is the one it always was.
    assert "## ONNX" not in str(render_model_card(distilled))


def test_card_snippet_runs_model_onnx_with_the_processors_preprocessing(hf_run, tmp_path, monkeypatch):
    card = (hf_run.export_dir / "README.md").read_text()
    snippet = card.split("without PyTorch or transformers:\n\n```python\n", 1)[1].split("\n```", 1)[0]
    assert len(snippet.splitlines()) == 5
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (57, 31, 3), dtype=np.uint8)).save(tmp_path / "image.png")
    (tmp_path / "model.onnx").symlink_to(hf_run.export_dir / "model.onnx")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - the card's own code, on a local image
    processor = AutoImageProcessor.from_pretrained(str(hf_run.export_dir))
    inputs = processor(images=Image.open("image.png").convert("RGB"), return_tensors="pt")
    with torch.no_grad():
        expected = _load(hf_run.export_dir)(**inputs).logits.numpy()
    assert namespace["x"].shape == (1, 3, 40, 40) and namespace["x"].dtype == np.float32
    np.testing.assert_allclose(namespace["logits"], expected, atol=1e-3)


def test_refreshed_card_keeps_the_onnx_section(hf_run, tmp_path):
    import shutil

    from icd_hf.hub.export import refresh_card

    copy = tmp_path / "copy"
    shutil.copytree(hf_run.export_dir, copy)
    refresh_card(copy, hub_model_id="org/tiny-onnx")
    assert onnx_table(_record(hf_run.export_dir)) in (copy / "README.md").read_text()
    assert _record(copy) == _record(hf_run.export_dir)


# ---- errors


class _DataDependent(torch.nn.Module):
    """A forward that branches on the values of its input: torch.export cannot trace it."""

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        logits = pixel_values.mean((2, 3))
        if logits.sum() > 0:
            logits = logits * 2
        return SimpleNamespace(logits=logits)


def test_unsupported_model_is_one_line_and_leaves_no_file(tmp_path):
    with pytest.raises(OnnxExportError, match=r"^_DataDependent cannot be exported to ONNX \(.+\); export without "
                                              r"--onnx, or make its forward traceable by torch.export"):
        export_onnx(_DataDependent(), tmp_path / "model.onnx", 8)
    assert not (tmp_path / "model.onnx").exists()


def test_cli_unsupported_model_fails_in_one_line_without_an_export(hf_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub_export, "_load_local", lambda folder: _DataDependent())
    code = main(["export", str(hf_run.run_dir), "--out", str(tmp_path / "out"), "--onnx", "--no_latency"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("icd-hf export: error: _DataDependent cannot be exported to ONNX (")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_onnx_that_is_not_the_model_fails_the_export(zoo):
    torch.manual_seed(1)
    other = create_model("resnet8", num_classes=10).eval()
    session = ort.InferenceSession(str(zoo.export_dir / "model.onnx"))
    from icd_hf.hub.onnx_export import LogitsOnly

    with pytest.raises(OnnxExportError, match=r"model.onnx does not reproduce the PyTorch model: max abs logit "
                                              r"difference .+ on 4 evaluation images, above the tolerance 0.001"):
        verify_onnx(LogitsOnly(other), session, torch.randn(4, 3, 32, 32))


def test_dynamic_quantization_when_static_cannot_apply(zoo, tmp_path):
    out = tmp_path / "model_int8.onnx"
    info = quantize_int8(zoo.export_dir / "model.onnx", out, None, "no training images to calibrate on")
    assert info["method"] == "dynamic" and info["fallback_reason"] == "no training images to calibrate on"
    logits = ort.InferenceSession(str(out)).run(["logits"], {"pixel_values": np.zeros((2, 3, 32, 32), np.float32)})[0]
    assert logits.shape == (2, 10) and np.isfinite(logits).all()


def test_missing_onnx_packages_are_one_line_before_anything_loads(hf_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: find_spec answers None
    monkeypatch.setattr(hub_export, "_load_local", lambda folder: pytest.fail("loaded the model"))
    code = main(["export", str(hf_run.run_dir), "--out", str(tmp_path / "out"), "--onnx"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("icd-hf export: error: --onnx needs onnxruntime, not installed here: pip install "
                                 "'icd-hf[onnx]' (or pip install -r requirements.txt, which pins them).")
    assert not (tmp_path / "out").exists()


def test_int8_needs_onnx_on_both_entry_points(hf_run, tmp_path, monkeypatch, capsys):
    assert main(["export", str(hf_run.run_dir), "--out", str(tmp_path / "out"), "--int8"]) == 2
    assert capsys.readouterr().err.strip() == (
        "icd-hf export: error: --int8 quantizes the ONNX export: add --onnx (the int8 model is written next to "
        "model.onnx).")
    import icd_hf.data

    monkeypatch.setattr(icd_hf.data, "build_datasets", lambda *a, **k: pytest.fail("loaded data"))
    code = run_from_argv(["--dataset", "digits", "--method", "vanilla", "--output_dir", str(tmp_path / "run"),
                          "--int8"], prog="distill.py")
    assert code == 2 and "distill.py: error: --int8 quantizes the ONNX export: add --onnx" in capsys.readouterr().err


def test_an_evaluation_set_that_is_not_the_runs_is_refused(hf_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(hf_run.run_dir, run_dir)
    record = json.loads((run_dir / "results.json").read_text())
    record["dataset"]["num_eval"] = 297
    (run_dir / "results.json").write_text(json.dumps(record))
    assert main(["export", str(run_dir), "--out", str(tmp_path / "out"), "--onnx", "--no_latency"]) == 2
    assert ("has 48 images of 10 classes but the run evaluated on 297 of 10: pass --data_dir"
            in capsys.readouterr().err)


# ---- the README's export tables (benchmarks/reports/onnx_export.py)

ROOT = Path(__file__).resolve().parents[1]


def _export_report(tmp_path: Path):
    """The onnx_export declaration bound to a scratch checkout whose README holds its markers."""
    from icd_hf.evaluation.reports import discover

    report = discover(ROOT / "benchmarks" / "reports", ROOT)["onnx_export"]
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "README.md").write_text(f"# x\n\n{report.begin}\nold\n{report.end}\n\nafter\n")
    return type(report)(root), sys.modules[type(report).__module__]


def _block(report) -> str:
    text = report.path("README.md").read_text()
    return text[text.index(report.begin):text.index(report.end)]


def test_export_report_renders_kept_exports_and_catches_drift(hf_run, tmp_path):
    from icd_hf.evaluation.reports import collect, stale

    report, module = _export_report(tmp_path)
    collect(report)
    assert _block(report).count("not exported yet") == 2  # nothing kept: each export says how it is made
    assert "python benchmarks/report.py run onnx_export --data_dir /data/cifar-100-python --only cpu_budget" in \
        _block(report)
    kept = report.path(module.KEPT)
    kept.mkdir(parents=True)
    (kept / "quickstart.json").write_text((hf_run.export_dir / "results.json").read_text())
    (kept / "notes.json").write_text(json.dumps({"quickstart": "A test note."}))
    assert stale(report)  # a kept export without collect is drift
    collect(report)
    block = _block(report)
    assert onnx_table(_record(hf_run.export_dir)) in block and "A test note." in block
    assert f"every format on the same {EVAL} `test` images" in block and block.count("not exported yet") == 1
    assert stale(report) == []
    record = json.loads((kept / "quickstart.json").read_text())
    record["hub_export"]["onnx"]["formats"][1]["top1"] += 1.0  # a number edited in the kept export
    (kept / "quickstart.json").write_text(json.dumps(record))
    assert stale(report)


def test_export_report_wants_the_reason_when_int8_loses_more_than_a_point(tmp_path):
    from icd_hf.evaluation.reports import collect

    report, module = _export_report(tmp_path)
    kept = report.path(module.KEPT)
    kept.mkdir(parents=True)
    (kept / "cpu_budget.json").write_text(json.dumps({
        "method": "icd+kd", "student": {"name": "resnet20"}, "metrics": {"top1": 45.0}, "git_commit": "abc1234",
        "hub_export": {"icd_hf_version": "0.1.0", "onnx": _hand_record(95.5)}}))
    with pytest.raises(ValueError, match=r"int8 loses 2.48 points of top-1 in the cpu_budget export: say why in "
                                         r"benchmarks/results/onnx_export/notes.json"):
        collect(report)
    (kept / "notes.json").write_text(json.dumps({"cpu_budget": "Why it loses them."}))
    collect(report)
    block = " ".join(_block(report).split())
    assert ("**int8 loses 2.48 points of top-1** (its top-1 differs from PyTorch's on 2.75 % of the images): Why it "
            "loses them.") in block
    assert "median of 20 timed runs after 3 warm-up runs on CPU (test), 1 thread(s)." in block
    assert "| ONNX int8 (static) (`model_int8.onnx`) | 95.50 | 99.50 | 99.0 kB | 0.75 ms | 123 ms |" in block


def test_export_report_plans_the_exports(tmp_path):
    report, _ = _export_report(tmp_path)
    runs = {run.key: run for run in report.planned_runs("/data/cifar")}
    assert runs["quickstart"].command == ["-m", "icd_hf.cli", "export", "runs/quickstart/icd_kd", "--out",
                                          "runs/quickstart/export", "--onnx", "--int8", "--overwrite"]
    assert runs["cpu_budget"].command[-2:] == ["--data_dir", "/data/cifar"]
    assert runs["cpu_budget"].command[3] == "runs/cpu_budget/resnet56__resnet20/icd_kd-seed0"
    assert {(r.output_dir, r.result, r.kept) for r in runs.values()} == {
        ("runs/quickstart/export", "results.json", "benchmarks/results/onnx_export/quickstart.json"),
        ("runs/cpu_budget/export/icd_kd-seed0", "results.json", "benchmarks/results/onnx_export/cpu_budget.json")}
