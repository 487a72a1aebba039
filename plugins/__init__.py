"""Built-in framework backends, registered through the same hooks as third-party plugins."""
