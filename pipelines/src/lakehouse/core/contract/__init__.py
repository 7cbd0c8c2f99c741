"""The event contract: what a valid user event is, and the reference data it is conformed with.

One home for every rule that more than one part needs — the generator draws from it, silver
enforces it, the speed layer classifies with silver's SQL built on it:

* `events`    — event types, the fields of the contract, accepted id and time formats;
* `reference` — conformed dimensions: countries (ISO 3166 via pycountry), source and device
  channels with every spelling that maps to them, currencies and dated FX rates.
"""
