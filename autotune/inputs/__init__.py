"""What the user brings, read and checked: the study's configuration and study files
(``config``), the model (``model``: tf_keras, Keras 3 rebuilt in tf_keras by ``keras3``,
``keras3_config`` and ``keras3_ops``, nested models opened by ``flatten``, custom layers from
``custom``), the data (``data``), the demo's model and data (``demo``) and the import of a
user's Python file (``pyfile``). The lowest layer: it imports only ``autotune.errors``,
``autotune._files`` and ``autotune._keras``.
"""
