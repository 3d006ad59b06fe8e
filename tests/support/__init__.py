"""Helpers the tests share: real peers started on free loopback ports, and waiting without sleeping blind."""
