"""Help requests (PROTOCOL §6): students ask, mentors are shown, the first accept wins.

Owns the requests, who was shown each one, and its own view of which mentors are online and
available (kept from ``presence.mentor_status_changed`` facts; never read from presence).
"""
