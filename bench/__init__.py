"""Benchmarks, the load generator, the Keras baseline and the Mosquitto / PostgreSQL launchers
shared by benchmarks, tests and `ecolens demo`. Runtime code (edge, fleet) never imports this."""
