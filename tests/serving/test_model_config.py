"""Model configs: TF Serving's config file format, version policies, the shipped example files."""

from __future__ import annotations

import os

import pytest

from serving.model_manager import ModelConfig, read_model_config_file

EXAMPLES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "serving", "tf_serving"
)


def test_the_shipped_model_config_parses_as_tf_serving_reads_it():
    (config,) = read_model_config_file(os.path.join(EXAMPLES, "models.config"))
    assert (config.name, config.base_path, config.version_policy, config.num_versions) == (
        "metaling",
        "/models/metaling",
        "latest",
        2,
    )


def test_version_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(
        'model_config_list { config { name: "a" base_path: "/a" model_version_policy { specific { versions: 2 versions: 5 } }'
        ' version_labels { key: "stable" value: 2 } }'
        ' config { name: "b" base_path: "/b" model_version_policy { all {} } } }'
    )
    a, b = read_model_config_file(str(path))
    assert a.aspired([1, 2, 3, 5]) == {2, 5} and a.version_labels == {"stable": 2}
    assert b.aspired([1, 3]) == {1, 3}
    assert ModelConfig("c", "/c", num_versions=2).aspired([4, 1, 9]) == {4, 9}


def test_bad_config_files_are_refused(tmp_path):
    path = tmp_path / "bad.config"
    path.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match="ModelServerConfig"):
        read_model_config_file(str(path))
    path.write_text("")
    with pytest.raises(ValueError, match="no model_config_list"):
        read_model_config_file(str(path))
    with pytest.raises(ValueError, match="version_policy"):
        ModelConfig("x", "/x", version_policy="newest")
