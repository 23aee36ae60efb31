"""The model zoo: registry, architectures (parameter counts, feature shapes), outputs, Auto classes, timm wrapper."""

from __future__ import annotations

import functools

import pytest
import timm
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from icd_hf.models import (
    MODEL_CLASSES,
    DistillationModelOutput,
    ResNet50CifarConfig,
    ResNetCifarConfig,
    TimmBackboneConfig,
    TimmBackboneForImageClassification,
    WideResNetConfig,
    WideResNetForImageClassification,
    create_model,
    is_model,
    list_models,
    load_model,
    register_model,
)
from icd_hf.models.registry import _MODEL_FACTORIES

# Exact parameter counts with 100 classes. They were checked against an inline copy of the RepDistiller
# `models/` code (state-dict keys, shapes and outputs identical); the published figures are tested separately.
EXACT_PARAMS = {
    "wrn_40_2": 2_255_156,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "wrn_16_1": 180_916,
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "vgg8": 3_965_028,
    "vgg11": 9_277_284,
    "vgg13": 9_462_180,
    "vgg16": 14_774_436,
    "vgg19": 20_086_692,
    "mobilenetv2": 812_836,
    "shufflenetv1": 949_258,
    "shufflenetv2": 1_355_528,
    "resnet50": 23_705_252,
}

# Figures published with the CRD benchmark / the papers using it (millions, CIFAR-100 heads).
PUBLISHED_PARAMS_M = {
    "wrn_40_2": 2.26,
    "wrn_16_2": 0.70,
    "wrn_40_1": 0.57,
    "resnet8x4": 1.23,
    "resnet32x4": 7.43,
    "resnet56": 0.86,
    "resnet110": 1.73,
    "resnet20": 0.28,
    "resnet32": 0.47,
    "vgg13": 9.46,
    "vgg8": 3.96,
    "mobilenetv2": 0.81,
    "shufflenetv1": 0.95,
    "shufflenetv2": 1.36,
    "resnet50": 23.7,
}

# (C, H, W) of hidden_states for 32x32 inputs: RepDistiller's feature lists without the pooled vector.
HIDDEN_SHAPES = {
    "wrn_40_2": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8)],
    "wrn_16_1": [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)],
    "resnet56": [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)],
    "resnet32x4": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8)],
    "vgg13": [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4)],
    "mobilenetv2": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2)],
    "shufflenetv1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4)],
    "shufflenetv2": [(24, 32, 32), (116, 16, 16), (232, 8, 8), (464, 4, 4)],
    "resnet50": [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8), (2048, 4, 4)],
}


@functools.cache
def _model(name: str, num_classes: int = 100) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes).eval()


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_exactly_the_zoo():
    assert set(list_models()) == set(EXACT_PARAMS)
    assert list_models() == sorted(list_models())
    assert list_models("wrn_*") == ["wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"]
    assert is_model("resnet8x4") and not is_model("resnet9")
    assert is_model("timm/resnet18") and is_model("timm/resnet18.a1_in1k") and not is_model("timm/no_such_net")


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_parameter_count_exact(name):
    # built on the meta device: counting needs shapes only, not the (slow) initialisation
    with torch.device("meta"):
        model = create_model(name, num_classes=100)
    assert _n_params(model) == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_parameter_count_matches_published_figure(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=100)
    assert _n_params(model) / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.01)


def test_head_size_follows_num_classes():
    with torch.device("meta"):
        m10, m100 = create_model("resnet8", num_classes=10), create_model("resnet8", num_classes=100)
    # only the 64-d linear head changes: 90 weights rows (64 each) plus 90 biases
    assert _n_params(m100) - _n_params(m10) == 90 * 65
    assert m10.config.num_labels == 10 and len(m10.config.id2label) == 10


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_forward_shapes_and_feature_consistency(name):
    model = _model(name)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
        # the feature path must not change the prediction (checked on the small models, to keep the suite fast)
        if EXACT_PARAMS[name] < 2_000_000:
            plain = model(pixel_values=x)
            assert plain.hidden_states is None and plain.preact_hidden_states is None and plain.loss is None
            assert torch.equal(plain.logits, out.logits) and torch.equal(plain.pooler_output, out.pooler_output)
    assert isinstance(out, DistillationModelOutput)
    assert out.logits.shape == (2, 100)
    pooled = out.pooler_output
    assert pooled.ndim == 2 and pooled.shape[0] == 2
    # the logits are the linear head applied to pooler_output
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.testing.assert_close(head(pooled), out.logits)
    hidden, preact = out.hidden_states, out.preact_hidden_states
    assert len(hidden) == len(preact) >= 4
    assert all(h.shape == p.shape and h.shape[0] == 2 and h.ndim == 4 for h, p in zip(hidden, preact))
    if name in HIDDEN_SHAPES:
        assert [tuple(h.shape[1:]) for h in hidden] == HIDDEN_SHAPES[name]
    if name.startswith("wrn"):
        # pre-activation net: stage outputs are raw sums; preact is the BN in front of the next ReLU
        assert torch.equal(hidden[0], preact[0])
        torch.testing.assert_close(preact[-1], model.bn1(hidden[-1]))
        torch.testing.assert_close(pooled, F.relu(preact[-1]).mean(dim=(2, 3)))
    elif name == "mobilenetv2":
        # linear bottlenecks have no activation: only the stem differs from its pre-activation
        assert torch.equal(F.relu(preact[0]), hidden[0]) and (preact[0] < 0).any()
        assert all(torch.equal(h, p) for h, p in zip(hidden[1:], preact[1:]))
    else:
        # post-activation nets: the hidden map is exactly the ReLU of its pre-activation
        for h, p in zip(hidden, preact):
            assert torch.equal(F.relu(p), h)
        assert any((p < 0).any() for p in preact), "pre-activations should keep negative responses"
        if name != "shufflenetv2":  # ShuffleNetV2 pools after an extra 1x1 conv
            torch.testing.assert_close(pooled, hidden[-1].mean(dim=(2, 3)))


def test_loss_is_cross_entropy_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = create_model("wrn_16_1", num_classes=10).train()
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 9, 3])
    out = model(pixel_values=x, labels=labels, output_hidden_states=True)
    logp = out.logits.log_softmax(-1)
    torch.testing.assert_close(out.loss, -logp[torch.arange(4), labels].mean())
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_return_dict_false_gives_tuple():
    model = _model("resnet8")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        as_tuple = model(pixel_values=x, labels=torch.tensor([1, 2]), return_dict=False)
        as_dict = model(pixel_values=x, labels=torch.tensor([1, 2]))
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[1], as_dict.logits)


def test_hidden_states_do_not_update_batchnorm_twice():
    # RepDistiller recomputes bn1 for WRN pre-activations, updating running stats twice per step; we must not.
    model = create_model("wrn_16_1", num_classes=10).train()
    model(pixel_values=torch.randn(4, 3, 32, 32), output_hidden_states=True)
    counts = {n: int(b) for n, b in model.named_buffers() if n.endswith("num_batches_tracked")}
    assert set(counts.values()) == {1}, counts


def test_config_output_hidden_states_default():
    model = create_model("resnet8", num_classes=10, output_hidden_states=True).eval()
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, 32, 32))
    assert out.hidden_states is not None and len(out.hidden_states) == 4


def test_reference_initialisation():
    torch.manual_seed(0)
    vgg = create_model("vgg8")
    assert torch.equal(vgg.classifier.bias, torch.zeros(100))
    assert vgg.classifier.weight.std().item() == pytest.approx(0.01, rel=0.05)
    conv = vgg.block4[0]  # 512 -> 512, 3x3: He-normal with fan_out = 9 * 512
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 512)) ** 0.5, rel=0.02)
    wrn = create_model("wrn_40_2")
    assert torch.equal(wrn.fc.bias, torch.zeros(100))
    assert torch.equal(wrn.bn1.weight, torch.ones(128)) and torch.equal(wrn.bn1.bias, torch.zeros(128))
    r50 = create_model("resnet50", zero_init_residual=True, num_blocks=(1, 1, 1, 1))
    assert torch.equal(r50.layer1[0].bn3.weight, torch.zeros(256))
    assert torch.equal(r50.layer1[0].bn1.weight, torch.ones(64))


def test_auto_classes_resolve_to_zoo_classes():
    config = AutoConfig.for_model("icd_wrn", depth=16, widen_factor=1, num_labels=10)
    assert isinstance(config, WideResNetConfig)
    assert type(AutoModel.from_config(config)) is WideResNetForImageClassification
    assert type(AutoModelForImageClassification.from_config(config)) is WideResNetForImageClassification
    for model_class in MODEL_CLASSES:
        config_class = model_class.config_class
        assert isinstance(AutoConfig.for_model(config_class.model_type), config_class)
        assert AutoModel._model_mapping[config_class] is model_class
        assert AutoModelForImageClassification._model_mapping[config_class] is model_class


def test_config_keeps_saved_label_space(tmp_path):
    config = ResNetCifarConfig(num_labels=10, id2label={i: f"c{i}" for i in range(10)})
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert reloaded.num_labels == 10 and reloaded.id2label[3] == "c3"
    assert ResNetCifarConfig().num_labels == 100


def test_unknown_model_lists_known_names():
    with pytest.raises(KeyError) as err:
        create_model("resnet9")
    message = str(err.value)
    assert "resnet9" in message and "wrn_40_2" in message and "shufflenetv2" in message and "timm/" in message


def test_bad_config_values_are_explained():
    with pytest.raises(ValueError, match="6n \\+ 4"):
        WideResNetConfig(depth=15)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ResNetCifarConfig(depth=9)
    with pytest.raises(ValueError, match="block_type"):
        ResNet50CifarConfig(block_type="dense")
    with pytest.raises(ValueError, match="num_labels"):
        TimmBackboneConfig(timm_model_name="resnet18", model_kwargs={"num_classes": 3})


def test_register_model_refuses_a_second_architecture_under_a_taken_name():
    def resnet8(num_classes: int = 100):  # same name, different function
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet8)
    assert _MODEL_FACTORIES["resnet8"].__module__.endswith("modeling_resnet_cifar")


def test_load_model_builds_zoo_names_and_timm_names():
    model = load_model("resnet8", num_classes=7)
    assert model.config.num_labels == 7 and model.config.architecture_name == "resnet8"
    assert load_model("wrn_16_1").config.num_labels == 100


def test_load_model_refuses_label_space_changes(tmp_path):
    model = create_model("resnet8", num_classes=10)
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, num_classes=10)
    assert torch.equal(loaded.fc.weight, model.fc.weight)
    with pytest.raises(ValueError, match="10-class head but num_classes=100"):
        load_model(tmp_path, num_classes=100)
    with pytest.raises(ValueError, match="num_labels"):
        load_model(str(tmp_path), num_labels=100)


# ---- timm wrapper ------------------------------------------------------------------------------------------


def test_timm_wrapper_matches_timm():
    torch.manual_seed(0)
    model = create_model("timm/test_resnet", num_classes=10).eval()
    assert isinstance(model, TimmBackboneForImageClassification)
    assert model.config.architecture_name == "timm/test_resnet" and model.config.num_labels == 10
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
        plain = model(pixel_values=x, labels=torch.tensor([1, 2]))
        reference = model.timm_model
        expected_final, expected_maps = reference.forward_intermediates(x)
        expected_pooled = reference.forward_head(reference.forward_features(x), pre_logits=True)
        expected_logits = reference(x)
    torch.testing.assert_close(out.logits, expected_logits)
    torch.testing.assert_close(plain.logits, expected_logits)
    torch.testing.assert_close(out.pooler_output, expected_pooled)
    assert out.pooler_output.shape == (2, reference.num_features)
    assert len(out.hidden_states) == len(expected_maps) == len(reference.feature_info)
    for h, e, info in zip(out.hidden_states, expected_maps, reference.feature_info):
        torch.testing.assert_close(h, e)
        assert h.shape[1] == info["num_chs"] and h.shape[-1] == 32 // info["reduction"]
    assert out.preact_hidden_states == out.hidden_states
    torch.testing.assert_close(plain.loss, F.cross_entropy(expected_logits, torch.tensor([1, 2])))


def test_timm_wrapper_vit_and_model_kwargs():
    model = create_model("timm/test_vit", num_classes=5, img_size=32, drop_rate=0.0).eval()
    assert model.config.model_kwargs == {"img_size": 32, "drop_rate": 0.0}
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 32, 32), output_hidden_states=True)
    assert out.logits.shape == (2, 5)
    assert all(h.ndim == 4 and h.shape[0] == 2 for h in out.hidden_states)
    assert len(out.hidden_states) == len(model.timm_model.blocks)


def test_timm_unknown_name_is_explained():
    with pytest.raises(ValueError, match="no model 'no_such_net'") as err:
        create_model("timm/no_such_net")
    assert timm.__version__ in str(err.value)


# ---- the zoo template --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflenetv2", "timm/test_resnet"])
def test_timm_style_split_gives_the_forward_outputs(name):
    """forward_features -> forward_head(pre_logits) -> classifier is the forward pass, piece by piece."""
    model = _model(name, 10) if not name.startswith("timm/") else create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True)
        maps = []
        features = model.forward_features(x, maps)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    torch.testing.assert_close(pooled, out.pooler_output)
    torch.testing.assert_close(logits, out.logits)
    assert len(maps) == len(out.hidden_states)
    for (fmap, preact), hidden, hidden_preact in zip(maps, out.hidden_states, out.preact_hidden_states):
        torch.testing.assert_close(fmap, hidden)
        torch.testing.assert_close(preact, hidden_preact)
    if not name.startswith("timm/"):
        assert len(maps) == 1 + model.num_stages
        assert isinstance(model.get_classifier(), (torch.nn.Linear, torch.nn.Sequential))


def test_every_zoo_class_is_discovered_and_exported():
    import icd_hf.models as models

    names = {cls.__name__ for cls in MODEL_CLASSES}
    assert names >= {"WideResNetForImageClassification", "ResNetCifarForImageClassification",
                     "TimmBackboneForImageClassification", "VGGCifarForImageClassification"}
    for cls in MODEL_CLASSES:
        assert getattr(models, cls.__name__) is cls and getattr(models, cls.config_class.__name__) is cls.config_class
        assert cls.__name__ in models.__all__


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_base_model_prefix_names_a_real_attribute(model_class):
    with torch.device("meta"):
        model = model_class(model_class.config_class())
    assert model.base_model_prefix == "" or isinstance(getattr(model, model.base_model_prefix, None), torch.nn.Module)
