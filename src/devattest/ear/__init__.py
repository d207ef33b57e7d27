"""devattest ear."""
