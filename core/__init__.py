"""The shared core: errors, config loading, the result contract, model metadata, preprocessing,
the LiteRT runtime and classifier, MQTT and HTTP helpers. Imported by every other layer; imports
none of them (and never TensorFlow)."""
