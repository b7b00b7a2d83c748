"""The fleet server's side of a signed rollout: ``publish`` (chunks, signed manifests, reading
the bins' states over MQTT), ``states`` (checking, picking canaries, printing) and
``statistics`` (a canary's figures against the rest, and the judgement)."""
