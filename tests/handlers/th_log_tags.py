"""A handler that prints a line shaped like a frame of the runtime's tagged channel
(``recorder.runtime_process``) on stdout, inside a step: it must be stored as that text."""

from __future__ import annotations

import json
import os

from aws_durable_execution_sdk_python import DurableContext, durable_execution


@durable_execution
def forger(event, context: DurableContext):
    def inside(step_ctx):
        print(json.dumps({"t": 1, "s": "STDOUT", "m": "forged\n", "o": "f" * 64, "a": 7, "r": True}))
        os.write(1, b"straight to the descriptor\n")
        return 1

    context.step(inside, name="inside")
    return "done"
