"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster), each node with its own
environment, artifact cache and the resources `mnv4suite lab resources` prints under that environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
PLUGIN_DIR = TESTS / "plugins"


def node_env(cache: Path, **extra: str) -> dict[str, str]:
    """What a lab node's raylet (and so its Ray workers and job processes) sees."""
    return {"MNV4SUITE_PLUGINS": "tinynet", "MNV4SUITE_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_DIR), os.environ.get("PYTHONPATH")])), **extra}


def advertised(name: str, env: dict[str, str]) -> dict[str, float]:
    """The node's resources, from the real command run in the node's environment."""
    proc = subprocess.run([sys.executable, "-m", "mnv4suite", "lab", "resources", "--name", name],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@dataclass
class LabCluster:
    cluster: object
    base: Path
    nodes: dict[str, object] = field(default_factory=dict)  # lab name -> ray node
    envs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.cluster.address

    def node_id(self, name: str) -> str:
        return self.nodes[name].node_id

    def driver(self, *args: str, cwd: Path, background: bool = False):
        """`mnv4suite run --ray ADDRESS ...` as a user types it, from another process than the cluster's."""
        env = {**os.environ, **node_env(self.base / "driver-cache")}
        command = [sys.executable, "-m", "mnv4suite", "run", "--ray", self.address, *args]
        if background:
            return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)

    def shutdown(self) -> None:
        self.cluster.shutdown()


def start_lab(base: Path, nodes: dict[str, dict[str, str]]) -> LabCluster:
    """One Ray node per entry (the first is the head), each with its own cache and extra environment."""
    from ray.cluster_utils import Cluster

    lab = LabCluster(cluster=Cluster(), base=base)
    for name, extra in nodes.items():
        env = node_env(base / f"cache-{name}", **extra)
        lab.envs[name] = env
        lab.nodes[name] = lab.cluster.add_node(num_cpus=2, resources=advertised(name, env), env_vars=env)
    lab.cluster.wait_for_nodes()
    return lab


