"""EcoLens trainer: training the reference model, its features and domain randomisation, field
adaptation to one site's camera, and evaluation (tables, calibration, pictures).

Needs the ``convert`` extra (TensorFlow; ``train`` adds the Lite0 weights); never installed on a
device. It may import ``ecolens.convert`` (loading, metadata, metrics), never the other way.
"""
