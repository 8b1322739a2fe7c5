"""One invocation of the FFmpeg Lambda's handler on this machine: the event on stdin, as JSON.

python -m local.lambda_invoke TIMEOUT_SECONDS < event.json
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field


@dataclass
class InvocationContext:
    timeout: float
    started: float = field(default_factory=time.monotonic)
    function_name: str = "mpr-ffmpeg-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:mpr-ffmpeg-local"
    aws_request_id: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout - (time.monotonic() - self.started)) * 1000))


def main() -> int:
    from container.handler import handler

    event = json.load(sys.stdin)
    handler(event, InvocationContext(timeout=float(sys.argv[1]) if len(sys.argv) > 1 else 900.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
