"""``testledger demo``: a realistic ledger recorded by running a bundled example suite."""

from testledger.demo.runner import DemoResult, DemoRun, build_demo

__all__ = ["DemoResult", "DemoRun", "build_demo"]
