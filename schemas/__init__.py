"""The Avro contract: the ``.avsc`` schemas other services read, installed as package data."""
