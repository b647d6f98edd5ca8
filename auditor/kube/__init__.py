"""The Kubernetes edge: the only package that imports the `kubernetes` client."""
