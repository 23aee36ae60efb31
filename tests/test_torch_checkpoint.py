"""The standard CIFAR-100 teachers as they are: RepDistiller / mdistiller / ICD (DCD) ``.pth`` files.

Every file here is written by the test: a zoo model saved the way RepDistiller's ``train_teacher.py`` saves it
(``{'model': sd, 'epoch', 'accuracy', 'optimizer'}``), as a bare state dict, and with the accuracy as a tensor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from icd_hf.models import create_model, list_models, load_image_classifier, load_model, recognise_architecture, registry
from icd_hf.models.torch_checkpoint import read_torch_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _trained_like(name: str, num_classes: int, seed: int = 0) -> torch.nn.Module:
    """A zoo model with non-default BatchNorm statistics, as a trained checkpoint has (a load that skipped them
    would change the logits)."""
    torch.manual_seed(seed)
    model = create_model(name, num_classes=num_classes)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.num_batches_tracked.fill_(7)
    return model.eval()


def _repdistiller_file(path: Path, model: torch.nn.Module, *, shape: str = "repdistiller", epoch: int = 240,
                       accuracy: float = 75.61) -> Path:
    """``model`` saved in one of the three shapes the released teachers come in."""
    sd = model.state_dict()
    if shape == "bare":
        payload = sd
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model(pixel_values=torch.randn(2, 3, 32, 32)).logits.sum().backward()
        optimizer.step()
        model.zero_grad()
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        acc = torch.tensor(accuracy) if shape == "tensor_accuracy" else accuracy
        payload = {"epoch": epoch, "model": sd, "accuracy": acc, "optimizer": optimizer.state_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _logits(model: torch.nn.Module, seed: int = 1) -> torch.Tensor:
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(pixel_values=x).logits


# ------------------------------------------------------------------------------------------------ recognition

def test_every_zoo_architecture_is_recognised_from_its_state_dict():
    """Each architecture built once on the meta device (shapes, no memory), with a head of 7 classes."""
    with torch.device("meta"):
        state_dicts = {name: create_model(name, num_classes=7).state_dict() for name in list_models()}
    layouts = defaultdict(list)
    for name, sd in state_dicts.items():
        layouts[tuple((k, tuple(v.shape)) for k, v in sd.items())].append(name)
    assert len(state_dicts) >= 22
    for name, sd in state_dicts.items():
        same = layouts[tuple((k, tuple(v.shape)) for k, v in sd.items())]
        if len(same) == 1:
            assert recognise_architecture(sd) == name
        else:  # identical layouts: recognition must not guess
            with pytest.raises(ValueError, match=f"fits {len(same)} zoo architectures equally"):
                recognise_architecture(sd)


def test_identical_layouts_are_ambiguous_and_the_name_decides(tmp_path):
    def resnet8_twin(num_classes: int = 100, **kwargs):
        return create_model("resnet8", num_classes=num_classes, **kwargs)

    registry.register_model(resnet8_twin)
    try:
        path = _repdistiller_file(tmp_path / "ckpt_epoch_240.pth", _trained_like("resnet8", 100), shape="bare")
        with pytest.raises(ValueError, match=r"fits 2 zoo architectures equally \(resnet8, resnet8_twin: the same "
                                             r"tensor names and shapes\); name the one it holds"):
            load_model(path)
        assert load_model(path, architecture="resnet8").config.architecture_name == "resnet8"
    finally:
        del registry._MODEL_FACTORIES["resnet8_twin"]
    assert recognise_architecture(read_torch_checkpoint(path).state_dict) == "resnet8"


# ------------------------------------------------------------------------------------------------ files

@pytest.mark.parametrize("shape", ["repdistiller", "bare", "tensor_accuracy"])
def test_the_three_file_shapes_load_strictly_with_the_files_logits(shape, tmp_path):
    model = _trained_like("wrn_16_2", 100)
    path = _repdistiller_file(tmp_path / "wrn_16_2_vanilla" / "ckpt_epoch_240.pth", model, shape=shape)
    checkpoint = read_torch_checkpoint(path)
    recorded = shape != "bare"
    assert (checkpoint.epoch, checkpoint.accuracy) == ((240, 75.61) if recorded else (None, None))
    loaded = load_model(path)  # the architecture recognised, the classes read from the head
    assert loaded.config.architecture_name == "wrn_16_2" and loaded.config.num_labels == 100
    assert not loaded.training
    assert torch.equal(_logits(loaded), _logits(model))
    for key, value in model.state_dict().items():  # every tensor, BatchNorm statistics and counters included
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.config.source_checkpoint == {"file": "ckpt_epoch_240.pth", "epoch": 240 if recorded else None,
                                               "accuracy": 75.61 if recorded else None}
    assert torch.equal(_logits(load_image_classifier(path, num_labels=100, role="teacher")), _logits(model))
    from icd_hf.evaluation.loading import load_eval_model  # what the linear-probe and correlation recipes load with

    assert torch.equal(_logits(load_eval_model(path, num_classes=100)), _logits(model))
    with pytest.raises(ValueError, match=r"has a 100-class head but num_classes=10 was requested"):
        load_model(path, num_classes=10)


def test_dataparallel_prefix_and_missing_batchnorm_counters_still_load_strictly(tmp_path):
    model = _trained_like("resnet8", 10)
    sd = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": sd, "epoch": 3}, tmp_path / "old.pth")
    loaded = load_model(tmp_path / "old.pth", architecture="resnet8")
    assert torch.equal(_logits(loaded), _logits(model))


def test_a_pth_student_gets_a_new_head_only_when_asked(tmp_path):
    model = _trained_like("resnet8", 100)
    path = _repdistiller_file(tmp_path / "ckpt.pth", model)
    with pytest.raises(ValueError, match="The teacher .* predicts 100 classes but the dataset has 10"):
        load_image_classifier(path, num_labels=10, role="teacher")
    with pytest.raises(ValueError, match="--ignore_mismatched_sizes true"):
        load_image_classifier(path, num_labels=10)
    student = load_image_classifier(path, num_labels=10, ignore_mismatched_sizes=True)
    assert student.config.num_labels == 10 and student.fc.weight.shape == (10, 64)
    trained = read_torch_checkpoint(path).state_dict
    assert torch.equal(student.state_dict()["conv1.weight"], trained["conv1.weight"])
    # A student trains on: it does not carry the file's epoch and accuracy into its own saved config.
    assert not hasattr(student.config, "source_checkpoint")


def test_mismatch_errors_name_the_nearest_architecture_and_what_differs(tmp_path):
    sd = _trained_like("resnet8", 100).state_dict()
    path = tmp_path / "resnet8.pth"
    torch.save({"model": sd, "epoch": 1}, path)
    with pytest.raises(ValueError, match=r"does not hold a wrn_16_2: .*missing.*Its tensors are those of resnet8: "
                                         r"name that architecture instead"):
        load_model(path, architecture="wrn_16_2")
    with pytest.raises(ValueError, match=r"'resnet9' is not a zoo architecture \(did you mean resnet8"):
        load_model(path, architecture="resnet9")
    edited = {k: v for k, v in sd.items() if k != "layer1.0.conv2.weight"}
    edited["conv1.weight"] = torch.zeros(32, 3, 3, 3)
    edited["extra.weight"] = torch.zeros(3)
    torch.save(edited, tmp_path / "edited.pth")
    with pytest.raises(ValueError) as err:
        load_model(tmp_path / "edited.pth")
    message = str(err.value)
    assert "is none of the zoo architectures; the nearest is resnet8, with 1 tensor(s) of resnet8 missing (e.g. " \
           "layer1.0.conv2.weight); 1 tensor(s) that resnet8 does not have (e.g. extra.weight); 1 of another shape " \
           "(e.g. conv1.weight: [32, 3, 3, 3] in the file, [16, 3, 3, 3] in resnet8)" in message
    assert "\n" not in message


@pytest.mark.parametrize("payload, message", [
    ("text", "is not a PyTorch checkpoint"),
    ({"epoch": 3, "accuracy": 1.0}, "holds a dict with keys 'epoch', 'accuracy' but no state dict under 'model'"),
    ([1, 2], "holds a list, not a state dict"),
    (object, "holds Python objects that torch.load(weights_only=True) will not run"),
])
def test_files_that_are_not_checkpoints_say_so_in_one_line(payload, message, tmp_path):
    path = tmp_path / "x.pth"
    if payload == "text":
        path.write_text("not a checkpoint\n")
    else:
        torch.save({"model": {"w": torch.zeros(1)}, "args": _Options()} if payload is object else payload, path)
    with pytest.raises(ValueError) as err:
        load_model(path)
    assert message in str(err.value) and "\n" not in str(err.value)


class _Options:  # a pickled Python object, as a training script's argparse options would be
    lr = 0.05


def test_files_of_a_save_pretrained_folder_and_folders_of_pth_files(tmp_path):
    model = _trained_like("resnet8", 10)
    model.save_pretrained(tmp_path / "saved")
    for name in ("model.safetensors", "config.json"):
        assert torch.equal(_logits(load_model(tmp_path / "saved" / name)), _logits(model))
    folder = tmp_path / "save" / "models" / "resnet8_vanilla"
    _repdistiller_file(folder / "ckpt_epoch_240.pth", model)
    with pytest.raises(FileNotFoundError, match=r"has no config.json but holds one PyTorch checkpoint: pass the file "
                                                r"itself \('.*ckpt_epoch_240.pth'\), or convert it"):
        load_model(folder)
    _repdistiller_file(folder / "resnet8_best.pth", model)
    with pytest.raises(FileNotFoundError, match=r"holds 2 PyTorch checkpoints \(ckpt_epoch_240.pth, resnet8_best"):
        load_image_classifier(folder, num_labels=10, role="teacher")


# ------------------------------------------------------------------------------------------------ convert

_WITHOUT_ICD_HF = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):  # icd_hf is installed editable: refuse it outright
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "icd_hf":
            raise ModuleNotFoundError(fullname)

sys.meta_path.insert(0, Block())
import torch
from transformers import AutoModelForImageClassification

model = AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
with torch.no_grad():
    torch.save(model(pixel_values=torch.load(sys.argv[2] + "/x.pt")).logits, sys.argv[2] + "/remote.pt")
"""


def test_convert_round_trip_card_and_push(tmp_path, capsys):
    from huggingface_hub import ModelCard
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from icd_hf.cli import main
    from icd_hf.hub import is_exported_folder, prepare_export
    from icd_hf.runs import RunResults

    model = _trained_like("resnet8", 100)
    path = _repdistiller_file(tmp_path / "resnet8_vanilla" / "ckpt_epoch_240.pth", model, shape="tensor_accuracy",
                              accuracy=72.34)
    out = tmp_path / "converted"
    assert main(["convert", str(path), "--out", str(out)]) == 0
    assert f"Converted {path} (resnet8, epoch 240, recorded top-1 72.34) to {out}" in capsys.readouterr().out
    want = _logits(load_model(path))
    assert torch.equal(_logits(AutoModelForImageClassification.from_pretrained(out)), want)
    # Without icd-hf: the folder's own modeling code (trust_remote_code) gives the file's logits too.
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    subprocess.run([sys.executable, "-c", _WITHOUT_ICD_HF, str(out), str(tmp_path)], env=env, cwd=tmp_path,
                   check=True, timeout=300)
    assert torch.equal(torch.load(tmp_path / "remote.pt"), want)
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["0"] == "apple" and config["id2label"]["99"] == "worm"
    assert config["source_checkpoint"]["file"] == "ckpt_epoch_240.pth" and config["source_checkpoint"]["epoch"] == 240
    assert len(config["source_checkpoint"]["sha256"]) == 64
    processor = AutoImageProcessor.from_pretrained(out)
    assert list(processor.image_mean) == [0.5071, 0.4865, 0.4409]  # CIFAR-100's, as icd-hf's runs use
    assert list(processor.image_std) == [0.2673, 0.2564, 0.2762]
    assert processor.size == {"height": 32, "width": 32}
    card = (out / "README.md").read_text()
    for fact in ("converted from `ckpt_epoch_240.pth`", "Epoch recorded in the file: 240",
                 "Top-1 accuracy recorded in the file: 72.34 %", config["source_checkpoint"]["sha256"],
                 'from_pretrained("path/to/this/folder", trust_remote_code=True)', "giakoumoglou2024invariant",
                 "tian2020contrastive"):
        assert fact in card, fact
    assert ModelCard.load(out / "README.md").data.eval_results[0].metric_value == 72.34
    assert is_exported_folder(out) and RunResults.read(out).metrics.top1 == 72.34
    # `icd-hf push` (dry run: no network) publishes the folder with this card, re-rendered for its repository.
    assert prepare_export(out, "org/resnet8-cifar100") == out
    card = (out / "README.md").read_text()
    assert 'from_pretrained("org/resnet8-cifar100", trust_remote_code=True)' in card
    assert "converted from `ckpt_epoch_240.pth`" in card
    assert main(["push", str(out), "--hub_model_id", "org/other", "--dry_run", "--no_latency"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert "Top-1 accuracy recorded in the file: 72.34 %" in (out / "README.md").read_text()


def test_convert_refuses_what_it_cannot_write_truthfully(tmp_path, capsys):
    from icd_hf.cli import main
    from icd_hf.hub.convert import convert_checkpoint

    path = _repdistiller_file(tmp_path / "ckpt.pth", _trained_like("resnet8", 100), shape="bare")
    with pytest.raises(ValueError, match="has a 100-class head but digits has 10 classes"):
        convert_checkpoint(path, tmp_path / "a", dataset="digits")
    with pytest.raises(ValueError, match="pass --image_size, --mean and --std"):
        convert_checkpoint(path, tmp_path / "a", dataset="my-data")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["convert", str(path), "--out", str(tmp_path / "busy"), "--overwrite"]) == 2
    assert "is not empty and is not an earlier icd-hf export" in capsys.readouterr().err
    out = convert_checkpoint(path, tmp_path / "b", dataset="my-data", image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    card = (out / "README.md").read_text()
    assert "Top-1 accuracy recorded in the file: –" in card and "model-index" not in card
    assert json.loads((out / "preprocessor_config.json").read_text())["image_mean"] == [0.5, 0.5, 0.5]


# ------------------------------------------------------------------------------------------------ distillation

def test_distillation_from_pth_teachers_records_the_files(tmp_path):
    from test_recipes import TINY

    from icd_hf.config import load_config
    from icd_hf.experiment import run_experiment

    teacher = _trained_like("resnet8", 10)
    one = _repdistiller_file(tmp_path / "resnet8_vanilla" / "ckpt_epoch_240.pth", teacher, shape="tensor_accuracy",
                             accuracy=55.5)
    cfg = load_config(None, {**TINY, "student": "resnet8", "method": "icd+kd", "teacher_checkpoint": str(one),
                             "output_dir": str(tmp_path / "run")})
    record = run_experiment(cfg)
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["teacher"] == {"name": "resnet8", "num_parameters": teacher.num_parameters(),
                               "path_or_hub_id": str(one), "top1": 55.5,
                               "checkpoint_file": {"file": "ckpt_epoch_240.pth", "epoch": 240, "accuracy": 55.5}}
    assert record.teacher.top1 == 55.5
    # An ensemble: one entry named (NAME=FILE), one recognised (a bare state dict in RepDistiller's folder layout).
    two = _repdistiller_file(tmp_path / "wrn_16_2_vanilla" / "ckpt_epoch_240.pth", _trained_like("wrn_16_2", 10),
                             shape="bare")
    cfg = load_config(None, {**TINY, "student": "resnet8", "method": "kd", "teachers": [f"resnet8={one}", str(two)],
                             "output_dir": str(tmp_path / "ens")})
    run_experiment(cfg)
    data = json.loads((tmp_path / "ens" / "results.json").read_text())
    assert data["teacher"]["name"] == "resnet8+wrn_16_2"
    assert [(t["name"], t["top1"]) for t in data["teachers"]] == [("resnet8", 55.5), ("wrn_16_2", None)]
    assert data["teachers"][0]["checkpoint_file"]["epoch"] == 240 and "checkpoint_file" in data["teachers"][1]


def test_teacher_checkpoint_errors_tell_the_truth(tmp_path, capsys):
    from test_recipes import TINY

    from icd_hf.cli import main
    from icd_hf.config import load_config
    from icd_hf.experiment import check_teacher_sources, load_teachers

    def cfg(**fields):
        return load_config(None, {**TINY, "student": "resnet8", "method": "kd", **fields})

    missing = str(tmp_path / "nope" / "ckpt_epoch_240.pth")
    with pytest.raises(FileNotFoundError) as err:
        check_teacher_sources(cfg(teacher="wrn_16_2", teacher_checkpoint=missing))
    assert "does not exist" in str(err.value) and "--student wrn_16_2 --dataset digits" in str(err.value)
    assert not (ROOT / "recipes" / "configs" / "teachers" / "wrn_16_2.yaml").exists()
    assert "teachers/wrn_16_2.yaml" not in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"recipes/configs/teachers/wrn_40_2.yaml"):
        check_teacher_sources(cfg(teacher="wrn_40_2", teacher_checkpoint=missing))
    assert (ROOT / "recipes" / "configs" / "teachers" / "wrn_40_2.yaml").is_file()
    # An existing file is never "missing": a .pth, and a save_pretrained folder's model.safetensors.
    teacher = _trained_like("resnet8", 10)
    pth = _repdistiller_file(tmp_path / "t" / "ckpt_epoch_240.pth", teacher)
    teacher.save_pretrained(tmp_path / "saved")
    for path in (pth, tmp_path / "saved" / "model.safetensors"):
        loaded = load_teachers(cfg(teacher_checkpoint=str(path)), 10)
        assert torch.equal(_logits(loaded[0]), _logits(teacher))
    with pytest.raises(ValueError, match=r"its architecture must be a zoo name, not 'my_teacher'"):
        check_teacher_sources(cfg(teacher="my_teacher", teacher_checkpoint=str(pth)))
    with pytest.raises(ValueError, match=r"does not hold a wrn_16_2: .*Its tensors are those of resnet8"):
        load_teachers(cfg(teachers=[f"wrn_16_2={pth}", str(tmp_path / "saved")]), 10)
    # The folder that holds the .pth, on the command line: one line that says what to pass.
    capsys.readouterr()
    code = main(["distill", "--teacher_checkpoint", str(tmp_path / "t"), "--dataset", "digits", "--method", "kd",
                 "--student", "resnet8", "--output_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("icd-hf distill: error: The teacher folder") and "\n" not in err, err
    assert "holds one PyTorch checkpoint: pass the file itself" in err
    assert not (tmp_path / "run" / "results.json").exists()


# ------------------------------------------------------------------------------------------------ docs and names

def _readme_teachers() -> dict[str, float]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the standard CIFAR-100 teachers"):]
    section = section[:section.index("\n## ", 5)]
    import re

    return {name: float(top1) for name, top1 in re.findall(r"^\| (\w+) \| `\w+_vanilla` \| ([\d.]+) \|$", section,
                                                          re.M)}


def test_readme_teachers_table_is_the_papers_and_names_the_teacher_configs():
    from icd_hf.paper import default_paper_dir, find_paper_result

    table = _readme_teachers()
    teachers = {p.stem for p in (ROOT / "recipes" / "configs" / "teachers").glob("*.yaml")}
    assert set(table) == teachers and all(name in list_models() for name in table)
    if not default_paper_dir().is_dir():
        pytest.skip("the paper's tables (../shared/paper) are not here")
    assert table == {name: find_paper_result(None, name).teacher_top1 for name in table}


def test_the_converted_card_quotes_a_paper_teachers_published_top1():
    from icd_hf.hub.convert import render_converted_card
    from icd_hf.paper import default_paper_dir
    from icd_hf.runs import ModelRecord, RunMetrics, RunResults

    if not default_paper_dir().is_dir():
        pytest.skip("the paper's tables (../shared/paper) are not here")
    record = RunResults(method="vanilla", student=ModelRecord("wrn_40_2", 2_255_156), metrics=RunMetrics(top1=75.61),
                        dataset={"name": "cifar100", "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3})
    card = str(render_converted_card(record, {"file": "ckpt_epoch_240.pth", "epoch": 240, "sha256": "ab"}))
    assert "Published top-1 of a wrn_40_2 teacher: 75.61 %" in card and "(DCD), arXiv:2407.11802, table 1)" in card


def test_icd_is_findable_as_dcd():
    from icd_hf.hub.card import citations_for, method_description

    assert "Discriminative and Consistent Representation Distillation" in citations_for(["icd"])[0]
    assert "2407.11802" in citations_for(["icd"])[0]
    assert "DCD, Discriminative and Consistent Representation Distillation, arXiv:2407.11802" in \
        method_description("icd")
    readme = (ROOT / "README.md").read_text()
    assert "DCD, Discriminative and Consistent\nRepresentation Distillation" in readme and "2407.11802" in readme
