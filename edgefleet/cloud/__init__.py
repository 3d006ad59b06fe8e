"""The cloud controller: knows every site and box and their live health; ingests heartbeats from the broker,
keeps live fleet state, persists it, and serves the HTTP API."""
