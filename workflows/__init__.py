"""The workflows (deterministic: the journey interpreter, the segment sweep, the predictions run)
and `workflows.client`, the code that starts and signals them."""
