"""The bin daemon: camera frames -> item events -> on-device classification -> MQTT.

One module per job: ``config`` (settings sections), ``sources`` (frame sources), ``motion``
(presence/motion gate), ``tracker`` (item state machine), ``pipeline`` (frames -> results),
``store`` (SQLite store-and-forward queue), ``mqtt_link`` (paho client), ``stats``,
``sdnotify``, ``audit``, ``homeassistant``, ``app`` (start-up and shutdown sequence).
"""
