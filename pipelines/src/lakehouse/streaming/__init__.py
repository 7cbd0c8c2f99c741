"""Streaming: a producer of generator events into Kafka, an exactly-once Kafka -> bronze consumer
and the speed layer (one-minute windows with a watermark -> PostgreSQL realtime.*).

The consumer reads the topic once and feeds one or more *sinks*; each sink stores the next Kafka
offset of every topic-partition atomically with its data (bronze: app transactions in the same
Delta commit; speed layer: a row in the same PostgreSQL transaction), so a crash at any point
replays from exactly where each sink left off: no duplicate, no gap.
"""
