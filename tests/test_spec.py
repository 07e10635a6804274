"""spec.yml: every kind of mistake gets one clear message with file, line and key path."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stack_builder.errors import SpecError, StackError
from stack_builder.spec.stack_spec import load_spec, parse_spec, schema

from stacks import REPO

GOOD = """\
root: base
images:
  base:
    image_name: ghcr.io/org/base
    build_args:
      PY: "3.11"
      N: 3
      FLAG: true
    info_cmds: [PY_VER]
  child:
    image_name: ghcr.io/org/child
    depend_on: base
    platforms: [linux/amd64, linux/arm64]
    gpu: true
tag:
  prefix: "2024.1"
all_info_cmds:
  PY_VER:
    description: Python
    command: python --version
"""


def make(tmp_path: Path, text: str, images: tuple[str, ...] = ("base", "child"), where: str = "spec.yml") -> Path:
    for name in images:
        (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text(textwrap.dedent(text))
    return tmp_path


def problems(tmp_path: Path, text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(make(tmp_path, text, **kwargs))
    assert "Traceback" not in str(caught.value)
    return caught.value.problems


def test_valid_spec_is_modelled(tmp_path: Path) -> None:
    spec = load_spec(make(tmp_path, GOOD))
    assert list(spec.images) == ["base", "child"]
    assert spec.roots == ("base",)
    assert spec.tag_prefix == "2024.1"
    base, child = spec.images["base"], spec.images["child"]
    assert str(base.repository) == "ghcr.io/org/base"
    assert str(base.repository.on("127.0.0.1:5000")) == "127.0.0.1:5000/org/base"
    assert dict(base.build_args) == {"PY": "3.11", "N": "3", "FLAG": "true"}
    assert child.parent == "base" and child.gpu and child.platforms == ("linux/amd64", "linux/arm64")
    assert base.platforms == ("linux/amd64",) and base.require_all_platforms
    assert spec.ancestors("child") == ["base"] and spec.children("base") == ["child"]
    assert spec.all_info_cmds["PY_VER"].command == "python --version"


def test_images_spec_is_used_when_there_is_no_top_level_one(tmp_path: Path) -> None:
    spec = load_spec(make(tmp_path, GOOD, where="images/spec.yml"))
    assert spec.path == tmp_path / "images" / "spec.yml"


def test_datahub_spec_migrates_unchanged(tmp_path: Path) -> None:
    # The predecessor's own spec, verbatim in shape: root, prune, prepull, integration_tests, unquoted keys.
    text = """\
    root: datascience-notebook

    images:
      datascience-notebook:
        image_name: ghcr.io/ucsd-ets/datascience-notebook
        build_args:
          PYTHON_VERSION: python-3.11.8
          PY_VER_SHORT: "3.11"
          JUPYTERHUB_VERSION: 4.0.2
        info_cmds: [PY_VER, PIP_LIST, CONDA_INFO, CONDA_LIST, APT_PKG_LIST]

      rstudio-notebook:
        image_name: ghcr.io/ucsd-ets/rstudio-notebook
        depend_on: datascience-notebook
        integration_tests: true
        info_cmds: [PY_VER, PIP_LIST, CONDA_INFO, CONDA_LIST, APT_PKG_LIST]
        prune: true

      scipy-ml-notebook:
        image_name: ghcr.io/ucsd-ets/scipy-ml-notebook
        depend_on: datascience-notebook
        integration_tests: false
        info_cmds: [PY_VER, PIP_LIST, CUDA_VERSION, CONDA_INFO, CONDA_LIST, APT_PKG_LIST]
        prune: false # comment
        #prepull: false

    tag:
      prefix: "2023.4"

    all_info_cmds:
      PY_VER: {description: Python Version, command: python --version}
      PIP_LIST: {description: pip Packages, command: pip list}
      CONDA_INFO: {description: Conda Info, command: conda info}
      CONDA_LIST: {description: Conda Packages, command: conda list}
      APT_PKG_LIST: {description: System Packages, command: apt list --installed}
      CUDA_VERSION:
        description: CUDA Version
        command: bash -c 'conda list | grep "cuda\\|cudnn\\|nccl"'
    """
    spec = load_spec(make(tmp_path, text, images=("datascience-notebook", "rstudio-notebook", "scipy-ml-notebook")))
    assert spec.images["rstudio-notebook"].integration_tests and spec.images["rstudio-notebook"].prune
    assert spec.images["datascience-notebook"].build_args[2] == ("JUPYTERHUB_VERSION", "4.0.2")
    assert spec.tag_prefix == "2023.4"


def test_several_roots(tmp_path: Path) -> None:
    text = GOOD.replace("root: base\n", "").replace("    depend_on: base\n", "")
    assert load_spec(make(tmp_path, text)).roots == ("base", "child")


def test_unknown_parent_names_line_key_and_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("depend_on: base", "depend_on: bsae"))
    assert found == ["spec.yml:12: images.child.depend_on: unknown parent 'bsae' (did you mean 'base'?)"]


def test_cycle(tmp_path: Path) -> None:
    text = GOOD.replace("root: base\n", "").replace("    image_name: ghcr.io/org/base\n",
                                                     "    image_name: ghcr.io/org/base\n    depend_on: child\n")
    found = problems(tmp_path, text)
    assert any("dependency cycle: base -> child -> base" in p for p in found), found
    assert all(p.startswith("spec.yml:") for p in found)


def test_duplicate_image_key(tmp_path: Path) -> None:
    text = GOOD + "images:\n  base:\n    image_name: x/y\n"
    found = problems(tmp_path, text)
    assert any(p.startswith("spec.yml:21: images: duplicate key 'images'") for p in found), found


def test_duplicate_image_name(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("ghcr.io/org/child", "ghcr.io/org/base"))
    assert found == ["spec.yml:11: images.child.image_name: 'ghcr.io/org/base' is also the image_name of 'base': "
                     "each image needs its own"]


def test_missing_dockerfile(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD, images=("base",))
    assert found == ["spec.yml:10: images.child: no Dockerfile at images/child/Dockerfile: create it, or point "
                     "'dockerfile:' at the file (relative to images/child/)"]


def test_dockerfile_key_points_elsewhere(tmp_path: Path) -> None:
    make(tmp_path, GOOD.replace("    gpu: true\n", "    gpu: true\n    dockerfile: gpu.Dockerfile\n"))
    (tmp_path / "images" / "child" / "gpu.Dockerfile").write_text("FROM scratch\n")
    assert load_spec(tmp_path).images["child"].dockerfile.name == "gpu.Dockerfile"


def test_unknown_info_cmd(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("info_cmds: [PY_VER]", "info_cmds: [PY_VER, PY_VRE]"))
    assert found == ["spec.yml:9: images.base.info_cmds[1]: unknown info command 'PY_VRE' (did you mean "
                     "'PY_VER'?): define it under all_info_cmds"]


def test_unknown_key_with_did_you_mean(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("depend_on: base", "depends_on: base"))
    assert found == ["spec.yml:12: images.child.depends_on: unknown key 'depends_on' (did you mean 'depend_on'?)"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "tags:\n  prefix: '2024.1'\n")
    assert found == ["spec.yml:21: tags: unknown key 'tags' (did you mean 'tag'?)"]


@pytest.mark.parametrize("prefix", ['"2024.5"', '"24.1"', '"2024-1"', "true", '"2024.1-main"'])
def test_bad_tag_prefix(tmp_path: Path, prefix: str) -> None:
    found = problems(tmp_path, GOOD.replace('prefix: "2024.1"', f"prefix: {prefix}"))
    assert len(found) == 1 and found[0].startswith("spec.yml:16: tag.prefix: "), found
    assert "YYYY.Q" in found[0] or "must be a string or a number, not true/false" in found[0]


def test_unquoted_prefix_is_read_as_written(tmp_path: Path) -> None:
    assert load_spec(make(tmp_path, GOOD.replace('prefix: "2024.1"', "prefix: 2024.1"))).tag_prefix == "2024.1"


def test_wrong_types_each_named(tmp_path: Path) -> None:
    cases = {
        "gpu: true": ("gpu: yes please", "spec.yml:14: images.child.gpu: must be true or false, not a string"),
        "platforms: [linux/amd64, linux/arm64]": ("platforms: linux/amd64",
                                                  "spec.yml:13: images.child.platforms: must be a list, not a string"),
        "info_cmds: [PY_VER]": ("info_cmds: PY_VER", "spec.yml:9: images.base.info_cmds: must be a list, not a string"),
    }
    for index, (old, (new, expected)) in enumerate(cases.items()):
        found = problems(tmp_path / str(index), GOOD.replace(old, new))
        assert len(found) == 1 and found[0].startswith(expected), found


def test_float_build_arg_must_be_quoted(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace('PY: "3.11"', "PY: 3.10"))
    assert found == ['spec.yml:6: images.base.build_args.PY: 3.1 was read as a number, which can lose digits '
                     '(3.10 becomes 3.1): quote it, e.g. PY: "3.1"']


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("depend_on: base", "depend_on: nope").replace("info_cmds: [PY_VER]", "info_cmds: [X]")
    found = problems(tmp_path, text)
    assert len(found) == 2


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("  child:\n", "  child\n"))
    assert len(found) == 1 and found[0].startswith("spec.yml:1") and "YAML syntax error" in found[0]


def test_missing_spec_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no spec found"):
        load_spec(tmp_path)


def test_root_must_be_a_root(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("root: base", "root: child"))
    assert found == ["spec.yml:1: root: 'child' depends on 'base', so it is not a root"]


def test_image_name_grammar(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("ghcr.io/org/child", "ghcr.io/Org/Child:latest"))
    assert len(found) == 1 and found[0].startswith("spec.yml:11: images.child.image_name: 'ghcr.io/Org/Child:latest'")


def test_schema_is_a_valid_json_schema_and_accepts_the_bundled_spec() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    shipped = json.loads((REPO / "scripts" / "stack_builder" / "spec" / "spec.schema.json").read_text())
    assert shipped == schema()
    spec = load_spec(REPO)
    assert set(spec.images) == {"base-notebook", "datascience-notebook", "ml-notebook", "iris-model"}
    assert spec.images["ml-notebook"].gpu


def test_parse_without_file_checks(tmp_path: Path) -> None:
    spec = parse_spec(GOOD, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    assert spec.images["child"].parent == "base"


def test_dockerfile_may_be_a_list_of_recipes_each_of_which_must_exist(tmp_path: Path) -> None:
    text = GOOD.replace("    gpu: true\n", "    gpu: true\n    dockerfile: [Dockerfile, Dockerfile.conda]\n")
    found = problems(tmp_path, text)
    assert len(found) == 1 and "no Dockerfile at images/child/Dockerfile.conda" in found[0]
    (tmp_path / "images" / "child" / "Dockerfile.conda").write_text("FROM scratch\n")
    child = load_spec(tmp_path).images["child"]
    assert [p.name for p in child.recipes] == ["Dockerfile", "Dockerfile.conda"]
    assert child.dockerfile.name == "Dockerfile"  # the first recipe
    assert load_spec(tmp_path).images["base"].recipes == ()  # one Dockerfile: no chain
    twice = problems(tmp_path / "again", GOOD.replace("    gpu: true\n", "    gpu: true\n    dockerfile: [A, A]\n"))
    assert any("images.child.dockerfile" in p for p in twice), twice
