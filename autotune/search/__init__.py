"""What the sampler searches and what it optimises, without a model or TensorFlow: recipes
and runtimes (``recipe``), objectives and constraints (``objective``), loading the spaces
and objectives by name or path (``plugins``) and the capability probe's record that spaces
read (``capabilities``). It may import ``techniques`` (the technique registry recipes are
rebuilt from), ``storage`` and ``inputs``; never what builds or measures.
"""
