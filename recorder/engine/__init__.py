"""The control plane, the invokers and the engine loop."""
