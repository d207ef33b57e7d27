"""devattest policy."""
