"""The built-in ImageNet top-1/top-5 task: declaration only.

Discovery imports this module, so it stays cheap: the implementation (PIL, pre-processing,
metric) lives in `task.py` and is imported only when a run needs it.
"""

from __future__ import annotations

from mnv4suite.api import TaskSpec, hookimpl


@hookimpl
def register_tasks() -> list[TaskSpec]:
    return [
        TaskSpec(
            id="imagenet",
            implementation="mnv4suite.tasks.imagenet.task:ImageNetTask",
            model_kind="classification",
            metrics=("top1", "top5"),
            summary="ImageNet-1k val classification: top-1 / top-5 accuracy (%)",
        )
    ]
