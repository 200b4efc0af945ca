"""Run directories, iterations, resume and reports."""

from coursecorrect.pipeline.rundir import RunDir, StageDir

__all__ = ["RunDir", "StageDir"]
