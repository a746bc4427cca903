"""KubeRay manifests in cluster/: each validates against the KubeRay CRD schema it names (../shared/kuberay-crds/),
strictly (an unknown or misspelled field fails instead of being pruned by the API server), and every entrypoint
names files and tuned examples that exist and build."""
import copy
import functools
import glob
import os
import shlex

import jsonschema
import pytest
import yaml

import rllib_mil  # noqa: F401
from rllib_mil.cli import build_config, load_experiments

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRDS = os.path.join(os.path.dirname(REPO), "shared", "kuberay-crds")
MANIFESTS = sorted(glob.glob(os.path.join(REPO, "cluster", "*.yaml")))


def docs():
    for path in MANIFESTS:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    yield os.path.basename(path), doc


def strict(schema):
    """The CRD's openAPIV3Schema with additionalProperties: false wherever properties are listed and unknown
    fields are not explicitly preserved."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@functools.lru_cache(maxsize=None)
def _crd_schema(kind, api_version):
    group, version = api_version.split("/")
    for path in glob.glob(os.path.join(CRDS, "*.yaml")):
        crd = yaml.load(open(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if crd["spec"]["names"]["kind"] == kind and crd["spec"]["group"] == group:
            (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
            return strict(v["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD for {kind} {api_version} in {CRDS}")


def crd_schema(kind, api_version):
    return copy.deepcopy(_crd_schema(kind, api_version))


RAY_DOCS = [(name, doc) for name, doc in docs() if doc["apiVersion"].startswith("ray.io/")]


def test_there_is_a_rayjob_and_a_raycluster():
    assert {doc["kind"] for _, doc in RAY_DOCS} == {"RayJob", "RayCluster"}


@pytest.mark.parametrize("name, doc", RAY_DOCS, ids=[f"{n}:{d['kind']}" for n, d in RAY_DOCS])
def test_manifest_matches_the_kuberay_crd(name, doc):
    jsonschema.validate(doc, crd_schema(doc["kind"], doc["apiVersion"]))


def test_strict_schema_catches_a_misspelled_field():
    (job,) = [doc for _, doc in RAY_DOCS if doc["kind"] == "RayJob"]
    bad = copy.deepcopy(job)
    bad["spec"]["backofLimit"] = bad["spec"].pop("backoffLimit")
    with pytest.raises(jsonschema.ValidationError, match="backofLimit"):
        jsonschema.validate(bad, crd_schema("RayJob", "ray.io/v1"))


def test_rayjob_runs_the_smacv2_tuned_example_on_a_gpu_learner_and_resumes():
    (job,) = [doc for _, doc in RAY_DOCS if doc["kind"] == "RayJob"]
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["rllib", "train", "file"] and "--resume" in argv
    yaml_path = os.path.join(REPO, argv[3])
    assert os.path.isfile(yaml_path)
    (exp,) = load_experiments(yaml_path).values()
    config, _ = build_config(exp)
    assert exp["env"].startswith("smacv2/") and config.num_gpus_per_learner == 1
    assert spec["backoffLimit"] >= 1
    groups = spec["rayClusterSpec"]["workerGroupSpecs"]
    limits = [c["resources"]["limits"] for g in groups for c in g["template"]["spec"]["containers"]]
    assert any("nvidia.com/gpu" in lim for lim in limits) and any("nvidia.com/gpu" not in lim for lim in limits)
    # enough CPUs on the workers for the env runners (training + evaluation, 1 CPU each)
    cpus = sum(int(g["replicas"]) * float(g["rayStartParams"].get("num-cpus", 0)) for g in groups)
    assert cpus >= config.num_env_runners * config.num_cpus_per_env_runner + config.evaluation_num_env_runners
    # checkpoints go to a volume every pod mounts; the demonstrations path is mounted too
    storage = argv[argv.index("--storage-path") + 1]
    pods = [spec["rayClusterSpec"]["headGroupSpec"]] + groups
    for pod in pods:
        mounts = [m["mountPath"] for c in pod["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])]
        assert storage in mounts and any(config.expert_data.startswith(m) for m in mounts), mounts
    claims = {v["persistentVolumeClaim"]["claimName"] for p in pods for v in p["template"]["spec"]["volumes"]}
    pvcs = {d["metadata"]["name"] for _, d in docs() if d["kind"] == "PersistentVolumeClaim"}
    assert claims <= pvcs and all(d["spec"]["accessModes"] == ["ReadWriteMany"] for _, d in docs()
                                  if d["kind"] == "PersistentVolumeClaim")


def test_readme_commands_name_files_that_exist():
    text = open(os.path.join(REPO, "cluster", "README.md")).read()
    for token in text.replace("`", " ").split():
        if token.startswith(("cluster/", "tuned_examples/")) and token.endswith((".yaml", "Dockerfile")):
            assert os.path.exists(os.path.join(REPO, token)), token


def _ray_start_params(doc):
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])
    groups = [spec["headGroupSpec"]] + list(spec.get("workerGroupSpecs", []))
    return [(key, value) for g in groups for key, value in (g.get("rayStartParams") or {}).items()]


@pytest.mark.parametrize("name, doc", RAY_DOCS, ids=[f"{n}:{d['kind']}" for n, d in RAY_DOCS])
def test_ray_start_params_are_ray_start_flags(name, doc):
    # The CRD takes any key here; KubeRay passes each as `ray start --<key>=<value>`, so a typo fails only in the pod.
    from ray.scripts.scripts import start

    flags = {opt for p in start.params for opt in p.opts}
    for key, value in _ray_start_params(doc):
        assert f"--{key}" in flags, f"{name}: rayStartParams {key!r} is not a `ray start` flag"
        assert isinstance(value, str), f"{name}: rayStartParams {key!r} must be a string (KubeRay), got {value!r}"


@pytest.mark.parametrize("name, doc", RAY_DOCS, ids=[f"{n}:{d['kind']}" for n, d in RAY_DOCS])
def test_runtime_env_and_metadata_are_well_formed(name, doc):
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}, doc["metadata"]
    if "runtimeEnvYAML" in doc["spec"]:  # a string the CRD does not look inside
        env = yaml.safe_load(doc["spec"]["runtimeEnvYAML"])
        assert isinstance(env, dict) and set(env) <= {"env_vars", "working_dir", "py_modules", "pip", "uv",
                                                      "conda", "container", "excludes", "config"}, env


# The fields of a core/v1 PersistentVolumeClaim that cluster/pvc.yaml may use (no CRD ships for core kinds).
PVC_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "v1"}, "kind": {"const": "PersistentVolumeClaim"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name"],
                     "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                    "labels": {"type": "object"}, "annotations": {"type": "object"}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["accessModes", "resources"],
                 "properties": {
                     "accessModes": {"type": "array", "items": {
                         "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]}},
                     "storageClassName": {"type": "string"}, "volumeMode": {"enum": ["Filesystem", "Block"]},
                     "volumeName": {"type": "string"},
                     "resources": {"type": "object", "additionalProperties": False, "properties": {
                         "requests": {"type": "object", "additionalProperties": False, "required": ["storage"],
                                      "properties": {"storage": {"type": "string",
                                                                 "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"}}},
                         "limits": {"type": "object"}}}}},
    },
}


def test_volume_claims_are_well_formed():
    pvcs = [doc for _, doc in docs() if doc["kind"] == "PersistentVolumeClaim"]
    assert pvcs
    for doc in pvcs:
        jsonschema.validate(doc, PVC_SCHEMA)
    bad = copy.deepcopy(pvcs[0])
    bad["spec"]["acessModes"] = bad["spec"].pop("accessModes")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PVC_SCHEMA)
