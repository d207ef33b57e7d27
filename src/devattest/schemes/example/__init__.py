"""devattest schemes.example."""
