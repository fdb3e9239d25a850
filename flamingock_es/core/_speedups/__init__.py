"""The speed machinery of the core: a mypyc-compiled Avro reader, used only when it was built
from the source beside it. Private: nothing outside the core imports it."""
