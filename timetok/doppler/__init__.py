"""The micro-Doppler spectrogram generator: a 2-D VQ-VAE and a user-conditioned prior.

- ``model.py``: :class:`SpectrogramTokenizer` and :class:`GeneratorModel`;
- ``config.py``: the recipes' settings, :class:`TrainConfig` and :class:`EvaluateConfig`;
- ``data.py``: the images, split within each user, and the model folder's ``images`` section;
- ``recipe.py``: :func:`train`, the tokenizer stage then the prior stage;
- ``pipeline.py``: :class:`SpectrogramGenerator`, generate / encode / decode for users;
- ``evaluate.py``: :func:`evaluate`, generated against real images, over ``metrics.py``,
  ``classifier.py`` (the user classifier that judges) and ``report.py``;
- ``gait.py`` and ``simulator.py``: simulated walkers and their spectrograms;
- ``cli.py``: ``timetok doppler simulate | train | generate | evaluate``.
"""
