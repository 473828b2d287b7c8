"""Deployment files in cluster/: launcher YAMLs against Ray's own JSON schema, KubeRay manifests
structurally, the worker image and runtime_env pinned to pyproject.toml, a small working dir."""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from _paths import ROOT

CLUSTER = ROOT / "cluster"
LAUNCHERS = ["aws.yaml", "gcp.yaml"]


def _pins() -> dict[str, str]:
    """``name -> version`` for every ``name[extras]==version`` in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    pins: dict[str, str] = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", spec)
        if m:
            assert pins.setdefault(m.group(1).lower(), m.group(3)) == m.group(3), f"two pins for {spec}"
    pins["crystalspace"] = project["version"]
    return pins


def _ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_yaml_validates_against_rays_schema(name):
    config = yaml.safe_load((CLUSTER / name).read_text())
    jsonschema.validate(config, _ray_schema())
    types = config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert config["head_node_type"] == "head"
    assert types["head"]["resources"] == {"CPU": 0}
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert config["max_workers"] >= sum(t.get("max_workers", 0) for t in types.values())
    assert types["cpu_worker"]["min_workers"] == 0  # scales to zero when idle


def test_schema_rejects_a_broken_launcher_yaml():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    config["available_node_types"]["cpu_worker"]["resources"] = {"CPU": 0.5}  # integers only
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _ray_schema())
    del config["provider"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _ray_schema())


def _images(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "image" and isinstance(v, str)] + [
            i for v in node.values() for i in _images(v)
        ]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


def _check_cluster_spec(spec: dict, pins: dict[str, str]) -> None:
    assert spec["rayVersion"] == pins["ray"]
    head = spec["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["name"] == "ray-head"
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = spec["workerGroupSpecs"]
    assert groups
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["template"]["spec"]["containers"]
    for image in _images(spec):
        repo, tag = image.rsplit(":", 1)
        assert repo == "ghcr.io/crystalspace/crystalspace-worker"
        assert tag.split("-")[0] == pins["crystalspace"]


def test_kuberay_manifests_are_well_formed():
    pins = _pins()
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    _check_cluster_spec(cluster["spec"], pins)
    gpu = next(g for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    _check_cluster_spec(job["spec"]["rayClusterSpec"], pins)
    entry = job["spec"]["entrypoint"].split()
    assert entry[:2] == ["python", "/opt/crystalspace/pipelines/space_build.py"]
    assert (ROOT / entry[1].removeprefix("/opt/crystalspace/")).is_file()
    assert (ROOT / entry[entry.index("--config") + 1].removeprefix("/opt/crystalspace/")).is_file()
    yaml.safe_load(job["spec"]["runtimeEnvYAML"])


def test_launcher_images_match_the_package_version():
    version = _pins()["crystalspace"]
    for name in LAUNCHERS:
        for image in _images(yaml.safe_load((CLUSTER / name).read_text())):
            assert image.rsplit(":", 1)[1].split("-")[0] == version
        text = (CLUSTER / name).read_text()
        assert f"crystalspace-worker:{version}-cuda" in text


def test_dockerfile_pins_equal_pyproject():
    pins = _pins()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", (CLUSTER / "Dockerfile").read_text(), flags=re.M))
    assert args["RAY_VERSION"] == pins["ray"]
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["PYARROW_VERSION"] == pins["pyarrow"]
    assert args["DUCKDB_VERSION"] == pins["duckdb"]
    assert args["CRYSTALSPACE_VERSION"] == pins["crystalspace"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={args['PYTHON_VERSION']}"
    for path in re.findall(r"^COPY (\S+) ", (CLUSTER / "Dockerfile").read_text(), flags=re.M):
        assert (ROOT / path).exists(), path


def test_runtime_env_pins_equal_pyproject():
    pins = _pins()
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    packages = env["pip"]["packages"]
    assert packages
    for spec in packages:
        name, version = spec.split("==")
        assert pins[name.lower()] == version, spec
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [
        d for d in project["dependencies"] + project["optional-dependencies"]["space"] if "ray" not in d
    ]
    assert sorted(packages) == sorted(needed)  # core + space extra, Ray itself is on the cluster


def test_working_dir_upload_is_code_only(tmp_path):
    """Zip the checkout exactly as `ray job submit --working-dir .` does, with our excludes."""
    from ray._private.runtime_env.packaging import _zip_files

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    lake = ROOT / "lake"  # an ignored lake next to the code must not travel
    made = not lake.exists()
    (lake / "arity=2").mkdir(parents=True, exist_ok=True)
    (lake / "arity=2" / "big.parquet").write_bytes(b"\0" * 2_000_000)
    try:
        _zip_files(str(ROOT), env["excludes"], str(tmp_path / "wd.zip"), include_gitignore=True)
    finally:
        (lake / "arity=2" / "big.parquet").unlink()
        if made:
            import shutil

            shutil.rmtree(lake)
    names = zipfile.ZipFile(tmp_path / "wd.zip").namelist()
    size = (tmp_path / "wd.zip").stat().st_size
    assert size < 5_000_000, f"working dir zip is {size / 1e6:.1f} MB"
    assert "pipelines/space_build.py" in names
    assert "pipelines/configs/space_small.yaml" in names
    assert "crystalspace/data/known_mp.parquet" in names  # package data the workers need
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "crystalspace", "pipelines"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    missing = sorted(set(tracked) - set(names))
    assert not missing, f"code left out of the working dir: {missing[:5]}"
    assert not [n for n in names if n.startswith(("lake/", ".venv/", ".git/", "runs/"))]
    assert not [n for n in names if n.startswith("tests/data/") and n.endswith(".parquet")]
