"""The distributed engine's executor for silver: the same SQL, run by Apache Spark."""
