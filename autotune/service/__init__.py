"""The search as a service (``autotune serve``): an HTTP API and a page over the same storage,
a queue of submitted studies kept in that database, and the workers that take them.

It sits above ``study`` and ``results`` and beside ``report``: it may import every layer below,
never ``cli`` or ``report``, and never TensorFlow: loading a model, checking a submission,
running trials and exporting happen in spawned processes (``tasks``), so the server stays light
and a bad model cannot take it down.
"""
