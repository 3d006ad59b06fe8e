"""The broker's security: its certificate authority and certificates (``pki``), the Mosquitto configuration that
refuses anonymous clients and speaks TLS only (``configuring``), what each account may do there (``grants``,
pure) and the box accounts changed at run time through Mosquitto's dynamic-security plugin (``accounts``).

Called by ``edgefleet pki ...`` and ``edgefleet broker ...`` (``edgefleet/cli/broker.py``). Nothing here is
imported by the agent: a box only reads the files these modules write. docs/security.md says what is enforced.
"""
