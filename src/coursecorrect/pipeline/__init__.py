"""The orchestrator: Agent-R's iterations (``run``), the comparison of methods (``compare``) and their reports.

The run folder it writes into is :mod:`coursecorrect.rundir`, shared with the stages."""
