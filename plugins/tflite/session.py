"""A .tflite file on the LiteRT interpreter, with or without a delegate, and where its ops ran.

The session takes the suite's NCHW float32 batch, feeds the file's NHWC input (quantized when the
input is int8) and returns float32 logits (dequantized when the output is int8).

Where the ops ran is read back from the interpreter after delegation: each delegate partition is a
``DELEGATE`` node whose inputs are the partition's inputs and whose outputs are its outputs, so the
original nodes it replaced are those reached walking back from its outputs without crossing its
inputs. Whatever no partition took runs on LiteRT's CPU kernels; with a hardware delegate those are
the ops it handed back to the CPU, reported in ``cpu_fallback_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnv4suite.api import Session
from mnv4suite.errors import UnavailableError
from mnv4suite.reference_models.export import TensorQuant


#: How many of the ops XNNPACK leaves to the builtin kernels a CPU label names (a label, not the full list).
LABEL_OPS = 6


def cpu_threads() -> int:
    """The cores this process may run on (its affinity mask: a container's share, not the host's count)."""
    from mnv4suite.api import available_cores

    return available_cores()


@dataclass
class Placement:
    """How the interpreter split the graph: delegate partitions, and the ops left on LiteRT's CPU kernels."""

    ops: int  # ops in the file
    partitions: int  # DELEGATE nodes
    delegated: int  # file ops inside the partitions
    leftover: list[str] = field(default_factory=list)  # "OP (node i: output tensor)"

    @property
    def complete(self) -> bool:
        return self.partitions > 0 and not self.leftover


def placement(interpreter) -> Placement:
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only per-node listing LiteRT's Python API has
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    original = {op["index"]: op for op in ops if op["op_name"] != "DELEGATE"}
    producer = {int(t): i for i, op in original.items() for t in op["outputs"]}
    taken: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [producer[int(t)] for t in node["outputs"] if int(t) in producer]
        while stack:
            i = stack.pop()
            if i in taken:
                continue
            taken.add(i)
            stack.extend(producer[int(t)] for t in original[i]["inputs"]
                         if int(t) >= 0 and int(t) not in boundary and int(t) in producer)
    leftover = []
    for i, op in sorted(original.items()):
        if i not in taken:
            out = names.get(int(op["outputs"][0]), "") if len(op["outputs"]) else ""
            leftover.append(f"{op['op_name']} (node {i}{': ' + out[:80] if out else ''})")
    return Placement(ops=len(original), partitions=len(delegates), delegated=len(taken), leftover=leftover)


class LiteRTSession(Session):
    """One .tflite file on ``ai_edge_litert.interpreter.Interpreter``.

    ``delegate``: a loaded hardware delegate (``load_delegate``); then LiteRT's default XNNPACK
    delegate is left out, so that every op the hardware delegate does not take is visible as a
    leftover on the builtin CPU kernels. Without one, XNNPACK (LiteRT's default CPU delegate) runs
    what it supports, with ``threads`` threads.

    ``batch``: the files are converted at batch 1; for batched Offline the input is resized to
    ``batch`` and the graph re-planned (one invoke per batch). A file whose graph cannot take
    another batch size (a reshape to a constant shape) stays at batch 1, and ``batch_note`` says so.
    """

    def __init__(self, path: str | Path, threads: int | None = None, delegate=None, delegate_label: str = "",
                 batch: int = 1):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.threads = threads or cpu_threads()
        kwargs = {"model_path": str(path), "num_threads": self.threads}
        if delegate is not None:
            kwargs["experimental_delegates"] = [delegate]
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            what = delegate_label or "the LiteRT interpreter"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnavailableError(f"{what} could not run {Path(path).name}: {first}") from exc
        (inp,), (out,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_quant, self.output_quant = TensorQuant.from_details(inp), TensorQuant.from_details(out)
        self.input_shape = tuple(int(s) for s in inp["shape"])  # NHWC
        self.batch, self.batch_note = 1, ""
        if batch > 1:
            self.resize(batch)
        try:
            self.placement: Placement | None = placement(self.interpreter)
        except (AttributeError, KeyError, TypeError, IndexError):  # a LiteRT without the private op listing
            self.placement = None

    def resize(self, batch: int) -> None:
        """Take `batch` images per invoke, checked by one invoke; on failure stay at batch 1."""
        shape = (batch, *self.input_shape[1:])
        try:
            self.interpreter.resize_tensor_input(self.input_index, shape)
            self.interpreter.allocate_tensors()
            probe = np.zeros(shape, dtype=np.float32)
            self.interpreter.set_tensor(self.input_index, self.input_quant.quantize(probe))
            self.interpreter.invoke()
            produced = self.interpreter.get_tensor(self.output_index).shape[0]
            if produced != batch:
                raise ValueError(f"the output has batch {produced}")
        except (ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            self.interpreter.resize_tensor_input(self.input_index, self.input_shape)
            self.interpreter.allocate_tensors()
            self.batch_note = f"batch {batch} not possible with this file ({first}): one invoke per image"
            return
        self.batch, self.input_shape = batch, shape

    def run(self, inputs: np.ndarray) -> np.ndarray:
        images = np.asarray(inputs, dtype=np.float32)
        if images.ndim == 3:
            images = images[None]
        nhwc = images.transpose(0, 2, 3, 1)
        logits = []
        for start in range(0, len(nhwc), self.batch):  # the interpreter takes exactly self.batch images
            chunk = nhwc[start:start + self.batch]
            if len(chunk) < self.batch:  # pad by repeating the last image; its answers are dropped
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), axis=0)])
            self.interpreter.set_tensor(self.input_index, self.input_quant.quantize(np.ascontiguousarray(chunk)))
            self.interpreter.invoke()
            logits.append(self.output_quant.dequantize(self.interpreter.get_tensor(self.output_index)))
        return np.concatenate(logits)[:len(nhwc)]

    # ----------------------------------------------------------------- labels

    def describe_cpu(self, what: str = "") -> str:
        """"CPU (LiteRT 2.3.0 XNNPACK, 2 threads[; what])", naming ops XNNPACK left to the builtin kernels."""
        from mnv4suite.plugins.tflite.convert import runtime_version

        p = self.placement
        if p is None:
            kernels = "XNNPACK, its coverage unknown"
        else:
            kernels = "XNNPACK" if p.partitions else "builtin kernels"
        notes = [what] if what else []
        if p is not None and p.partitions and p.leftover:
            named = ", ".join(p.leftover[:LABEL_OPS]) + (f" and {len(p.leftover) - LABEL_OPS} more"
                                                          if len(p.leftover) > LABEL_OPS else "")
            notes.append(f"{len(p.leftover)} of {p.ops} ops on LiteRT's builtin kernels: {named}")
        extra = "".join(f"; {note}" for note in notes)
        return f"CPU (LiteRT {runtime_version()} {kernels}, {self.threads} threads{extra})"

    def describe_delegate(self, device: str) -> str:
        """"<device> (<n> of <m> ops[; k on the CPU])"; sets ``cpu_fallback_ops`` to the ops left on the CPU."""
        p = self.placement
        if p is None:
            self.cpu_fallback_ops = ("unknown: this LiteRT does not list which ops the delegate took",)
            return f"{device} (which ops it took is unknown: this LiteRT does not list them)"
        if p.partitions == 0:
            raise UnavailableError(f"{device}: the delegate took none of the model's {p.ops} ops")
        self.cpu_fallback_ops = tuple(p.leftover)
        cpu = f"; {len(p.leftover)} op(s) on the CPU ({self.threads} threads)" if p.leftover else ""
        return f"{device} ({p.delegated} of {p.ops} ops in {p.partitions} delegate partition(s){cpu})"
