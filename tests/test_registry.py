"""Registries and module specs: configuration mistakes are one clear LegonnError."""

from __future__ import annotations

import pytest

from legonn.nn.chain import Chain, ModuleSpec, build_module
from legonn.errors import LegonnError
from legonn.registry import FRONTENDS, INGESTORS, MODULES, Registry

TINY = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1}
ENC_INPUT = {"type": "conv2d", "input_dim": 8}


def test_known_names():
    assert {"lego_encoder", "lego_decoder", "transformer_encoder", "transformer_decoder"} <= set(MODULES.names())
    assert set(INGESTORS.names()) >= {"wemb", "beamconv", "hidden"}
    assert set(FRONTENDS.names()) >= {"conv2d", "embedding"}


@pytest.mark.parametrize("typo,meant", [("lego_encodr", "lego_encoder"), ("lego_decoder_", "lego_decoder"), ("transformer_encodr", "transformer_encoder")])
def test_unknown_module_type_suggests_the_closest(typo, meant):
    with pytest.raises(LegonnError) as exc:
        build_module(typo, {})
    message = str(exc.value)
    assert f"'{typo}'" in message
    assert f"did you mean '{meant}'" in message
    assert "\n" not in message


def test_unknown_type_through_a_chain_spec():
    with pytest.raises(LegonnError, match="did you mean 'lego_encoder'"):
        Chain.from_specs([{"name": "enc", "type": "lego_encodr", "conf": {}}])


def test_unknown_type_with_nothing_close_lists_the_known_ones():
    with pytest.raises(LegonnError) as exc:
        MODULES.get("zzzz")
    assert "did you mean" not in str(exc.value)
    for name in MODULES.names():
        assert name in str(exc.value)


def test_misspelt_module_argument():
    with pytest.raises(LegonnError) as exc:
        build_module("lego_encoder", {**TINY, "input": ENC_INPUT, "d_modle": 16})
    message = str(exc.value)
    assert "d_modle" in message and "d_model" in message and "lego_encoder" in message


def test_misspelt_input_layer_argument():
    with pytest.raises(LegonnError) as exc:
        build_module("lego_encoder", {**TINY, "input": {"type": "conv2d", "input_dims": 8}})
    assert "input_dims" in str(exc.value) and "input_dim" in str(exc.value).replace("input_dims", "")


def test_misspelt_ingestor_argument():
    with pytest.raises(LegonnError) as exc:
        build_module("lego_decoder", {**TINY, "vocab_size": 9, "ingestor": {"type": "wemb", "vocab_size": 9, "RF": 3}})
    assert "RF" in str(exc.value) and "rf" in str(exc.value)


def test_misspelt_olc_argument():
    with pytest.raises(LegonnError) as exc:
        build_module("lego_encoder", {**TINY, "input": ENC_INPUT, "olc": {"factr": 2, "max_len": 10}})
    assert "factr" in str(exc.value)


@pytest.mark.parametrize(
    "input_type,meant", [("conv2", "conv2d"), ("embeding", "embedding"), ("wembb", "wemb"), ("beam_conv", "beamconv")]
)
def test_misspelt_input_type_suggests_the_closest(input_type, meant):
    """Front-ends and ingestors are both valid inputs: the suggestion considers both."""
    with pytest.raises(LegonnError) as exc:
        build_module("lego_encoder", {**TINY, "input": {"type": input_type, "input_dim": 8}})
    assert f"did you mean '{meant}'" in str(exc.value)


def test_misspelt_ingestor_type():
    with pytest.raises(LegonnError, match="did you mean 'beamconv'"):
        build_module("lego_decoder", {**TINY, "vocab_size": 9, "ingestor": {"type": "beamcnv", "vocab_size": 9}})


@pytest.mark.parametrize(
    "conf",
    [
        {**TINY},  # no input layer
        {**TINY, "input": {"input_dim": 8}},  # input layer without a type
        {**TINY, "input": ENC_INPUT, "olc": {"factor": "x", "max_len": 10}},
        {**TINY, "d_model": 15, "input": ENC_INPUT},  # not divisible by the heads
    ],
)
def test_bad_module_conf_is_a_legonn_error(conf):
    with pytest.raises(LegonnError, match="lego_encoder"):
        build_module("lego_encoder", conf)


def test_module_spec_unknown_key_is_refused():
    with pytest.raises(LegonnError) as exc:
        ModuleSpec.parse({"name": "enc", "type": "lego_encoder", "conf": {}, "loss_wieght": 0.5}, "model[0]")
    message = str(exc.value)
    assert "loss_wieght" in message and "loss_weight" in message and "model[0]" in message


def test_module_spec_unknown_key_through_chain():
    with pytest.raises(LegonnError, match="model\\[1\\].*targte"):
        Chain.from_specs(
            [
                {"name": "enc", "type": "lego_encoder", "conf": {**TINY, "input": ENC_INPUT}},
                {"name": "dec", "type": "transformer_decoder", "conf": {**TINY, "vocab_size": 9}, "targte": "text"},
            ]
        )


@pytest.mark.parametrize("raw", [{"type": "lego_encoder"}, {"name": "x"}, ["lego_encoder"], "lego_encoder"])
def test_module_spec_malformed(raw):
    with pytest.raises(LegonnError):
        ModuleSpec.parse(raw)


def test_module_spec_defaults_and_round_trip():
    spec = ModuleSpec.parse({"name": "enc", "type": "lego_encoder"})
    assert spec.conf == {} and spec.target is None and spec.loss_weight == 1.0
    assert ModuleSpec.parse(spec.as_dict()) == spec


def test_chain_rejects_duplicate_names_and_empty_lists():
    spec = {"name": "enc", "type": "lego_encoder", "conf": {**TINY, "input": {"type": "wemb", "vocab_size": 9}, "ctc_vocab_size": 9}}
    with pytest.raises(LegonnError, match="unique"):
        Chain.from_specs([spec, dict(spec)])
    with pytest.raises(LegonnError):
        Chain.from_specs([])
    with pytest.raises(LegonnError):
        Chain.from_specs(spec)  # a mapping, not a list


def test_registry_register_twice():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, x: int = 1):
            self.x = x

    assert reg.build("a", {"x": 3}).x == 3
    assert A.registered_name == "a"
    with pytest.raises(ValueError):
        reg.register("a")(A)
