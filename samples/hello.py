"""The smallest durable workflow: two steps around a one-second wait."""

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration


@durable_execution
def handler(event, context: DurableContext):
    name = context.step(lambda _: str(event.get("name", "World")).strip() or "World", name="normalize-name")
    context.wait(Duration.from_seconds(1), name="think")
    return context.step(lambda _: f"Hello, {name}!", name="greet")
