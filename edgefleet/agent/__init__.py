"""The box agent: reports a box's health (host, GPUs, apps) to the controller over MQTT.

It stays small - paho-mqtt, msgspec and (when present) NVML, nothing of the controller's stack - because it runs
on every box beside the apps that matter. ``reporting`` builds messages, ``link`` owns the MQTT connection,
``running`` is the agent process; the simulator reuses ``reporting`` and ``link`` with its own network loop.
"""
