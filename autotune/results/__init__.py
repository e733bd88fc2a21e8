"""What a study found, read from the storage: the front and its rows (``front``), choosing
one trial to deploy (``choose``), exporting it (``export``, which rebuilds it through
``build`` and checks it through ``measure``) and the figures (``plot``). It may import
``measure``, ``build`` and the layers below; never the study loop (``study``) or printing.
"""
