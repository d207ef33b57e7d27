"""devattest store."""
