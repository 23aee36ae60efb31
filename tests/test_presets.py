"""Method presets: every branch of resolve_method and its errors."""

from __future__ import annotations

import pytest

from icd_hf.losses import get_loss_class, list_losses
from icd_hf.losses.presets import LossTerm, MethodSpec, resolve_method


def _weights(spec: MethodSpec) -> dict[str, float]:
    return {t.name: t.weight for t in spec.terms}


def test_vanilla_is_ce_only_without_teacher():
    spec = resolve_method("vanilla")
    assert spec == MethodSpec(ce_weight=1.0, terms=[], name="vanilla")
    assert spec.needs_teacher is False
    assert resolve_method("Vanilla", {"ce_weight": 0.5}).ce_weight == 0.5


def test_kd_alone_uses_the_crd_benchmark_recipe():
    spec = resolve_method("kd")
    assert spec.ce_weight == 0.1 and spec.terms == [LossTerm("kd", 0.9, {})] and spec.needs_teacher


@pytest.mark.parametrize("name", ["icd", "crd", "dkd"])
def test_single_method_is_ce_plus_its_default_weight(name):
    spec = resolve_method(name)
    assert spec.ce_weight == 1.0
    assert _weights(spec) == {name: get_loss_class(name).default_weight}
    assert spec.name == name and spec.needs_teacher


def test_every_registered_loss_resolves_alone_and_with_kd():
    for name in list_losses():
        if name == "kd":
            continue
        assert _weights(resolve_method(name)) == {name: get_loss_class(name).default_weight}
        assert _weights(resolve_method(f"{name}+kd")) == {name: get_loss_class(name).default_weight, "kd": 1.0}


@pytest.mark.parametrize("method", ["crd+kd", "kd+crd", " CRD + KD "])
def test_x_plus_kd_is_ce1_kd1_x_default(method):
    spec = resolve_method(method)
    assert spec.ce_weight == 1.0 and _weights(spec) == {"crd": 0.8, "kd": 1.0}


def test_icd_presets():
    assert (resolve_method("icd").ce_weight, _weights(resolve_method("icd"))) == (1.0, {"icd": 1.0})
    spec = resolve_method("icd+kd")
    assert spec.ce_weight == 1.0 and _weights(spec) == {"icd": 1.0, "kd": 1.0}
    assert [t.name for t in spec.terms] == ["icd", "kd"] and spec.name == "icd+kd"


def test_three_terms_each_keep_their_default():
    assert _weights(resolve_method("crd+icd+kd")) == {"crd": 0.8, "icd": 1.0, "kd": 1.0}


def test_overrides_set_weights_and_hyper_parameters():
    spec = resolve_method(
        "icd+kd",
        {"ce_weight": 1.0, "icd": {"weight": 2.0, "invariance_weight": 0.3}, "KD": {"temperature": 2}},
    )
    assert spec.ce_weight == 1.0
    assert spec.terms == [LossTerm("icd", 2.0, {"invariance_weight": 0.3}), LossTerm("kd", 1.0, {"temperature": 2})]
    assert resolve_method("kd", {"ce_weight": 0.0}).ce_weight == 0.0


def test_overrides_for_losses_outside_the_method_are_ignored():
    spec = resolve_method("kd", {"crd": {"num_data": 50000}, "icd": {"weight": 3.0}})
    assert spec.terms == [LossTerm("kd", 0.9, {})]


def test_overrides_do_not_leak_between_calls():
    overrides = {"icd": {"weight": 2.0, "feat_dim": 64}}
    resolve_method("icd", overrides)
    assert overrides == {"icd": {"weight": 2.0, "feat_dim": 64}}


def test_unknown_method_lists_known_ones():
    with pytest.raises(KeyError, match="Known: vanilla, .*icd.*kd"):
        resolve_method("icdd")
    with pytest.raises(KeyError, match="foo"):
        resolve_method("foo+kd")


@pytest.mark.parametrize(
    ("method", "overrides", "error", "match"),
    [
        ("", None, ValueError, "non-empty"),
        ("icd++kd", None, ValueError, "empty component"),
        ("kd+kd", None, ValueError, "twice"),
        ("vanilla+kd", None, ValueError, "cannot be combined"),
        ("icd", {"icdd": {"weight": 1}}, ValueError, "Unknown loss override key 'icdd'"),
        ("icd", {"icd": {"invariance_wieght": 0.1}}, ValueError, r"invariance_wieght.*Accepted: .*invariance_weight"),
        ("icd", {"icd": 2.0}, TypeError, "must be a mapping"),
        ("icd", {"icd": {"weight": "high"}}, TypeError, "icd.weight must be a number"),
        ("icd", {"ce_weight": None}, TypeError, "ce_weight must be a number"),
        ("icd", ["icd"], TypeError, "mapping"),
        ("kd", {"crd": {"nce_kk": 5}}, ValueError, "nce_kk"),  # checked even when unused: typos fail early
    ],
)
def test_malformed_input_is_a_clear_error(method, overrides, error, match):
    with pytest.raises(error, match=match):
        resolve_method(method, overrides)
