"""Code every InstantMentor process shares: wire schemas, settings, auth and the AMQP layer.

Nothing in this package knows the rules of a particular service.
"""
