"""From a recipe to a deployable artifact: the builder that runs a recipe's techniques and
its conversion through the content-addressed cache (``candidate``, ``cache``), what a
technique may use (``context``), the conversion to TFLite and SavedModel (``convert``) and
reading TFLite flatbuffers (``flatbuffer``). It may import ``search``, ``techniques`` and
``inputs``; nothing that measures or runs a study.
"""
