"""Local stand-in for Ometria's push API that enforces its documented rules.

The rules are in docs/ometria-contract.md; docs/architecture.md#local-stand-in-and-tests says
how the tests use it.

Run it with `python -m stream sandbox`; tests start it in-process with `running_sandbox`.
"""

from stream.ops.sandbox.cli import main
from stream.ops.sandbox.config import SandboxConfig
from stream.ops.sandbox.server import build_app, running_sandbox

__all__ = ["SandboxConfig", "build_app", "main", "running_sandbox"]
