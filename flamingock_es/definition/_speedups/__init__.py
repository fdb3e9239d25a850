"""The speed machinery of loading: the unit cache (a no-op start-up imports no unit file), the
units it restores, and fewer garbage collections while thousands are built. Private."""
