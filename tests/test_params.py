"""Every bad-parameter message: one sentence naming the parameter and what it accepts."""

import pytest

from saesteer.study.params import (
    Param,
    ParameterError,
    check,
    check_feature,
    check_layer,
    from_namespace,
    validate,
)

SPECS = {
    "layer": Param(int, min=0),
    "scale": Param(float, min=0.0, max=10.0),
    "position": Param(str, choices=("attn_out", "mlp_out", "resid_post")),
    "families": Param(list, choices=("gemma2", "gpt2")),
    "values": Param(list, items=float),
    "plot": Param(bool),
    "sae_path": Param(str, exists=True, optional=True),
}
GOOD = {"layer": 1, "scale": 2, "position": "mlp_out", "families": ["gpt2"], "values": [0, 1.5], "plot": True,
        "sae_path": None}


@pytest.mark.parametrize("name, value, message", [
    ("layer", -1, "Parameter 'layer' must be an integer of at least 0; got -1."),
    ("layer", "3", "Parameter 'layer' must be an integer of at least 0; got '3'."),
    ("layer", True, "Parameter 'layer' must be an integer of at least 0; got True."),
    ("scale", 11, "Parameter 'scale' must be a number from 0.0 to 10.0; got 11."),
    ("position", "resid", "Parameter 'position' must be one of 'attn_out', 'mlp_out', 'resid_post'; got 'resid'."),
    ("families", ["gemma3"], "Parameter 'families' must be a list of values from 'gemma2', 'gpt2'; got ['gemma3']."),
    ("families", "gpt2", "Parameter 'families' must be a list of values from 'gemma2', 'gpt2'; got 'gpt2'."),
    ("values", [1, "x"], "Parameter 'values' must be a list of numbers; got [1, 'x']."),
    ("plot", "yes", "Parameter 'plot' must be true or false; got 'yes'."),
    ("sae_path", "no/such/dir", "Parameter 'sae_path' must name an existing file or directory; 'no/such/dir' does not exist."),
])
def test_bad_values_name_parameter_and_allowed_values(name, value, message):
    with pytest.raises(ParameterError) as err:
        validate({**GOOD, name: value}, SPECS)
    assert str(err.value) == message


def test_good_values_pass_and_existing_path_is_accepted(tmp_path):
    assert validate(GOOD, SPECS) == GOOD
    check("sae_path", str(tmp_path), SPECS["sae_path"])


def test_unknown_and_missing_parameters():
    with pytest.raises(ParameterError, match="Unknown parameter 'layr'; did you mean 'layer'\\?"):
        validate({**GOOD, "layr": 2}, SPECS)
    with pytest.raises(ParameterError, match="Parameter 'plot' is missing; it must be true or false."):
        validate({k: v for k, v in GOOD.items() if k != "plot"}, SPECS)
    with pytest.raises(ParameterError, match="Parameter 'layer' is not defined in the notebook's parameters cell."):
        from_namespace({}, SPECS)


def test_layer_and_feature_bounds_come_from_the_model_and_sae():
    with pytest.raises(ParameterError, match="Parameter 'layer' must be an integer from 0 to 3; got 4."):
        check_layer("layer", 4, depth=4)
    with pytest.raises(ParameterError, match="Parameter 'feature' must be an integer from 0 to 1023; got 1024."):
        check_feature("feature", 1024, width=1024)
    check_layer("layer", 3, depth=4)
    check_feature("feature", 0, width=1024)
