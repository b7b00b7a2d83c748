"""EcoLens converter and trainer: Keras .h5 -> quantized .tflite with embedded metadata.

Needs the ``convert`` extra (TensorFlow); never installed on a device.
"""
