"""Any transformers / timm image classifier as teacher or student (issue 14), tested offline.

Tiny random ViT, ResNet, ConvNeXt and MobileNetV2 models are saved locally, each with an image processor of its
own size and normalisation, next to a small image folder with no test split: distillation runs a few steps with
them as teacher and as student, with the losses that read logits, pooled features and stage maps, and the
exported student loads with ``transformers.pipeline``.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    ConvNextConfig,
    ConvNextForImageClassification,
    MobileNetV2Config,
    MobileNetV2ForImageClassification,
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    pipeline,
)

from icd_hf.cli_utils import run_from_argv
from icd_hf.config import load_config
from icd_hf.data import MissingSplitError, build_datasets, split_off_validation
from icd_hf.distiller import Distiller
from icd_hf.experiment import prepare_experiment, run_experiment
from icd_hf.input_spec import input_spec_of, spec_from_processor_config
from icd_hf.models import create_model
from icd_hf.models.modeling_hf_adapter import DistillationAdapter, InputAdapter, InputSpec, unwrap_model

CLASSES = ["blue", "green", "red"]
COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}
# family -> (model class, config, processor size, processor mean/std): sizes and statistics all differ, so
# every pair needs the per-model resize + renormalisation of one batch.
FAMILIES = {
    "vit": (ViTForImageClassification, lambda: ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=8), 32, 0.5),
    "resnet": (ResNetForImageClassification, lambda: ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]), 48, None),
    "convnext": (ConvNextForImageClassification, lambda: ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]), 40, None),
    "mobilenet_v2": (MobileNetV2ForImageClassification, lambda: MobileNetV2Config(
        depth_multiplier=0.25, image_size=24, classifier_dropout_prob=0.0), 24, 0.5),
}
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
TINY_RUN = {
    "max_eval_samples": 8,
    "training.max_steps": 3,
    "training.per_device_train_batch_size": 8,
    "training.per_device_eval_batch_size": 8,
    "training.eval_strategy": "no",
    "training.save_strategy": "no",
    "training.logging_steps": 1,
    "training.dataloader_num_workers": 0,
    "training.use_cpu": True,
    "training.disable_tqdm": True,
    "training.report_to": "none",
    "resume": "never",
}


def _save_family(folder: Path, family: str, num_labels: int = 3, names: list[str] | None = None) -> Path:
    model_class, make_config, size, stat = FAMILIES[family]
    torch.manual_seed(0)
    config = make_config()
    config.num_labels = num_labels
    names = names if names is not None else (CLASSES if num_labels == 3 else [f"c{i}" for i in range(num_labels)])
    config.id2label, config.label2id = dict(enumerate(names)), {n: i for i, n in enumerate(names)}
    model_class(config).save_pretrained(folder)
    mean, std = ([stat] * 3, [stat] * 3) if stat is not None else IMAGENET
    ViTImageProcessor(size={"height": size, "width": size}, image_mean=mean, image_std=std).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_models")
    return {family: _save_family(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """``<class>/<i>.png``, 40x40, coloured by class plus noise; no test split (one is split off)."""
    root = tmp_path_factory.mktemp("flowers")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir()
        for i in range(12):
            pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _cfg(tmp_path: Path, image_folder: Path, **fields):
    return load_config(None, {**TINY_RUN, "dataset": str(image_folder), "output_dir": str(tmp_path), **fields})


# ------------------------------------------------------------------------------------------------- adapter


@pytest.mark.parametrize("family", list(FAMILIES))
def test_adapter_gives_logits_pooled_feature_and_stage_maps(family, hf_models):
    loaded = DistillationAdapter(FAMILIES[family][0].from_pretrained(hf_models[family])).eval()
    head = loaded.model.classifier
    head = head[-1] if isinstance(head, torch.nn.Sequential) else head
    out = loaded(pixel_values=torch.randn(2, 3, 32, 32), output_hidden_states=True, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.loss.ndim == 0
    assert out.pooler_output.shape == (2, head.in_features)  # the penultimate vector the head reads
    # The head applied to the pooled vector gives the logits: it is the same feature, not a look-alike.
    torch.testing.assert_close(head(out.pooler_output), out.logits)
    if family == "vit":
        assert loaded.hidden_states_are_maps is False
        assert [tuple(h.shape) for h in out.hidden_states] == [(2, 32, 1, 1)] * 3  # CLS token of each layer
        assert torch.equal(out.preact_hidden_states[0], out.hidden_states[0])
    else:
        assert loaded.hidden_states_are_maps is True
        shapes = [tuple(h.shape[1:]) for h in out.hidden_states]
        assert len(shapes) == 5  # stem + 4 stages, for per-stage (ResNet) and per-block (MobileNetV2) models alike
        sides = [s[-1] for s in shapes[1:]]
        assert sides == sorted(sides, reverse=True) and len(set(sides)) == 4


def test_input_adapter_resizes_and_renormalises_one_batch():
    data_mean, data_std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    raw = torch.rand(2, 3, 40, 40)
    batch = (raw - torch.tensor(data_mean).view(1, 3, 1, 1)) / torch.tensor(data_std).view(1, 3, 1, 1)
    adapter = InputAdapter(data_mean, data_std, InputSpec(20, tuple(IMAGENET[0]), tuple(IMAGENET[1])))
    out = adapter(batch)
    expected = torch.nn.functional.interpolate(raw, size=(20, 20), mode="bilinear", antialias=True)
    expected = (expected - torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)) / torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    assert out.shape == (2, 3, 20, 20)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    same = InputAdapter(data_mean, data_std, InputSpec(None, data_mean, data_std))
    assert same.is_identity and same(batch) is batch


def test_input_spec_from_processors_runs_and_configs(hf_models, tmp_path):
    # A ConvNeXt-style processor (shortest edge then centre crop) feeds its crop size; rescale-only means [0, 1].
    spec = spec_from_processor_config(
        {"do_resize": True, "size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": {"height": 224,
         "width": 224}, "do_normalize": False}, "test")
    assert (spec.image_size, spec.mean, spec.std) == (224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert input_spec_of(str(hf_models["resnet"])).image_size == 48
    assert input_spec_of(str(hf_models["resnet"])).mean == pytest.approx(IMAGENET[0])
    assert input_spec_of(str(hf_models["resnet"]), image_size=64).image_size == 64  # the override wins
    # A run folder without a processor: its results.json says how it was trained.
    (tmp_path / "run" / "student").mkdir(parents=True)
    (tmp_path / "run" / "results.json").write_text(json.dumps(
        {"method": "vanilla", "student": {"name": "resnet8"}, "metrics": {"top1": 50.0},
         "dataset": {"mean": [0.1] * 3, "std": [0.2] * 3, "image_size": 32}, "config": {"image_size": None}}))
    assert input_spec_of(str(tmp_path / "run")) == InputSpec(32, (0.1,) * 3, (0.2,) * 3, str(tmp_path / "run" /
                                                                                               "results.json"))
    # Nothing known (a zoo name): the data's size and statistics.
    assert input_spec_of("resnet8", create_model("resnet8", num_classes=3)) == InputSpec()


@pytest.mark.parametrize("method", ["at", "fsp", "nst"])
def test_spatial_losses_refuse_a_vit_with_a_clear_error(method, hf_models):
    vit = ViTForImageClassification.from_pretrained(hf_models["vit"])
    resnet = ResNetForImageClassification.from_pretrained(hf_models["resnet"])
    with pytest.raises(ValueError, match=f"Loss '{method}' compares spatial feature maps, but the teacher has none"):
        Distiller(resnet, vit, method)


def test_hf_pair_distillation_loss_decreases(hf_models):
    """A ViT teacher at 32 px with its own statistics, a MobileNetV2 student at 24 px: ICD+KD trains."""
    from icd_hf.models.modeling_hf_adapter import adapt_model

    torch.manual_seed(0)
    data = ((0.4,) * 3, (0.25,) * 3)
    teacher = adapt_model(ViTForImageClassification.from_pretrained(hf_models["vit"]),
                          input_spec_of(str(hf_models["vit"])), *data)
    student = adapt_model(MobileNetV2ForImageClassification.from_pretrained(hf_models["mobilenet_v2"]),
                          input_spec_of(str(hf_models["mobilenet_v2"])), *data)
    distiller = Distiller(student, teacher, "icd+kd", image_size=40).train()
    assert distiller.student_spec.hidden_shapes[0][-1] == 24 // 4  # the student ran at its 24 px (40 // 4: no)
    optimizer = torch.optim.Adam([p for p in distiller.parameters() if p.requires_grad], lr=1e-3)
    x, y = torch.randn(16, 3, 40, 40), torch.arange(16) % 3
    losses = []
    for _ in range(20):
        loss = distiller(pixel_values=x, labels=y).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0] and losses[-1] < min(losses[:5]), losses


# -------------------------------------------------------------------------------------------- end to end

PAIRS = [
    ("vit", "mobilenet_v2", "icd+kd"),
    ("resnet", "convnext", "kd"),
    ("convnext", "vit", "crd"),
    ("mobilenet_v2", "resnet", "at"),
    ("resnet", "resnet8", "icd+kd"),  # a Hub-style teacher into a zoo student
]


@pytest.mark.parametrize("teacher, student, method", PAIRS, ids=lambda v: v)
def test_distil_between_transformers_models_and_export_for_pipeline(
    teacher, student, method, hf_models, image_folder, tmp_path
):
    student_source = str(hf_models[student]) if student in hf_models else student
    cfg = _cfg(tmp_path / "run", image_folder, teacher=str(hf_models[teacher]), student=student_source,
               method=method)
    assert cfg.teacher_checkpoint == str(hf_models[teacher])  # --teacher <folder> is the checkpoint
    results = run_experiment(cfg)
    assert results.dataset["num_train"] == 32 and results.dataset["num_classes"] == 3  # 4 split off
    assert results.dataset["eval_split"] == "0.1 of train (seed 0)"
    exported = tmp_path / "run" / "student"
    processor = json.loads((exported / "preprocessor_config.json").read_text())
    expected_size = FAMILIES[student][2] if student in FAMILIES else 40  # a zoo student runs at the batch size
    assert processor["size"] == {"height": expected_size, "width": expected_size}
    if student in FAMILIES:
        # The export is the plain transformers model: pipeline() needs no icd-hf and no remote code.
        assert json.loads((exported / "config.json").read_text()).get("auto_map") is None
        classify = pipeline("image-classification", model=str(exported), device="cpu")
        predictions = classify(Image.open(image_folder / "red" / "0.png"))
        assert {p["label"] for p in predictions} == set(CLASSES)
    if teacher == "vit":
        # The Hub export of a transformers student: no remote code needed, each model timed at its own size.
        from icd_hf.hub import export_for_hub

        out = export_for_hub(tmp_path / "run", tmp_path / "hub")
        record = json.loads((out / "results.json").read_text())["hub_export"]
        assert record["latency"]["image_size"] == FAMILIES[student][2] and record["latency"]["teacher_ms"] > 0
        assert pipeline("image-classification", model=str(out), device="cpu")(
            Image.open(image_folder / "blue" / "1.png"))[0]["label"] in CLASSES


def test_zoo_and_timm_models_as_teachers_at_their_own_resolution(image_folder, tmp_path):
    """timm/test_vit only runs at its 160-px patch grid: trained on 40-px images and then used as a teacher,
    it gets the batch upsampled to 160 while the zoo student keeps 40."""
    teacher_run = tmp_path / "teacher"
    code = run_from_argv(
        ["--student", "timm/test_vit", "--dataset", str(image_folder), "--output_dir", str(teacher_run),
         *[f"--{k}={v}" for k, v in TINY_RUN.items()]],
        prog="train_teacher.py", force_method="vanilla",
    )
    assert code == 0
    processor = json.loads((teacher_run / "student" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 160, "width": 160}
    exp = prepare_experiment(_cfg(tmp_path / "kd", image_folder, teacher=str(teacher_run), student="resnet8",
                                  method="kd"))
    distiller = exp.trainer.distiller
    assert isinstance(distiller.teacher, DistillationAdapter) and distiller.teacher.input_adapter.image_size == 160
    assert distiller.student is exp.student  # a zoo student at the batch's size and statistics: not wrapped
    exp.trainer.train()


def test_timm_teacher_names_need_trained_weights_for_this_label_space(image_folder, tmp_path, monkeypatch):
    import huggingface_hub.constants

    # Offline, as CI is: the label-space check needs no download (online, an unreachable Hub is said first).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="randomly initialised timm model"):
        prepare_experiment(_cfg(tmp_path, image_folder, teacher="timm/resnet18", student="resnet8", method="kd"))
    # Pretrained ImageNet weights predict 1000 classes, not this dataset's 3 (checked before any download).
    with pytest.raises(ValueError, match="predicts 1000 classes but the dataset has 3.*Fine-tune it"):
        prepare_experiment(_cfg(tmp_path, image_folder, teacher="timm/resnet18.a1_in1k", student="resnet8",
                                method="kd"))


# ----------------------------------------------------------------------------------------- fine-tuning


def test_train_teacher_fine_tunes_a_pretrained_checkpoint_with_a_new_head(image_folder, tmp_path):
    pretrained = _save_family(tmp_path / "pretrained", "resnet", num_labels=5)
    source = ResNetForImageClassification.from_pretrained(pretrained)
    overrides = {"student": str(pretrained), "method": "vanilla"}
    with pytest.raises(ValueError, match="5-class head but the dataset has 3 classes. Pass --ignore_mismatched"):
        prepare_experiment(_cfg(tmp_path / "no_flag", image_folder, **overrides))
    cfg = load_config(Path(__file__).resolve().parents[1] / "recipes/configs/hf/finetune_teacher.yaml",
                      {**TINY_RUN, **overrides, "dataset": str(image_folder), "output_dir": str(tmp_path / "ft")})
    exp = prepare_experiment(cfg)
    tuned = unwrap_model(exp.student)
    assert tuned.config.num_labels == 3 and tuned.config.id2label == dict(enumerate(CLASSES))
    # The backbone is the pretrained one; only the head is new.
    embed = "resnet.embedder.embedder.convolution.weight"
    assert torch.equal(tuned.state_dict()[embed], source.state_dict()[embed])
    assert exp.trainer.args.optim == "adamw_torch" and exp.trainer.args.learning_rate == 5e-5
    exp.trainer.train()
    exp.trainer.save_student(str(tmp_path / "ft" / "student"))
    # The fine-tuned run folder is a teacher for distillation; the original 5-class checkpoint is not.
    run_experiment(_cfg(tmp_path / "kd", image_folder, teacher=str(tmp_path / "ft"), student="resnet8", method="kd"))
    with pytest.raises(ValueError, match="teacher .* predicts 5 classes but the dataset has 3"):
        prepare_experiment(_cfg(tmp_path / "bad", image_folder, teacher=str(pretrained), student="resnet8",
                                method="kd"))


def test_permuted_teacher_labels_are_refused(image_folder, tmp_path):
    shuffled = _save_family(tmp_path / "shuffled", "resnet", names=["red", "green", "blue"])
    with pytest.raises(ValueError, match="another order"):
        prepare_experiment(_cfg(tmp_path / "run", image_folder, teacher=str(shuffled), student="resnet8",
                                method="kd"))


# ---------------------------------------------------------------------------------------------- datasets


def test_validation_is_split_off_with_a_fixed_seed(image_folder):
    with pytest.raises(MissingSplitError, match="Set validation_size"):
        build_datasets(image_folder)
    train, val, info = build_datasets(image_folder, validation_size=0.25, train_augment=False)
    again, val_again, _ = build_datasets(image_folder, validation_size=0.25, train_augment=False)
    paths = [r["image"]["path"] for r in val.with_format(None).cast_column("image", datasets.Image(decode=False))]
    train_paths = {r["image"]["path"] for r in
                   train.with_format(None).cast_column("image", datasets.Image(decode=False))}
    assert len(paths) == 9 and len(train_paths) == 27 and not train_paths & set(paths)
    assert val_again.with_format(None)["index"] == list(range(9)) == val.with_format(None)["index"]
    assert sorted(val.with_format(None)["label"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # stratified
    assert len(again) == len(train) and info.eval_split == "0.25 of train (seed 0)"
    assert train[0]["pixel_values"].shape == (3, 40, 40)


def test_saved_dataset_with_named_columns_and_string_labels(tmp_path):
    rng = np.random.default_rng(1)
    names = ["cat", "dog", "cat", "owl", "dog", "owl", "cat", "dog"]
    ds = datasets.Dataset.from_dict(
        {"picture": [Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for _ in names],
         "species": names, "photographer": ["x"] * len(names)},
        features=datasets.Features({"picture": datasets.Image(), "species": datasets.Value("string"),
                                    "photographer": datasets.Value("string")}),
    )
    ds.save_to_disk(tmp_path / "single")  # one Dataset: the train split, validation split off
    with pytest.raises(ValueError, match="no label column.*pass label_column"):
        build_datasets(tmp_path / "single", validation_size=2)
    train, val, info = build_datasets(
        tmp_path / "single", image_column="picture", label_column="species", validation_size=2,
        train_augment=False)
    assert info.class_names == ["cat", "dog", "owl"] and (len(train), len(val)) == (6, 2)  # sorted string labels
    labels = list(train.with_format(None)["label"]) + list(val.with_format(None)["label"])
    assert sorted(labels) == sorted(["cat", "dog", "owl"].index(n) for n in names)
    assert train[0]["pixel_values"].shape == (3, 16, 16)


def test_eval_split_with_fewer_classes_is_relabelled(tmp_path):
    for split, classes in (("train", ["a", "b", "c"]), ("test", ["b", "c"])):
        for name in classes:
            (tmp_path / split / name).mkdir(parents=True)
            pixels = np.random.default_rng(ord(name)).integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / split / name / "0.png")
    train, test, info = build_datasets(tmp_path, train_augment=False)
    assert info.class_names == ["a", "b", "c"] and test.with_format(None)["label"] == [1, 2]


def test_split_off_validation_rejects_bad_sizes(image_folder):
    train, _, _ = build_datasets(image_folder, validation_size=0.25)
    with pytest.raises(ValueError, match="validation_size must be"):
        split_off_validation(train.with_format(None), 1.5)
