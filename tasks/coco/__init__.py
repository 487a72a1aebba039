"""The built-in COCO detection task (AP with pycocotools): declaration only.

Discovery imports this module, so it stays cheap: the implementation (PIL, numpy post-processing,
pycocotools) lives in `task.py` and is imported only when a run needs it.
"""

from __future__ import annotations

from mnv4suite.api import Requirement, TaskSpec, hookimpl, install_command


@hookimpl
def register_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            id="coco",
            implementation="mnv4suite.tasks.coco.task:CocoTask",
            model_kind="detection",
            metrics=("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"),
            requires=(Requirement("pycocotools", install_command("coco")),),
            summary="COCO val2017 detection: box AP, AP50, AP75, AP small/medium/large (%, pycocotools)",
        )
    ]
