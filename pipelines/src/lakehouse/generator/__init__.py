"""Test and demo data: user events (files or Kafka) and the PostgreSQL source database.

Draws its event types, spellings and currencies from the core's event contract, so generated
data exercises exactly the rules silver applies. Imports only the core tier.
"""
