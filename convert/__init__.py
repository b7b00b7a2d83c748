"""EcoLens converter: Keras .h5/.keras -> quantized .tflite with embedded metadata, proven
against the source model on real photos.

Needs the ``convert`` extra (TensorFlow); never installed on a device. Training lives in
``ecolens.train``, which imports this package, never the other way.
"""
