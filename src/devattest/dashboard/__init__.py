"""devattest dashboard."""
