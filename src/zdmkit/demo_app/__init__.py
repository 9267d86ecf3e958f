"""The lab's demo application: a user-status REST API over Cassandra, ZDM proxy or Astra DB."""
