"""The fleet simulator: plays every box of sites/ as an agent over its own real MQTT connection, many boxes per
process, using the real agent code with a simulated GPU source, and injects faults on command."""
