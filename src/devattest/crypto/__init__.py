"""devattest crypto."""
