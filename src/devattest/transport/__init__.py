"""devattest transport."""
