"""The wire contract of PROTOCOL.md v1: envelopes, payload schemas and the event registry."""
