"""save_pretrained -> from_pretrained gives bit-identical models, through icd_hf and through trust_remote_code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForImageClassification

from icd_hf.models import MODEL_CLASSES, create_model

REPO_ROOT = Path(__file__).resolve().parents[1]

# One small member of every family (the remote code is per family, not per size).
ROUNDTRIP_MODELS = {
    "wrn_16_1": {},
    "resnet8": {},
    "vgg8": {},
    "mobilenetv2": {},
    "shufflenetv1": {"num_blocks": (1, 1, 1)},
    "shufflenetv2": {"num_blocks": (1, 1, 1)},
    "resnet50": {"num_blocks": (1, 1, 1, 1)},
    "timm/test_resnet": {},
}


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Give BN running statistics non-default values, so a reload that re-initialised them would show."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Every family saved once, with the logits and hidden states they must reproduce."""
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    torch.save(x, root / "input.pt")
    entries = {}
    for name, overrides in ROUNDTRIP_MODELS.items():
        model = _trained_like(create_model(name, num_classes=10, **overrides))
        with torch.no_grad():
            out = model(pixel_values=x, output_hidden_states=True)
        directory = root / name.replace("/", "__")
        model.save_pretrained(directory)
        torch.save({"logits": out.logits, "hidden": list(out.hidden_states)}, directory / "expected.pt")
        entries[name] = (directory, model, out)
    return root, x, entries


def test_saved_folder_holds_auto_map_and_self_contained_code(saved_models):
    _, _, entries = saved_models
    for name, (directory, model, _) in entries.items():
        config = json.loads((directory / "config.json").read_text())
        module = type(model).__module__.rsplit(".", 1)[-1]
        expected_class = f"{module}.{type(model).__name__}"
        assert config["auto_map"]["AutoModel"] == expected_class, name
        assert config["auto_map"]["AutoModelForImageClassification"] == expected_class, name
        assert config["auto_map"]["AutoConfig"].startswith("configuration_"), name
        assert len(config["id2label"]) == 10, name
        for needed in (f"{module}.py", "modeling_common.py", "modeling_outputs.py", "registry.py",
                       "configuration_common.py"):
            assert (directory / needed).is_file(), (name, needed)
        for code in directory.glob("*.py"):
            text = code.read_text()
            assert "from .." not in text and "icd_hf" not in text.replace("icd-hf", ""), code


@pytest.mark.parametrize("name", list(ROUNDTRIP_MODELS))
def test_reload_through_icd_hf_is_bit_exact(saved_models, name):
    _, x, entries = saved_models
    directory, model, out = entries[name]
    loaded = AutoModelForImageClassification.from_pretrained(directory).eval()
    assert type(loaded) is type(model)
    for (key, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(loaded.state_dict().items())):
        assert torch.equal(a, b), key
    with torch.no_grad():
        again = loaded(pixel_values=x, output_hidden_states=True)
    assert torch.equal(again.logits, out.logits)
    assert all(torch.equal(a, b) for a, b in zip(again.hidden_states, out.hidden_states))
    assert loaded.config.num_labels == 10 and loaded.config.architecture_name == model.config.architecture_name


def test_automodel_loads_the_same_class(saved_models):
    _, _, entries = saved_models
    directory, model, _ = entries["resnet8"]
    assert type(AutoModel.from_pretrained(directory)) is type(model)


def test_every_model_class_is_covered():
    covered = {type(create_model(name, num_classes=2, **kw)) for name, kw in ROUNDTRIP_MODELS.items()}
    assert covered == set(MODEL_CLASSES)


_REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, os, sys

    repo = os.path.realpath(sys.argv[1])

    class BlockIcdHf(importlib.abc.MetaPathFinder):
        # icd_hf is installed editable in the venv: refuse it outright, whatever the path finders know
        def find_spec(self, fullname, path=None, target=None):
            if fullname == "icd_hf" or fullname.startswith("icd_hf."):
                raise ModuleNotFoundError(f"icd_hf is blocked in this process ({fullname})")
            return None

    sys.meta_path.insert(0, BlockIcdHf())
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != repo]
    try:
        import icd_hf  # noqa: F401
        raise SystemExit("icd_hf is still importable")
    except ModuleNotFoundError:
        pass

    import torch
    from transformers import AutoModel, AutoModelForImageClassification

    torch.set_num_threads(int(sys.argv[2]))
    root = sys.argv[3]
    x = torch.load(os.path.join(root, "input.pt"))
    report = {}
    for folder in sys.argv[4:]:
        directory = os.path.join(root, folder)
        model = AutoModelForImageClassification.from_pretrained(directory, trust_remote_code=True).eval()
        expected = torch.load(os.path.join(directory, "expected.pt"))
        with torch.no_grad():
            out = model(pixel_values=x, output_hidden_states=True)
        report[folder] = {
            "module": type(model).__module__,
            "output": type(out).__name__,
            "logits_equal": torch.equal(out.logits, expected["logits"]),
            "hidden_equal": len(out.hidden_states) == len(expected["hidden"])
            and all(torch.equal(a, b) for a, b in zip(out.hidden_states, expected["hidden"])),
        }
    base = AutoModel.from_pretrained(os.path.join(root, sys.argv[4]), trust_remote_code=True)
    report["_automodel_module"] = type(base).__module__
    report["_icd_hf_loaded"] = any(m == "icd_hf" or m.startswith("icd_hf.") for m in sys.modules)
    print("REPORT" + json.dumps(report))
    """
)


def test_trust_remote_code_loads_without_icd_hf(saved_models, tmp_path):
    root, _, entries = saved_models
    folders = [directory.name for directory, _, _ in entries.values()]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # private module cache: parallel runs must not share it
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "PYTHONPATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", _REMOTE_SCRIPT, str(REPO_ROOT), str(torch.get_num_threads()), str(root), *folders],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("REPORT"))
    report = json.loads(line[len("REPORT"):])
    assert report.pop("_icd_hf_loaded") is False
    assert report.pop("_automodel_module").startswith("transformers_modules.")
    assert set(report) == set(folders)
    for folder, entry in report.items():
        assert entry["module"].startswith("transformers_modules."), (folder, entry)
        assert entry["output"] == "DistillationModelOutput", (folder, entry)
        assert entry["logits_equal"] and entry["hidden_equal"], (folder, entry)
