"""Running a study: the budget loop (``run``), one trial from the sampler's question to the
recorded metrics (``trial``), where trials are evaluated (``evaluator``: in this process;
``child``: in a spawned child process), the workspace a trial needs (``workspace``), the
baseline, reference recipes and end-of-run re-measurement (``references``), many workers and
the budget between them (``workers``), warm starts (``warm_start``), the environment check
(``environment``), fault injection for the reliability tests (``faults``) and the capability
probe (``probe``); how a run behaves and what it reports (``settings``). It may import every
layer below it, ``results`` included (the front it re-measures); never ``report`` or ``cli``,
which watch it through ``Reporter``.
"""
