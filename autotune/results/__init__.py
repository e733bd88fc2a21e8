"""What a study found, read from the storage: the front and its rows (``front``), the one
definition of Pareto dominance, the non-dominated filter and the exact hypervolume that the
front, the choice and the figure share (``pareto``), choosing one trial to deploy
(``choose``), exporting it (``export``, which rebuilds it through ``build`` and checks it
through ``measure``) and the figures (``plot``). Trials are read through
``storage.record.TrialRecord``. It may import ``measure``, ``build`` and the layers below;
never the study loop (``study``) or printing.
"""
