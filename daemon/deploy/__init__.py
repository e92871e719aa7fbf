"""What the package needs to deploy itself: the systemd units and the env-file template
(package data beside this file, read with importlib.resources) and `install-service`."""
