"""devattest lifecycle."""
