"""A real two-node Ray cluster on this machine: `ray start --head` plus `ray start --address` (a worker node with
its own CPUs and a custom resource), a short training submitted with `ray job submit -- rllib train file ...`
whose trial needs both nodes, its success and checkpoint, and the teardown of exactly that cluster (not the test
session's own Ray, nor anything else on the machine)."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil
import pytest
import yaml

from test_cli import write_yaml

BIN = os.path.dirname(sys.executable)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports():
    """Ports of a node's own agents, free ones: the defaults (e.g. the dashboard agent's 52365) are taken by any
    other Ray on the machine (the test session's own), and two nodes on one machine cannot share them either."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]


def ray_cmd(*args, env, timeout=120):
    return subprocess.run([os.path.join(BIN, "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def kill_cluster(temp_dir):
    """Kill every process of this cluster only: they all name its temp dir (session dir) on their command line,
    and workers are children of its raylets."""
    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in (p.info["cmdline"] or [])):
                procs += [p] + p.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=20)


@pytest.fixture
def two_node_cluster(cli_env):
    temp_dir = tempfile.mkdtemp(prefix="rmn", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    port, dash = free_port(), free_port()
    env = {k: v for k, v in cli_env.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"  # one mode for head, worker and job client (a local, loopback-only cluster)
    head = ray_cmd("start", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", f"--temp-dir={temp_dir}",
                   "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                   *node_ports(), "--disable-usage-stats", env=env)
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        worker = ray_cmd("start", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--num-gpus=0",
                         '--resources={"env_runner_node": 2}', *node_ports(), "--disable-usage-stats", env=env)
        assert worker.returncode == 0, worker.stdout + worker.stderr
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}", "env": env}
    finally:
        kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_trains_across_two_nodes(two_node_cluster, tmp_path):
    cluster, env = two_node_cluster, two_node_cluster["env"]
    deadline = time.time() + 120
    while True:  # the worker node registers with the head a few seconds after `ray start` returns
        status = ray_cmd("status", f"--address={cluster['address']}", env=env)
        if "0.0/3.0 CPU" in status.stdout or time.time() > deadline:
            break
        time.sleep(2)
    assert status.returncode == 0 and "0.0/3.0 CPU" in status.stdout and "env_runner_node" in status.stdout, \
        status.stdout
    # main process 1 CPU + 2 env runners x 1 CPU: the trial cannot fit on either node alone
    cfg = write_yaml(tmp_path / "mn.yaml", exp_name="multinode", stop={"training_iteration": 3},
                     checkpoint_config={"checkpoint_at_end": True},
                     config={"env_config": {"N": 3}, "expert_data": {"expert": "scripted", "episodes": 4, "seed": 0},
                             "num_env_runners": 2, "num_cpus_per_env_runner": 1, "rollout_fragment_length": 25,
                             "num_steps_sampled_before_learning_starts": 50, "num_updates_per_iteration": 2,
                             "expert_batch_size": 32, "train_batch_size_per_learner": 32,
                             "custom_resources_per_env_runner": {"env_runner_node": 1}, "seed": 0})
    storage = tmp_path / "results"
    runtime_env = yaml.safe_dump({"env_vars": {"RLLIB_MIL_CACHE": env["RLLIB_MIL_CACHE"]}}, default_flow_style=True)
    t0 = time.time()
    while True:  # the head's dashboard agent takes a moment to accept jobs ("No available agent ... try again")
        job = ray_cmd("job", "submit", f"--address={cluster['dashboard']}",
                      f"--runtime-env-json={_json(runtime_env)}", "--", os.path.join(BIN, "rllib"), "train", "file",
                      cfg, "--storage-path", str(storage), env=env, timeout=600)
        log = job.stdout + job.stderr
        if "No available agent" not in log or time.time() - t0 > 120:
            break
        time.sleep(3)
    print(f"--- ray job submit ({time.time() - t0:.0f} s) ---\n{log[-4000:]}")
    assert job.returncode == 0 and "succeeded" in log.lower(), log[-6000:]
    checkpoints = glob.glob(str(storage / "multinode" / "*" / "checkpoint_*"))
    assert len(checkpoints) == 1, log[-3000:]
    print(f"checkpoint: {checkpoints[0]}")
    assert "iterations=3" in log, log[-3000:]


def _json(flow_yaml):
    import json

    return json.dumps(yaml.safe_load(flow_yaml))
