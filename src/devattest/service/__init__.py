"""devattest service."""
