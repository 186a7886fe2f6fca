"""Test infrastructure: real services (Azurite, podman) and stand-ins for clouds this machine cannot reach."""
