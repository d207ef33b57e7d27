"""devattest cli."""
