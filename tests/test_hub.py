"""Hub publishing: export folder, model card round trip, loading in fresh processes, push failure paths, CLI.

Everything is offline: the "Hub" is either a recording fake ``HfApi`` or the real one with offline mode on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import httpx2
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image
from safetensors.torch import load_file

import icd_hf.hub.push as hub_push
from icd_hf.cli import main
from icd_hf.data.info import ImageDatasetInfo
from icd_hf.hub import (
    HubNotLoggedInError,
    HubPublishError,
    HubUnreachableError,
    export_for_hub,
    find_paper_result,
    is_exported_folder,
    prepare_export,
    push_to_hub,
    render_model_card,
    validate_hub_model_id,
)
from icd_hf.models import create_model
from icd_hf.paper import default_paper_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "test-org/resnet8-icd-kd-toy"
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]

# A hand-written excerpt in the layout of the paper's tables, with numbers unlike the real ones, so the card
# test proves the values come from `paper_dir` (and which row/column they come from).
PAPER_CSV = """teacher,resnet-20,WRN-40-2
student,resnet-8,WRN-16-2
teacher_acc,69.10,75.61
student_vanilla_acc,60.20,73.26
KD,61.30,74.92
FSP,n/a,72.91
ICD+KD,62.40,76.06
"""

# Put in front of any import: makes `icd_hf` unimportable, as on a machine without the package.
BLOCK_ICD_HF = textwrap.dedent(
    """
    import sys

    class _BlockIcdHf:
        def find_spec(self, name, path=None, target=None):
            if name == "icd_hf" or name.startswith("icd_hf."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _BlockIcdHf())
    """
)


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _results(student_params: int, teacher_params: int, teacher_path: str) -> dict:
    return {
        "method": "icd+kd",
        "teacher": {"name": "resnet20", "top1": 68.5, "num_parameters": teacher_params, "path_or_hub_id": teacher_path},
        "student": {"name": "resnet8", "num_parameters": student_params},
        "dataset": ImageDatasetInfo(name="cifar10", num_classes=10, class_names=CIFAR10_LABELS, mean=tuple(MEAN),
                                    std=tuple(STD), image_size=32, native_image_size=32, source="uoft-cs/cifar10",
                                    eval_split="test").to_dict(),
        "loss": {"ce_weight": 1.0, "terms": [{"name": "icd", "weight": 1.0, "kwargs": {"feat_dim": 128}},
                                             {"name": "kd", "weight": 0.9, "kwargs": {"temperature": 4.0}}]},
        "training": {"num_train_epochs": 2, "per_device_train_batch_size": 16, "learning_rate": 0.05,
                     "lr_milestones": [1], "weight_decay": 5e-4, "report_to": "none", "output_dir": "/tmp/x"},
        "metrics": {"top1": 61.23, "top5": 95.67, "best_top1": 61.9, "best_epoch": 1},
        "baselines": {"vanilla_top1": 58.4, "kd_top1": None},
        "command": "python recipes/distill.py --config toy.yaml",
        "git_commit": "abc1234",
        "wall_time_s": 12.5,
        "device": "cpu (test)",
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """A finished run (resnet8 student of a resnet20 teacher, 10 classes), its paper tables, and its export."""
    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    student = create_model("resnet8", num_classes=10).eval()
    teacher = create_model("resnet20", num_classes=10).eval()
    # Non-trivial BatchNorm statistics, so a load that dropped buffers would change the logits.
    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    run_dir = root / "run"
    student.save_pretrained(run_dir / "student")
    teacher.save_pretrained(root / "teacher")
    results = _results(_num_params(student), _num_params(teacher), str(root / "teacher"))
    (run_dir / "results.json").write_text(json.dumps(results))
    paper_dir = root / "paper"
    paper_dir.mkdir()
    (paper_dir / "table1_cifar100_same_architecture.csv").write_text(PAPER_CSV)
    export_dir = export_for_hub(run_dir, root / "export", hub_model_id=HUB_ID, paper_dir=paper_dir)
    return SimpleNamespace(root=root, run_dir=run_dir, export_dir=export_dir, paper_dir=paper_dir, student=student,
                           teacher=teacher, results=results)


# --- hub ids ------------------------------------------------------------------------------------------------------


def test_validate_hub_model_id_accepts_org_name():
    assert validate_hub_model_id("my-user/wrn_16_2-icd.kd") == "my-user/wrn_16_2-icd.kd"


@pytest.mark.parametrize(
    "bad, reason",
    [(None, "org/name"), ("", "org/name"), ("just-a-name", "exactly one '/'"), ("a/b/c", "exactly one '/'"),
     ("org/has space", "Invalid hub_model_id"), ("org/--double", "Invalid hub_model_id")],
)
def test_validate_hub_model_id_rejects(bad, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        validate_hub_model_id(bad)


# --- paper tables -------------------------------------------------------------------------------------------------


def test_paper_lookup_maps_zoo_names_and_na(run):
    found = find_paper_result("resnet20", "resnet8", "icd+kd", run.paper_dir)
    assert (found.teacher, found.student, found.method) == ("resnet-20", "resnet-8", "ICD+KD")
    assert (found.teacher_top1, found.vanilla_top1, found.kd_top1, found.method_top1) == (69.10, 60.20, 61.30, 62.40)
    assert find_paper_result("resnet20", "resnet8", "fsp", run.paper_dir).method_top1 is None  # "n/a" in the table
    assert find_paper_result("resnet20", "resnet8", "dkd", run.paper_dir).method_top1 is None  # no such row
    assert find_paper_result("wrn_40_2", "resnet8", "kd", run.paper_dir) is None  # no such pair
    teacher_only = find_paper_result(None, "wrn_40_2", None, run.paper_dir)
    assert teacher_only.teacher_top1 == 75.61 and teacher_only.vanilla_top1 is None
    assert find_paper_result("resnet20", "resnet8", "kd", run.root / "missing") is None


@pytest.mark.skipif(not default_paper_dir().is_dir(), reason="the shared paper tables are not next to this checkout")
def test_paper_lookup_in_published_tables():
    assert find_paper_result("wrn_40_2", "wrn_16_2", "icd+kd").method_top1 == 76.06
    assert find_paper_result("wrn_40_2", "wrn_40_1", "fsp").method_top1 is None  # printed as n/a
    cross = find_paper_result("resnet32x4", "shufflenetv2", "icd+kd")  # table 2 writes "ResNet-32x4"
    assert cross.table.startswith("table2") and cross.method_top1 == 76.53 and cross.teacher_top1 == 79.42


# --- export -------------------------------------------------------------------------------------------------------


def test_export_folder_is_a_complete_model_repo(run):
    files = {p.name for p in run.export_dir.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "results.json",
            "modeling_resnet_cifar.py", "configuration_resnet_cifar.py"} <= files
    assert not any(p.name.startswith(".") for p in run.root.iterdir()), "the staging folder was left behind"
    original = load_file(run.run_dir / "student" / "model.safetensors")
    exported = load_file(run.export_dir / "model.safetensors")
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[k], exported[k]) for k in original)
    config = json.loads((run.export_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"].startswith("modeling_resnet_cifar.")
    for ref in config["auto_map"].values():
        assert (run.export_dir / f"{ref.rsplit('.', 1)[0]}.py").is_file()
    # The class names of results.json replaced the LABEL_i defaults.
    assert config["id2label"] == {str(i): name for i, name in enumerate(CIFAR10_LABELS)}
    assert config["label2id"]["truck"] == 9
    record = json.loads((run.export_dir / "results.json").read_text())
    assert record["metrics"] == run.results["metrics"] and record["hub_export"]["hub_model_id"] == HUB_ID
    assert record["hub_export"]["latency"]["student_ms"] > 0 and record["hub_export"]["latency"]["teacher_ms"] > 0
    assert is_exported_folder(run.export_dir) and not is_exported_folder(run.run_dir)


def test_image_processor_matches_hand_normalisation(run):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(run.export_dir)
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    got = processor(images=Image.fromarray(pixels), return_tensors="pt")["pixel_values"]
    expected = (torch.from_numpy(pixels).float().permute(2, 0, 1) / 255 - torch.tensor(MEAN)[:, None, None]) / (
        torch.tensor(STD)[:, None, None]
    )
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-5)
    larger = processor(images=Image.fromarray(np.zeros((64, 48, 3), dtype=np.uint8)), return_tensors="pt")
    assert tuple(larger["pixel_values"].shape) == (1, 3, 32, 32)


def test_export_refuses_to_clobber(run, tmp_path):
    other = tmp_path / "not-an-export"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        export_for_hub(run.run_dir, other, measure_latency=False)
    with pytest.raises(FileExistsError, match="not an earlier icd-hf export"):
        export_for_hub(run.run_dir, other, measure_latency=False, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="overwrite the run itself"):
        export_for_hub(run.run_dir, run.run_dir, measure_latency=False, overwrite=True)
    first = export_for_hub(run.run_dir, tmp_path / "again", measure_latency=False)
    assert export_for_hub(run.run_dir, first, measure_latency=False, overwrite=True) == first


def test_export_requires_auto_map_and_results(run, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run.run_dir, broken)
    config = json.loads((broken / "student" / "config.json").read_text())
    del config["auto_map"]
    (broken / "student" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="register_for_auto_class"):
        export_for_hub(broken, tmp_path / "out", measure_latency=False)
    with pytest.raises(FileNotFoundError, match="No results.json"):
        export_for_hub(tmp_path / "nowhere", tmp_path / "out", measure_latency=False)
    results = dict(run.results, metrics={"top5": 1.0})
    with pytest.raises(KeyError, match=re.escape("metrics.top1")):
        render_model_card(results)


# --- model card ---------------------------------------------------------------------------------------------------


def test_card_metadata_round_trips_through_huggingface_hub(run):
    card = ModelCard.load(run.export_dir / "README.md")
    results = card.data.eval_results
    assert [(r.metric_type, r.metric_value) for r in results] == [("accuracy", 61.23), ("top_5_accuracy", 95.67)]
    for r in results:
        assert (r.task_type, r.dataset_type, r.dataset_name, r.dataset_split) == (
            "image-classification", "uoft-cs/cifar10", "cifar10", "test")
    name, parsed = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "resnet8-icd-kd-toy" and [r.metric_value for r in parsed] == [61.23, 95.67]
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert card.data.datasets == ["uoft-cs/cifar10"] and card.data.pipeline_tag == "image-classification"
    assert {"knowledge-distillation", "icd-hf", "icd+kd", "icd", "kd"} <= set(card.data.tags)
    assert card.data.base_model is None  # the teacher is a local folder, not a Hub repository


def test_card_body_states_the_run(run):
    text = (run.export_dir / "README.md").read_text()
    # Ours | top-5 | the hand CSV's ICD+KD figure for resnet-20 -> resnet-8 | parameters.
    assert f"| **resnet8 + ICD+KD (this model)** | **61.23** | 95.67 | 62.40 | {run.results['student']['num_parameters'] / 1e3:.1f}K |" in text  # noqa: E501
    assert "| resnet20 (teacher) | 68.50 | – | 69.10 |" in text
    assert "| resnet8 (vanilla, no teacher) | 58.40 | – | 60.20 |" in text
    assert "| resnet8 + KD | – | – | 61.30 |" in text  # our KD baseline is unknown: a dash, not a number
    ratio = run.results["teacher"]["num_parameters"] / run.results["student"]["num_parameters"]
    assert f"| {ratio:.1f}× fewer |" in text
    assert "CPU latency, batch 1" in text and "median of 20 forward passes" in text
    assert "Best top-1 during training: 61.90 (epoch 1)" in text
    assert "| kd | 0.9 | `temperature=4` |" in text
    assert "- `lr_milestones`: [1]" in text and "output_dir" not in text and "report_to" not in text
    for key in ("giakoumoglou2024invariant", "tian2020contrastive", "hinton2015distilling"):
        assert f"{{{key}," in text
    assert f'AutoModelForImageClassification.from_pretrained("{HUB_ID}", trust_remote_code=True)' in text


def test_teacher_card_and_hub_base_model(run):
    teacher_results = dict(run.results, method="vanilla", teacher=None, loss={"ce_weight": 1.0, "terms": []},
                           student={"name": "wrn_40_2", "num_parameters": 2_243_546})
    card = ModelCard(str(render_model_card(teacher_results, paper_dir=run.paper_dir)))
    assert card.data.eval_results[0].metric_value == 61.23 and card.data.base_model is None
    assert "(cross-entropy, no teacher)" in card.text
    assert "| **wrn_40_2 (this model)** | **61.23** | 95.67 | 75.61 | 2.24M |" in card.text
    assert 'from_pretrained("path/to/this/folder", trust_remote_code=True)' in card.text
    student = ModelCard(str(render_model_card(run.results, teacher_hub_id="test-org/resnet20-cifar10")))
    assert student.data.base_model == "test-org/resnet20-cifar10"
    hub_teacher = dict(run.results, teacher=dict(run.results["teacher"], path_or_hub_id="test-org/resnet20-hub"))
    latency = {"student_ms": 1.234, "teacher_ms": None, "runs": 20, "image_size": 32, "threads": 1,
               "device": "CPU (test)", "torch_version": "2"}
    hub_card = ModelCard(str(render_model_card(hub_teacher, latency=latency)))
    assert hub_card.data.base_model == "test-org/resnet20-hub"
    # A Hub teacher is not downloaded to be timed: the student's latency is shown alone.
    assert "| CPU latency, batch 1 | – | 1.23 ms | – |" in hub_card.text


def test_card_names_the_teacher_and_no_dataset_it_was_not_trained_on(run, tmp_path):
    text = (run.export_dir / "README.md").read_text()
    # The teacher's folder on the training machine means nothing to a reader of the card.
    assert str(run.root) not in text and "- Teacher: resnet20, frozen during distillation." in text
    hub_teacher = dict(run.results, teacher=dict(run.results["teacher"], path_or_hub_id="test-org/resnet20-hub"))
    assert "- Teacher: resnet20 (`test-org/resnet20-hub`), frozen" in str(render_model_card(hub_teacher))
    named = str(render_model_card(run.results, teacher_hub_id="test-org/resnet20-cifar10"))
    assert "- Teacher: resnet20 (`test-org/resnet20-cifar10`), frozen" in named
    digits = dict(run.results, dataset=dict(run.results["dataset"], name="digits", source="digits"),
                  command="python recipes/quickstart.py")
    for card in (render_model_card(digits, paper_dir=run.paper_dir),
                 render_model_card(dict(digits, teacher=None, method="vanilla"), paper_dir=run.paper_dir)):
        assert "cifar" not in str(card).lower()
    assert "- Command: `python recipes/quickstart.py`" in str(render_model_card(digits))


# --- loading in fresh processes -----------------------------------------------------------------------------------


def _run_python(code: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp / "modules"), OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_folder_loads_without_icd_hf_and_with_it(run, tmp_path):
    torch.manual_seed(1)
    x = torch.randn(3, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            expected = run.student(pixel_values=x).logits
    finally:
        torch.set_num_threads(threads)
    # The card's usage snippet, literally, with the repository id pointing at the local folder.
    text = (run.export_dir / "README.md").read_text()
    snippet = re.search(r"## How to use\n\n```python\n(.*?)```", text, re.S).group(1)
    assert snippet.count(HUB_ID) == 2
    (tmp_path / "snippet.py").write_text(snippet.replace(HUB_ID, str(run.export_dir)))
    pixels = np.random.default_rng(3).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "image.png")

    remote = BLOCK_ICD_HF + textwrap.dedent(
        f"""
        import runpy, torch
        torch.set_num_threads(1)
        try:
            import icd_hf
            raise SystemExit("icd_hf is importable: the block did not work")
        except ModuleNotFoundError:
            pass
        from transformers import AutoModel, AutoModelForImageClassification
        folder, x = {str(run.export_dir)!r}, torch.load("x.pt")
        cls = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        assert not type(cls).__module__.startswith("icd_hf"), type(cls).__module__
        with torch.no_grad():
            torch.save({{"cls": cls(pixel_values=x).logits, "base": base(pixel_values=x).logits}}, "remote.pt")
        print("SNIPPET OUTPUT:")
        runpy.run_path("snippet.py")
        """
    )
    proc = _run_python(remote, tmp_path, tmp_path)
    remote_logits = torch.load(tmp_path / "remote.pt")
    assert torch.equal(remote_logits["cls"], expected) and torch.equal(remote_logits["base"], expected)

    # What the snippet printed is the class the in-process model predicts for the processed image.
    from transformers import AutoImageProcessor

    processed = AutoImageProcessor.from_pretrained(run.export_dir)(images=Image.open(tmp_path / "image.png"),
                                                                   return_tensors="pt")
    with torch.no_grad():
        label = CIFAR10_LABELS[run.student(**processed).logits.argmax(-1).item()]
    assert proc.stdout.split("SNIPPET OUTPUT:")[-1].strip() == label

    native = textwrap.dedent(
        f"""
        import torch
        import icd_hf
        torch.set_num_threads(1)
        from transformers import AutoModel, AutoModelForImageClassification
        folder, x = {str(run.export_dir)!r}, torch.load("x.pt")
        cls = AutoModelForImageClassification.from_pretrained(folder).eval()
        base = AutoModel.from_pretrained(folder).eval()
        assert type(cls).__module__.startswith("icd_hf.models"), type(cls).__module__
        with torch.no_grad():
            torch.save({{"cls": cls(pixel_values=x).logits, "base": base(pixel_values=x).logits}}, "native.pt")
        """
    )
    _run_python(native, tmp_path, tmp_path)
    native_logits = torch.load(tmp_path / "native.pt")
    assert torch.equal(native_logits["cls"], expected) and torch.equal(native_logits["base"], expected)


# --- push ---------------------------------------------------------------------------------------------------------


class RecordingApi:
    """Stands in for ``HfApi``: records calls, checks the folder is complete at upload time."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        RecordingApi.calls.append(("create_repo", repo_id, kwargs, self.token))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        RecordingApi.calls.append(("upload_folder", repo_id, folder_path, files, kwargs))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0123abcd")


def _raising_api(exc: BaseException):
    class RaisingApi(RecordingApi):
        def create_repo(self, repo_id, **kwargs):
            raise exc

    return RaisingApi


def _assert_kept(err: HubPublishError, export_dir: Path) -> None:
    assert err.export_dir == export_dir
    assert f"The exported folder is at {export_dir}" in str(err)
    assert f"`icd-hf push {export_dir} --hub_model_id {HUB_ID}`" in str(err)
    assert (export_dir / "model.safetensors").is_file() and (export_dir / "README.md").is_file()


def test_push_uploads_the_export(run, tmp_path, monkeypatch):
    RecordingApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", RecordingApi)
    url = push_to_hub(run.run_dir, HUB_ID, token="hf_test", private=True, out_dir=tmp_path / "export",
                      paper_dir=run.paper_dir, measure_latency=False)
    assert url == f"https://huggingface.co/{HUB_ID}/commit/0123abcd"
    (create, repo_id, kwargs, token), upload = RecordingApi.calls
    assert (create, repo_id, token, kwargs["private"], kwargs["exist_ok"]) == ("create_repo", HUB_ID, "hf_test", True,
                                                                             True)
    assert upload[1:3] == (HUB_ID, str(tmp_path / "export"))
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "results.json"} <= set(
        upload[3])
    assert upload[4]["commit_message"].startswith("Upload resnet8 distilled from resnet20 with icd+kd (icd-hf ")


def test_push_without_token_keeps_the_export(run, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_push, "get_token", lambda: None)
    monkeypatch.setattr(hub_push, "HfApi", _raising_api(AssertionError("the Hub must not be contacted")))
    with pytest.raises(HubNotLoggedInError, match=r"Not logged in .*`hf auth login`.* or set HF_TOKEN") as info:
        push_to_hub(run.run_dir, HUB_ID, out_dir=tmp_path / "export", measure_latency=False)
    _assert_kept(info.value, tmp_path / "export")


@pytest.mark.parametrize(
    "exc, kind, message",
    [
        (OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled."),
         HubUnreachableError, "Could not reach the Hugging Face Hub (HF_HUB_OFFLINE is set)"),
        (httpx2.ConnectError("[Errno -2] Name or service not known"), HubUnreachableError,
         "Could not reach the Hugging Face Hub: [Errno -2]"),
        (HfHubHTTPError("401 Unauthorized", response=httpx2.Response(
            401, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))),
         HubNotLoggedInError, "rejected the token for test-org/resnet8-icd-kd-toy (HTTP 401)"),
        (HfHubHTTPError("500 Server Error", response=httpx2.Response(
            500, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"))),
         HubPublishError, "Upload to test-org/resnet8-icd-kd-toy failed: 500 Server Error"),
    ],
)
def test_push_network_failures_keep_the_export(run, tmp_path, monkeypatch, exc, kind, message):
    monkeypatch.setattr(hub_push, "HfApi", _raising_api(exc))
    with pytest.raises(kind, match=re.escape(message)) as info:
        push_to_hub(run.run_dir, HUB_ID, token="hf_test", out_dir=tmp_path / "export", measure_latency=False)
    assert type(info.value) is kind and info.value.__cause__ is exc
    _assert_kept(info.value, tmp_path / "export")


def test_push_with_real_client_in_offline_mode(run, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnreachableError, match=re.escape("(HF_HUB_OFFLINE is set)")) as info:
        push_to_hub(run.run_dir, HUB_ID, token="hf_not_a_real_token", out_dir=tmp_path / "export",
                    measure_latency=False)
    assert isinstance(info.value.__cause__, OfflineModeIsEnabled)
    _assert_kept(info.value, tmp_path / "export")


def test_push_of_an_exported_folder_rerenders_the_card_for_the_new_id(run, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run.export_dir, folder)
    weights = (folder / "model.safetensors").read_bytes()
    assert prepare_export(folder, "other-org/renamed", paper_dir=run.paper_dir) == folder
    card = ModelCard.load(folder / "README.md")
    assert 'from_pretrained("other-org/renamed", trust_remote_code=True)' in card.text
    assert card.data.to_dict()["model-index"][0]["name"] == "renamed"
    assert "CPU latency, batch 1" in card.text  # the latency measured at export is kept
    assert (folder / "model.safetensors").read_bytes() == weights
    assert json.loads((folder / "results.json").read_text())["hub_export"]["hub_model_id"] == "other-org/renamed"


def test_push_rejects_invalid_id_before_exporting(run, tmp_path):
    with pytest.raises(ValueError, match="exactly one '/'"):
        push_to_hub(run.run_dir, "no-namespace", token="hf_test", out_dir=tmp_path / "export")
    assert not (tmp_path / "export").exists()


# --- command line -------------------------------------------------------------------------------------------------


def test_cli_export_push_dry_run_and_errors(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub_push, "HfApi", _raising_api(AssertionError("the Hub must not be contacted")))
    out = tmp_path / "cli-export"
    assert main(["export", str(run.run_dir), "--out", str(out), "--no_latency", "--paper_dir", str(run.paper_dir)]) == 0
    assert is_exported_folder(out) and f"Exported {run.run_dir} to {out}" in capsys.readouterr().out
    assert main(["export", str(run.run_dir), "--out", str(out), "--no_latency"]) == 2
    assert "is not empty; pass overwrite=True (--overwrite)" in capsys.readouterr().err

    assert main(["push", str(out), "--hub_model_id", HUB_ID, "--dry_run"]) == 0
    listing = capsys.readouterr().out
    assert f"Dry run: would upload {out} to https://huggingface.co/{HUB_ID}:" in listing
    assert re.search(r"^  model\.safetensors  \(\d+ bytes\)$", listing, re.M) and "  README.md  (" in listing

    assert main(["push", str(run.run_dir), "--hub_model_id", "a/b/c", "--no_latency"]) == 2
    assert "icd-hf push: error: Invalid hub_model_id 'a/b/c'" in capsys.readouterr().err

    monkeypatch.setattr(hub_push, "get_token", lambda: None)
    assert main(["push", str(out), "--hub_model_id", HUB_ID]) == 1
    err = capsys.readouterr().err
    assert "icd-hf push: error: Not logged in" in err and f"icd-hf push {out} --hub_model_id {HUB_ID}" in err


def test_recipe_push_is_the_cli(run, monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["push.py", str(run.export_dir), "--hub_model_id", "bad id"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "recipes" / "push.py"), run_name="__main__")
    assert exit_info.value.code == 2
    assert "icd-hf push: error: Invalid hub_model_id 'bad id'" in capsys.readouterr().err


def test_dataset_hub_id_sources():
    from icd_hf.hub.card import dataset_hub_id

    assert dataset_hub_id({"name": "cifar100", "source": "cifar100-python:/data/cifar-100-python"}) == (
        "uoft-cs/cifar100")  # local pickles of a known dataset
    assert dataset_hub_id({"name": "mine", "source": "imagefolder:/data/mine"}) is None
    assert dataset_hub_id({"name": "x", "hub_id": "org/x"}) == "org/x"
    assert dataset_hub_id({"name": "x", "source": "org/y"}) == "org/y"


def test_example_cards_are_up_to_date():
    from icd_hf.evaluation.reports import discover, stale

    report = discover(REPO_ROOT / "benchmarks" / "reports", REPO_ROOT)["quickstart"]
    examples = sorted((REPO_ROOT / "model_cards" / "examples").glob("*/README.md"))
    assert len(examples) == 2
    assert [s for s in stale(report) if "model_cards" in s] == [], "run python benchmarks/report.py collect quickstart"
    example = REPO_ROOT / "model_cards" / "examples" / "digits__wrn_16_2__resnet8__icd+kd"
    card = ModelCard.load(example / "README.md")
    measured = json.loads((example / "results.json").read_text())["metrics"]["top1"]
    assert card.data.eval_results[0].metric_value == pytest.approx(measured, abs=1e-4)  # the quick-start run
