"""`mnv4suite lab resources | join | nodes`: what a node advertises, joining it, seeing the lab."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from mnv4suite.api import Requirement, check_requirements, install_command
from mnv4suite.errors import UnavailableError, UserError

RAY = Requirement("ray", install_command("ray"))

LAB_HELP = "run sweeps on a lab of machines (a Ray cluster): what a node advertises, joining, the nodes"
LAB_EPILOG = """\
examples:
  mnv4suite lab resources                  the JSON this host gives `ray start --resources`
  mnv4suite lab join --head                start a lab here (the head node)
  mnv4suite lab join 10.0.0.5:6379 --name coral-pi
                                           join this host to that lab, named coral-pi
  mnv4suite lab nodes --ray auto           every node of the lab and what it holds
  mnv4suite run --ray auto --backend tflite-edgetpu
                                           each job on a node that holds its hardware (docs/lab.md)
"""


def require_ray(what: str) -> None:
    found = check_requirements([RAY])
    if not found:
        raise UnavailableError(f"{what} runs on Ray: {found.explain()}")


def add_lab_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p_res = sub.add_parser("resources", help="print this host's Ray resources as JSON, for `ray start --resources`")
    p_res.add_argument("--name", help="the node's lab name (default: the host name)")
    p_join = sub.add_parser("join", help="start Ray on this host with its resources: a new lab (--head) or an existing one")
    p_join.add_argument("address", nargs="?", help="the head node's address, e.g. 10.0.0.5:6379")
    p_join.add_argument("--head", action="store_true", help="start a new lab with this host as its head node")
    p_join.add_argument("--port", type=int, default=6379, help="with --head: the port to listen on (default 6379)")
    p_join.add_argument("--name", help="the node's lab name (default: the host name)")
    p_nodes = sub.add_parser("nodes", help="list the lab's nodes and the hardware each holds")
    p_nodes.add_argument("--ray", default="auto", metavar="ADDRESS", help="the lab's address (default: auto)")


def cmd_lab(args) -> int:
    return {"resources": cmd_resources, "join": cmd_join, "nodes": cmd_nodes}[args.lab_command](args)


def _resources(name: str | None) -> dict[str, float]:
    from mnv4suite.registry import get_registry

    from .resources import host_resources

    return host_resources(get_registry().backends, name)


def cmd_resources(args) -> int:
    print(json.dumps(_resources(args.name)))
    return 0


def ray_start_command(address: str | None, head: bool, port: int, resources: dict[str, float]) -> list[str]:
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray") or "ray"
    where = [f"--head", f"--port={port}"] if head else [f"--address={address}"]
    return [ray_cli, "start", *where, f"--resources={json.dumps(resources)}"]


def cmd_join(args) -> int:
    if args.head == bool(args.address):
        raise UserError("lab join: give the head node's ADDRESS, or --head to start a new lab here")
    require_ray("mnv4suite lab join")
    command = ray_start_command(args.address, args.head, args.port, _resources(args.name))
    print("$ " + " ".join(command[:-1] + [f"'{command[-1]}'"]), file=sys.stderr)
    return subprocess.run(command, check=False).returncode


def cmd_nodes(args) -> int:
    require_ray("mnv4suite lab nodes")
    from . import executor

    executor.connect(args.ray)
    try:
        print(executor.describe(executor.discover()))
    finally:
        executor.shutdown()
    return 0
